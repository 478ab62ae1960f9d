"""``qualflow serve`` and ``qualflow worker`` with keys that cannot open the stored secrets (or
a garbled key) stop with one ``error:`` line and exit code 1, before any server starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from qualflow.cli import app
from tests.hub.test_hub_audit_wrong_keys import _save_two_secrets, _settings

runner = CliRunner()


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
@pytest.mark.parametrize(
    ("key", "said"),
    [
        (Fernet.generate_key().decode(), "cannot decrypt"),
        ("not-a-fernet-key", "QUALFLOW_SECRET_KEYS"),
    ],
    ids=["wrong-key", "garbled-key"],
)
def test_a_key_problem_is_one_error_line(
    command: list[str],
    key: str,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    migrated_database_url: str,
    tmp_path: Path,
) -> None:
    _save_two_secrets(_settings(migrated_database_url, tmp_path, Fernet.generate_key().decode()))
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("QUALFLOW_SECRET_KEYS", key)

    result = runner.invoke(app, command)

    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert said in lines[0]
    assert "Traceback" not in result.output
    assert "startup failed" not in result.output
