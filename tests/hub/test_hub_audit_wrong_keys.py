"""Keys that open none of the stored secrets stop the hub at start, saying so, instead of
every page and route that reads a secret failing later with an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.connections.models import Connection
from qualflow.settings import Settings
from qualflow.store.runtime import open_store
from qualflow.store.secrets import SecretKeyError

runner = CliRunner()
API_TOKEN = "tok1234567890abcdefghijklmnopqrstuvwxyz9"


def _settings(database_url: str, tmp_path: Path, key: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, secret_keys=[SecretStr(key)]
    )


def _save_two_secrets(settings: Settings) -> None:
    store = open_store(settings)
    try:
        with store.sessionmaker() as session:
            for name in ("Main", "Backup"):
                session.add(
                    Connection(name=name, datacenter="iad1", auth_type="token", api_token=API_TOKEN)
                )
            session.commit()
    finally:
        store.close()


def test_keys_that_open_no_stored_secret_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, migrated_database_url: str, tmp_path: Path
) -> None:
    right, wrong = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    _save_two_secrets(_settings(migrated_database_url, tmp_path, right))

    with pytest.raises(SecretKeyError, match="QUALFLOW_SECRET_KEYS"):
        open_store(_settings(migrated_database_url, tmp_path, wrong))

    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("QUALFLOW_SECRET_KEYS", wrong)
    result = runner.invoke(app, ["connections", "ls"])
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "cannot decrypt" in result.output
    assert "Traceback" not in result.output

    # The right keys, newest first behind a new one, still open the store.
    open_store(_settings(migrated_database_url, tmp_path, right)).close()
    both = _settings(migrated_database_url, tmp_path, wrong).model_copy(
        update={"secret_keys": [SecretStr(wrong), SecretStr(right)]}
    )
    open_store(both).close()


def test_an_empty_database_opens_with_any_keys(migrated_database_url: str, tmp_path: Path) -> None:
    open_store(_settings(migrated_database_url, tmp_path, Fernet.generate_key().decode())).close()
