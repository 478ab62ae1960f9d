"""The upgrade path as an operator meets it: concurrent starts, a database ahead of the code, a
database that is not qualflow's, and upgrades and downgrades with data in the database."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.settings import Settings
from qualflow.store.db import normalize_url
from qualflow.store.migrate import SchemaRevisionError, current_revision, head_revision, migrate
from qualflow.store.runtime import open_store
from tests.conftest import temporary_postgres_database


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
