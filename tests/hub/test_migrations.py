"""One Alembic history that builds every model's table on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from qualflow.store.db import normalize_url
from qualflow.store.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    migrate,
    schema_diff,
)
from qualflow.store.models_registry import load_all


def _tables(url: str) -> set[str]:
    engine = create_engine(normalize_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_history_is_one_linear_chain_of_fixed_slots() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions("base", "heads"))
    ids = sorted(revision.revision for revision in revisions)
    assert ids == [f"{n:04d}" for n in range(1, len(ids) + 1)]
    for revision in revisions:
        number = int(revision.revision)
        expected = None if number == 1 else f"{number - 1:04d}"
        assert revision.down_revision == expected


def test_migrate_creates_every_table_and_matches_the_models(database_url: str) -> None:
    assert current_revision(database_url) is None
    assert schema_diff(database_url), "an empty database must differ from the models"
    migrate(database_url)
    assert current_revision(database_url) == head_revision()
    assert {"users", "api_tokens", "ui_sessions", "user_permissions", "connections"} <= _tables(
        database_url
    )
    assert schema_diff(database_url) == []


def test_migrate_twice_is_a_no_op_and_downgrade_round_trips(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)
    downgrade(database_url, "base")
    assert _tables(database_url) <= {"alembic_version"}
    migrate(database_url)
    assert schema_diff(database_url) == []


def test_every_registered_model_module_is_importable() -> None:
    load_all()
