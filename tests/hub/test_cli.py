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
    "command", [["users", "ls"], ["incentives", "ls"], ["runs", "ls"], ["worker"], ["serve"]]
)
def test_postgres_must_be_migrated_explicitly(
    monkeypatch: pytest.MonkeyPatch, env: Path, database_url: str, command: list[str]
) -> None:
    """Every command on the hub's database says to migrate, not which table is missing."""
    if database_url.startswith("sqlite"):
        if command not in (["worker"], ["serve"]):  # they run until stopped
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
        "connections",
        "add",
        "--name",
        "",
        "--datacenter",
        "iad1",
        "--api-token",
        "t",
        "--requests-per-minute",
        "0",
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


# -- bad input: one line and a non-zero exit, never a traceback --------------------------------


def _one_line_failure(result, message: str, exit_code: int = 1) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == exit_code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_migrate_refuses_unknown_and_older_revisions(env: Path) -> None:
    _one_line_failure(_run("migrate", "--revision", "nosuch"), "unknown revision 'nosuch'")
    _one_line_failure(_run("migrate", "--revision", ""), "unknown revision ''")
    assert _run("migrate").exit_code == 0
    _one_line_failure(_run("migrate", "--revision", "0003"), "only upgrades")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("QUALFLOW_DATABASE_URL", "garbage", "QUALFLOW_DATABASE_URL: must be a SQLite"),
        ("QUALFLOW_DATABASE_URL", "mysql://u:pw@127.0.0.1:1/db", "or PostgreSQL"),
        ("QUALFLOW_DATA_DIR", "", "QUALFLOW_DATA_DIR: must name a directory"),
    ],
)
def test_bad_settings_are_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, env: Path, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    for command in (["migrate"], ["users", "ls"]):
        result = _run(*command)
        _one_line_failure(result, message)
        assert "pw@" not in result.output


def test_a_data_dir_that_cannot_be_made_is_one_line(
    monkeypatch: pytest.MonkeyPatch, env: Path, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(tmp_path / "a-file" / "data"))
    monkeypatch.delenv("QUALFLOW_DATABASE_URL")
    _one_line_failure(_run("migrate"), "cannot create the data directory")


def test_without_auto_migrate_a_missing_sqlite_database_says_to_migrate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.delenv("QUALFLOW_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUALFLOW_AUTO_MIGRATE", "false")
    for command in (["users", "ls"], ["serve", "--port", "0"]):
        _one_line_failure(_run(*command), "there is no database at")


def test_serve_refuses_ports_and_hosts_it_cannot_listen_on(env: Path) -> None:
    assert _run("migrate").exit_code == 0
    assert _run("serve", "--port", "70000").exit_code == 2
    _one_line_failure(_run("serve", "--host", "bad host", "--port", "0"), "cannot listen on")


def test_names_with_control_characters_are_refused(env: Path, sandbox: Sandbox) -> None:
    configure_clients(transport=sandbox.transport)
    assert _run("migrate").exit_code == 0
    user = _run(
        "users", "create", "--email", "e@example.org", "--name", "\x1b[31mRED", "--no-password"
    )
    _one_line_failure(user, "must not contain control characters")
    connection = _run(
        "connections", "add", "--name", "c\x1b[2J", "--base-url", sandbox.base_url,
        "--api-token", sandbox.admin_token,
    )  # fmt: skip
    _one_line_failure(connection, "name: must not contain control characters")


def test_connections_add_refuses_credentials_in_the_url_and_two_tokens(
    env: Path, sandbox: Sandbox
) -> None:
    configure_clients(transport=sandbox.transport)
    assert _run("migrate").exit_code == 0
    with_password = sandbox.base_url.replace("://", "://bob:PASSW0RDX@")
    result = _run(
        "connections", "add", "--name", "c", "--base-url", with_password,
        "--api-token", sandbox.admin_token,
    )  # fmt: skip
    _one_line_failure(result, "base_url: must not contain a user name or password")
    assert "PASSW0RDX" not in result.output
    both = _run(
        "connections", "add", "--name", "c", "--base-url", sandbox.base_url,
        "--api-token", "x", "--api-token-stdin",
    )  # fmt: skip
    _one_line_failure(both, "not both", exit_code=2)


@pytest.mark.parametrize("reference", ["99999999999999999999999", "\u0661"])
def test_connections_test_with_an_impossible_id_is_not_found(env: Path, reference: str) -> None:
    assert _run("migrate").exit_code == 0
    _one_line_failure(_run("connections", "test", reference), "no connection named")


def test_secrets_rotate_refuses_empty_or_known_keys(env: Path) -> None:
    assert _run("migrate").exit_code == 0
    assert _run("users", "ls").exit_code == 0  # opening the store creates the keys file
    keys = read_keys_file(env / "secret.keys")
    _one_line_failure(_run("secrets", "rotate", "--new-key", ""), "--new-key is empty")
    _one_line_failure(_run("secrets", "rotate", "--new-key", keys[0]), "already one of the keys")
    assert read_keys_file(env / "secret.keys") == keys


def test_a_failed_rotation_leaves_the_keys_file_as_it_was(env: Path, sandbox: Sandbox) -> None:
    configure_clients(transport=sandbox.transport)
    assert _run("migrate").exit_code == 0
    added = _run(
        "connections", "add", "--name", "Main", "--base-url", sandbox.base_url,
        "--api-token", sandbox.admin_token,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    # The stored token was sealed with a key this file no longer holds: nothing can rotate.
    foreign = [Fernet.generate_key().decode()]
    (env / "secret.keys").write_text(foreign[0] + "\n")
    failed = _run("secrets", "rotate")
    assert failed.exit_code == 1, failed.output
    assert read_keys_file(env / "secret.keys") == foreign


def test_runs_recover_on_a_database_no_engine_has_used(env: Path) -> None:
    assert _run("migrate").exit_code == 0
    result = _run("runs", "recover", "--executor-id", "gone-worker")
    assert result.exit_code == 0, result.output
    assert "0 run(s) of gone-worker" in result.output
    blank = _run("runs", "recover", "--executor-id", " ")
    _one_line_failure(blank, "--executor-id is empty", exit_code=2)


@pytest.mark.parametrize(
    "command",
    [
        ["automations", "show", "99999999999999999999999"],
        ["automations", "enable", "0"],
        ["runs", "ls", "--automation", "99999999999999999999999"],
        ["demo", "--responses", "5"],
    ],
)
def test_out_of_range_or_misplaced_options_are_usage_errors(env: Path, command: list[str]) -> None:
    result = _run(*command)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_connections_add_reads_one_checked_token_from_stdin(env: Path, sandbox: Sandbox) -> None:
    configure_clients(transport=sandbox.transport)
    assert _run("migrate").exit_code == 0
    add = ["connections", "add", "--name", "c", "--base-url", sandbox.base_url, "--api-token-stdin"]
    _one_line_failure(_run(*add, input="\n"), "no API token on stdin (--api-token-stdin reads")
    _one_line_failure(_run(*add, input="x" * 2001 + "\n"), "not an API token (too long")
    _one_line_failure(_run(*add, input="tok\x1ben\n"), "(too long, or not text)")
    assert _run("connections", "ls", "--json").stdout.strip() == "[]"
    added = _run(*add, input=f"  {sandbox.admin_token}\nignored second line\n")
    assert added.exit_code == 0, added.output
    assert "added connection 'c'" in added.stdout
