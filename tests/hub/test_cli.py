"""`qualflow migrate | users | secrets | connections` on the database matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.connections.clients import configure_clients
from qualflow.settings import Settings
from qualflow.store.migrate import current_revision, head_revision
from qualflow.store.runtime import open_store
from qualflow.store.secrets import SecretBox, read_keys_file
from tests.hub.conftest import Sandbox

runner = CliRunner()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Path:
    """Point the CLI at the test database; keys live in the data dir's keys file."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(data_dir))
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", database_url)
    monkeypatch.delenv("QUALFLOW_SECRET_KEYS", raising=False)
    return data_dir


def _run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), input=input)


def test_migrate_creates_then_reports_up_to_date(env: Path, database_url: str) -> None:
    first = _run("migrate")
    assert first.exit_code == 0, first.output
    assert f"to revision {head_revision()}" in first.stdout
    assert current_revision(database_url) == head_revision()
    second = _run("migrate")
    assert second.exit_code == 0
    assert "up to date" in second.stdout


def test_users_create_prints_generated_password_once(env: Path) -> None:
    _run("migrate")
    created = _run(
        "users", "create", "--email", "Root@Example.org", "--name", "Root", "--generate-password"
    )
    assert created.exit_code == 0, created.output
    assert "created admin root@example.org" in created.stdout
    password = created.stdout.split("password: ")[1].split()[0]
    assert len(password) == 20
    listed = _run("users", "ls", "--json")
    assert listed.exit_code == 0
    users = json.loads(listed.stdout)
    assert users[0]["email"] == "root@example.org"
    assert users[0]["can_sign_in"] is True
    assert password not in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "x@example.org", "--name", "X"], "no password given"),
        (["--email", "x@example.org", "--name", "X", "--password", "short"], "at least 10"),
        (["--email", "nope", "--name", "X", "--no-password"], "not a valid email"),
        (
            [
                "--email",
                "x@example.org",
                "--name",
                "X",
                "--password",
                "long enough pw",
                "--generate-password",
            ],
            "only one of",
        ),
        (["--email", "x@example.org", "--name", "X", "--role", "owner"], "owner"),
    ],
)
def test_users_create_bad_input_is_one_line_and_nonzero(
    env: Path, args: list[str], message: str
) -> None:
    assert _run("migrate").exit_code == 0
    result = _run("users", "create", *args)
    assert result.exit_code != 0
    assert message in result.output


@pytest.mark.parametrize(
    "command", [["users", "ls"], ["incentives", "ls"], ["runs", "ls"], ["worker"]]
)
def test_postgres_must_be_migrated_explicitly(
    monkeypatch: pytest.MonkeyPatch, env: Path, database_url: str, command: list[str]
) -> None:
    """Every command on the hub's database says to migrate, not which table is missing."""
    if database_url.startswith("sqlite"):
        if command != ["worker"]:  # a worker runs until stopped
            # The embedded default migrates itself.
            assert _run(*command).exit_code == 0, _run(*command).output
        return
    result = _run(*command)
    assert result.exit_code == 1
    assert "run `qualflow migrate` first" in result.output
    assert "no such table" not in result.output


def test_secrets_rotate_re_encrypts_and_extends_the_keys_file(
    env: Path, database_url: str, sandbox: Sandbox
) -> None:
    configure_clients(transport=sandbox.transport)
    assert _run("migrate").exit_code == 0
    added = _run(
        "connections",
        "add",
        "--name",
        "Main",
        "--base-url",
        sandbox.base_url,
        "--api-token",
        sandbox.admin_token,
    )
    assert added.exit_code == 0, added.output
    assert "brand sandbox" in added.stdout
    keys_file = env / "secret.keys"
    old_keys = read_keys_file(keys_file)
    settings = Settings(data_dir=env, database_url=database_url)
    store = open_store(settings, run_migrations=False)
    with store.engine.connect() as conn:
        before = conn.execute(text("SELECT api_token FROM connections")).scalar_one()
    store.close()

    rotated = _run("secrets", "rotate")
    assert rotated.exit_code == 0, rotated.output
    assert "connections.api_token: 1 re-encrypted" in rotated.stdout
    new_keys = read_keys_file(keys_file)
    assert new_keys[1:] == old_keys
    store = open_store(settings, run_migrations=False)
    with store.engine.connect() as conn:
        after = conn.execute(text("SELECT api_token FROM connections")).scalar_one()
    store.close()
    assert after != before
    assert SecretBox([new_keys[0]]).decrypt(after) == sandbox.admin_token
    # Retiring the old keys leaves only the new one, and the data still reads.
    retired = _run("secrets", "rotate", "--retire-old")
    assert retired.exit_code == 0
    assert len(read_keys_file(keys_file)) == 1
    tested = _run("connections", "test", "Main")
    assert tested.exit_code == 0, tested.output
    assert "ok — brand sandbox" in tested.stdout
    assert sandbox.admin_token not in rotated.output + retired.output + tested.output


def test_secrets_rotate_with_environment_keys_prints_the_new_list(
    monkeypatch: pytest.MonkeyPatch, env: Path
) -> None:
    old = Fernet.generate_key().decode()
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("QUALFLOW_SECRET_KEYS", old)
    assert _run("migrate").exit_code == 0
    result = _run("secrets", "rotate", "--new-key", new)
    assert result.exit_code == 0, result.output
    assert f"QUALFLOW_SECRET_KEYS={new},{old}" in result.stdout
    assert not (env / "secret.keys").exists()
    bad = _run("secrets", "rotate", "--new-key", "not-a-key")
    assert bad.exit_code == 1
    assert "not a valid Fernet key" in bad.output


def test_connections_add_refuses_bad_credentials(env: Path, sandbox: Sandbox) -> None:
    configure_clients(transport=sandbox.transport)
    assert _run("migrate").exit_code == 0
    rejected = _run(
        "connections",
        "add",
        "--name",
        "Main",
        "--base-url",
        sandbox.base_url,
        "--api-token",
        "definitely-wrong-token",
    )
    assert rejected.exit_code == 1
    assert "Qualtrics rejected the credentials" in rejected.output
    both = _run(
        "connections",
        "add",
        "--name",
        "Main",
        "--datacenter",
        "iad1",
        "--base-url",
        "http://x",
        "--api-token",
        "t",
    )
    assert both.exit_code == 1
    assert "exactly one of datacenter or base_url" in both.output
    bad_fields = _run(
        "connections", "add", "--name", "", "--datacenter", "iad1", "--api-token", "t",
        "--requests-per-minute", "0",
    )
    assert bad_fields.exit_code == 1
    # One line naming each field, without pydantic's report or docs links.
    assert bad_fields.output.strip().splitlines() == [
        "error: name: String should have at least 1 character; "
        "requests_per_minute: Input should be greater than or equal to 1"
    ]
    missing = _run("connections", "test", "Nope")
    assert missing.exit_code == 1
    assert "no connection named 'Nope'" in missing.output
    listed = _run("connections", "ls", "--json")
    assert listed.exit_code == 0
    assert json.loads(listed.stdout) == []
