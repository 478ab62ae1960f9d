"""The upgrade path as an operator meets it: concurrent starts, a database ahead of the code, a
database that is not qualflow's, and upgrades and downgrades with data in the database."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import Result
from cryptography.fernet import Fernet
from sqlalchemy import (
    Engine,
    MetaData,
    Table,
    create_engine,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.settings import Settings
from qualflow.store.base import Base
from qualflow.store.db import normalize_url
from qualflow.store.migrate import (
    SchemaRevisionError,
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    known_revisions,
    migrate,
    schema_diff,
)
from qualflow.store.models_registry import load_all
from qualflow.store.runtime import open_store
from qualflow.store.secrets import SecretBox, encrypted_columns
from tests.conftest import temporary_postgres_database
from tests.hub.sample_rows import allowed_choices, sample_value


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    with temporary_postgres_database("audit") as url:
        yield url


def _migrate_after(barrier: multiprocessing.synchronize.Barrier, url: str) -> None:
    barrier.wait()
    migrate(url)


def test_processes_starting_together_take_turns_to_migrate(empty_url: str) -> None:
    """Web and worker starting at once with auto_migrate: the later one waits, then finds the
    schema at head, instead of failing on 'table users already exists'."""
    context = multiprocessing.get_context("spawn")
    processes = 4
    barrier = context.Barrier(processes)
    workers = [
        context.Process(target=_migrate_after, args=(barrier, empty_url)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0] * processes
    assert current_revision(empty_url) == head_revision()


def _cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _refused_in_one_line(result: Result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], result.output


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, empty_url: str) -> str:
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", empty_url)
    monkeypatch.delenv("QUALFLOW_SECRET_KEYS", raising=False)
    return empty_url


@pytest.mark.parametrize("auto_migrate", ["true", "false"])
def test_a_database_ahead_of_the_code_is_refused_naming_both_revisions(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, auto_migrate: str
) -> None:
    """After rolling the software back, every start refuses in one line instead of running or
    ending in alembic's "Can't locate revision" traceback."""
    migrate(cli_env)
    with _engine(cli_env).begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    monkeypatch.setenv("QUALFLOW_AUTO_MIGRATE", auto_migrate)
    head = head_revision() or ""
    for args in (("migrate",), ("users", "ls"), ("worker",)):
        _refused_in_one_line(_cli(*args), "0099", head)
    with pytest.raises(SchemaRevisionError, match=f"0099.*{head}"):
        open_store(Settings(), run_migrations=True).close()
    assert current_revision(cli_env) == "0099"


def test_a_database_with_unrelated_tables_is_refused_untouched(cli_env: str) -> None:
    with _engine(cli_env).begin() as connection:
        connection.execute(text("CREATE TABLE runs (id INTEGER PRIMARY KEY, note TEXT)"))
    _refused_in_one_line(_cli("migrate"), "runs", "not a qualflow database")
    assert _tables(cli_env) == {"runs"}


def test_another_applications_alembic_database_is_not_taken_for_a_newer_release(
    cli_env: str,
) -> None:
    with _engine(cli_env).begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('3f2a9c1b7d4e')"))
        connection.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
    _refused_in_one_line(_cli("migrate"), "3f2a9c1b7d4e", "not a qualflow database")
    assert _tables(cli_env) == {"alembic_version", "orders"}


def test_an_empty_database_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    migrate(f"sqlite:///{path}")
    assert current_revision(f"sqlite:///{path}") == head_revision()


def _engine(url: str) -> Engine:
    return create_engine(normalize_url(url), poolclass=NullPool)


def _tables(url: str) -> set[str]:
    engine = _engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# --- upgrades and downgrades with data ------------------------------------------------------

load_all()
_KEY = Fernet.generate_key().decode()
#: Columns a check constraint wants empty while the row is in the state the sample shows.
_NULL_BY_CHECK = {"platform_api_keys": {"deactivated_at": None, "deactivated_by": None}}


def _row_values(
    connection: Connection, table: Table, inserted: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """One valid row of ``table`` as it is at the database's revision: foreign keys point at
    the rows inserted before, checked columns take an allowed value, secrets are plaintext."""
    choices = allowed_choices(table, _NULL_BY_CHECK.get(table.name, {}))
    row: dict[str, Any] = {}
    for column in table.columns:
        foreign = next(iter(column.foreign_keys), None)
        if foreign is not None:
            row[column.name] = inserted[foreign.column.table.name][foreign.column.name]
        elif column.name in choices:
            row[column.name] = choices[column.name]
        else:
            row[column.name] = sample_value(
                table,
                column,
                text=f"{table.name}.{column.name}",
                document={"kept": [column.name]},
                keep_end=True,
            )
    return row


def _insert_sample_rows(url: str) -> dict[str, dict[str, Any]]:
    """One row in every qualflow table at the database's current revision (secrets encrypted
    with ``_KEY``); returns the rows, secrets in plaintext."""
    box = SecretBox([_KEY])
    secrets = {(c.table.name, c.column.name) for c in encrypted_columns(Base.metadata)}
    inserted: dict[str, dict[str, Any]] = {}
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            reflected = MetaData()
            reflected.reflect(connection)
            for table in reflected.sorted_tables:
                if table.name == "alembic_version":
                    continue
                row = _row_values(connection, table, inserted)
                stored = {
                    name: box.encrypt(value) if (table.name, name) in secrets else value
                    for name, value in row.items()
                }
                connection.execute(table.insert().values(stored))
                inserted[table.name] = row
    finally:
        engine.dispose()
    return inserted


def _read_back_through_the_orm(
    url: str, tmp_path: Path, inserted: dict[str, dict[str, Any]]
) -> None:
    """Start the store at head as the hub does and read every sample row through its model."""
    store = open_store(
        Settings(database_url=url, data_dir=tmp_path / "data", secret_keys=[_KEY]),
        run_migrations=True,
    )
    try:
        with store.sessionmaker() as session:
            for mapper in Base.registry.mappers:
                table = mapper.local_table
                if not isinstance(table, Table) or table.name not in inserted:
                    continue
                rows = session.scalars(select(mapper.class_)).all()
                assert len(rows) == 1, table.name
                for name, value in inserted[table.name].items():
                    attribute = mapper.get_property_by_column(table.c[name]).key
                    read = getattr(rows[0], attribute)
                    if table.c[name].info.get("encrypted") is True:
                        read = store.secret_box.decrypt(read)
                    assert read == value, f"{table.name}.{name}"
    finally:
        store.close()


def _older_revisions() -> list[str]:
    return known_revisions()[:-1]


@pytest.mark.parametrize("revision", _older_revisions())
def test_upgrading_with_data_from_each_release_keeps_every_row_usable(
    empty_url: str, tmp_path: Path, revision: str
) -> None:
    migrate(empty_url, revision)
    inserted = _insert_sample_rows(empty_url)
    assert {"users", "connections"} <= set(inserted)
    if revision >= "0002":
        assert {"automations", "automation_versions", "runs", "email_outbox"} <= set(inserted)
    if revision >= "0003":
        assert {"incentives", "rewards", "gift_codes"} <= set(inserted)
    _read_back_through_the_orm(empty_url, tmp_path, inserted)
    assert current_revision(empty_url) == head_revision()
    assert schema_diff(empty_url) == []


def _alembic_downgrade(url: str, revision: str) -> None:
    """What ``alembic downgrade <revision>`` does with an ini naming the packaged history."""
    command.downgrade(alembic_config(url), revision)


@pytest.mark.parametrize("step_down", [downgrade, _alembic_downgrade], ids=["qualflow", "alembic"])
def test_downgrading_with_data_and_back_keeps_every_row(
    empty_url: str, tmp_path: Path, step_down: Callable[[str, str], None]
) -> None:
    """One step down from head (rolling a release back), then each step down to the first
    revision that has every table, and back up: nothing is lost on the way but the columns
    the undone revisions added. The ``alembic`` command runs in the same guarded transaction as
    ``qualflow migrate``: on SQLite, batch table rebuilds neither trip nor cascade through
    foreign keys, and a failure leaves nothing half-done."""
    migrate(empty_url)
    inserted = _insert_sample_rows(empty_url)
    for revision in reversed(_older_revisions()[_older_revisions().index("0004") :]):
        step_down(empty_url, revision)
        assert current_revision(empty_url) == revision
    engine = _engine(empty_url)
    try:
        kept = {
            table: {column["name"] for column in inspect(engine).get_columns(table)}
            for table in inserted
        }
    finally:
        engine.dispose()
    _read_back_through_the_orm(
        empty_url,
        tmp_path,
        {
            table: {k: v for k, v in row.items() if k in kept[table]}
            for table, row in inserted.items()
        },
    )
    assert current_revision(empty_url) == head_revision()
