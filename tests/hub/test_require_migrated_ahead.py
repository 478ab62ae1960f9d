"""A database a newer release migrated, met by a command that does not migrate by itself
(QUALFLOW_AUTO_MIGRATE off, the PostgreSQL default): the one line says the database is newer
and what to do, not "run `qualflow migrate` first" (which would refuse it too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.store.migrate import migrate

runner = CliRunner()


def test_a_database_ahead_of_the_code_is_named_as_newer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "ahead.db"
    url = f"sqlite:///{path}"
    migrate(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", url)
    monkeypatch.setenv("QUALFLOW_AUTO_MIGRATE", "false")

    result = runner.invoke(app, ["runs", "ls"])

    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "0099" in lines[0]
    assert "a newer release migrated it" in lines[0]
    assert "run `qualflow migrate` first" not in lines[0]
