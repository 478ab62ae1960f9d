"""Key problems are named where they are: a lost keys file is never silently replaced, and a
key that is not a Fernet key is reported with where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.connections.models import Connection
from qualflow.settings import Settings
from qualflow.store.runtime import open_store
from qualflow.store.secrets import SecretKeyError, read_keys_file

runner = CliRunner()
API_TOKEN = "tok1234567890abcdefghijklmnopqrstuvwxyz9"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, migrated_database_url: str, tmp_path: Path) -> Path:
    """The CLI on a migrated database; keys live in the data dir's keys file."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(data_dir))
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", migrated_database_url)
    monkeypatch.delenv("QUALFLOW_SECRET_KEYS", raising=False)
    return data_dir


def _save_a_secret(data_dir: Path, database_url: str) -> None:
    store = open_store(Settings(data_dir=data_dir, database_url=database_url))
    try:
        with store.sessionmaker() as session:
            session.add(
                Connection(name="Main", datacenter="iad1", auth_type="token", api_token=API_TOKEN)
            )
            session.commit()
    finally:
        store.close()


def _one_line_failure(args: list[str], *fragments: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_a_lost_keys_file_is_not_replaced_while_secrets_need_it(
    env: Path, migrated_database_url: str
) -> None:
    _save_a_secret(env, migrated_database_url)
    keys_file = env / "secret.keys"
    keys_file.unlink()

    with pytest.raises(SecretKeyError, match=r"secret\.keys is missing"):
        open_store(Settings(data_dir=env, database_url=migrated_database_url))
    for args in (["connections", "ls"], ["secrets", "rotate"]):
        _one_line_failure(args, str(keys_file), "QUALFLOW_SECRET_KEYS")
        # A fresh key would not open the saved secrets, and once written it would hide that
        # the real file is missing: nothing is created.
        assert not keys_file.exists()


def test_a_missing_keys_file_is_created_while_no_secret_is_stored(env: Path) -> None:
    listed = runner.invoke(app, ["connections", "ls"])
    assert listed.exit_code == 0, listed.output
    assert len(read_keys_file(env / "secret.keys")) == 1


def test_a_garbled_keys_file_is_named(env: Path) -> None:
    keys_file = env / "secret.keys"
    env.mkdir(parents=True)
    keys_file.write_text(Fernet.generate_key().decode() + "\nnot-a-key\n")
    line = _one_line_failure(["connections", "ls"], str(keys_file), "line 2")
    assert "not-a-key" not in line  # a key, even a broken one, is not printed
    _one_line_failure(["secrets", "rotate"], str(keys_file), "line 2")
    assert read_keys_file(keys_file)[1] == "not-a-key"


def test_a_bad_environment_key_is_named(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    monkeypatch.setenv("QUALFLOW_SECRET_KEYS", f"{Fernet.generate_key().decode()},garbage")
    _one_line_failure(["connections", "ls"], "QUALFLOW_SECRET_KEYS", "#2")
    _one_line_failure(["secrets", "rotate"], "QUALFLOW_SECRET_KEYS", "#2")


def test_a_bad_new_key_is_named(env: Path) -> None:
    assert runner.invoke(app, ["connections", "ls"]).exit_code == 0
    keys = read_keys_file(env / "secret.keys")
    _one_line_failure(["secrets", "rotate", "--new-key", "not-a-key"], "--new-key")
    assert read_keys_file(env / "secret.keys") == keys
