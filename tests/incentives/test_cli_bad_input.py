"""``qualflow incentives`` with bad input: a non-zero exit code and a one-line reason, never a
traceback, a hang, a silently ignored option or a printed secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner, Result

from qualflow.cli import app
from qualflow.incentives.api import TangoAccountOut
from qualflow.incentives.manage import IncentiveError, IncentiveManager
from qualflow.incentives.models import TangoAccount
from qualflow.incentives.providers.gift_codes import parse_codes_csv
from qualflow.settings import Settings
from qualflow.store.secrets import SecretBox
from qualflow.validation import MAX_ID
from tests.incentives.support import Db, Person
from tests.incentives.test_pages import sign_in

API = "/api/v1/incentives"
HUGE = "99999999999999999999"


@pytest.fixture
def cli_env(db: Db, secret_box: SecretBox, tmp_path: Path) -> dict[str, str | None]:
    return {
        "QUALFLOW_DATABASE_URL": db.url,
        "QUALFLOW_SECRET_KEYS": ",".join(secret_box.keys),
        "QUALFLOW_DATA_DIR": str(tmp_path / "data"),
        "TANGO_PLATFORM_KEY": None,  # unset: the tests say where the key comes from
    }


def invoke(env: dict[str, str | None], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, ["incentives", *args], env=env, input=stdin)


def run(env: dict[str, str | None], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = invoke(env, *args, stdin=stdin)
    return result.exit_code, result.stdout, result.stderr


def one_error(
    env: dict[str, str | None], *args: str, stdin: str | None = None, code: int = 1
) -> str:
    """The command fails with exit code ``code`` (1; 2 for options that contradict each other
    or ask nothing) and one ``error: …`` line; that line."""
    result = invoke(env, *args, stdin=stdin)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def manual_incentive(env: dict[str, str | None]) -> str:
    code, out, err = run(
        env, "create", "--name", "Thanks", "--provider", "manual", "--amount", "5",
        "--currency", "USD",
    )  # fmt: skip
    assert code == 0, err
    return out.strip()


def tango_account(env: dict[str, str | None], base_url: str = "https://tango.example") -> str:
    code, out, err = run(
        env, "tango", "add", "--name", "T", "--platform-name", "p", "--customer-id", "c",
        "--account-id", "a", "--base-url", base_url, "--platform-key-stdin",
        stdin="tango-secret-key-1234\n",
    )  # fmt: skip
    assert code == 0, err
    return out.strip()


# 1. input files that never end ------------------------------------------------------------------


def test_input_files_that_never_end_are_refused(cli_env: dict[str, str | None]) -> None:
    assert "larger than 64 MB" in one_error(cli_env, "create", "-f", "/dev/zero")
    reference = manual_incentive(cli_env)
    assert "larger than 64 MB" in one_error(cli_env, "update", reference, "-f", "/dev/zero")
    code, pool, _ = run(cli_env, "pools", "create", "P")
    assert code == 0
    assert "larger than 64 MB" in one_error(cli_env, "pools", "import", pool.strip(), "/dev/zero")


def test_missing_and_binary_input_files_are_one_line(
    cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    assert one_error(cli_env, "create", "-f", str(tmp_path / "nope.json")).endswith(
        "nope.json: no such file"
    )
    binary = tmp_path / "codes.csv"
    binary.write_bytes(b"\xff\xfe\x00code")
    assert one_error(cli_env, "pools", "import", "1", str(binary)).endswith("is not UTF-8 text")


# 2. the Tango platform key without a terminal ---------------------------------------------------


def test_tango_key_without_a_terminal_says_how_to_pass_it(
    cli_env: dict[str, str | None],
) -> None:
    add = ["tango", "add", "--name", "T", "--platform-name", "p", "--customer-id", "c",
           "--account-id", "a"]  # fmt: skip
    line = one_error(cli_env, *add, stdin="")
    assert "no platform key given" in line
    assert "--platform-key-stdin" in line
    assert "no platform key on stdin" in one_error(
        cli_env, *add, "--platform-key-stdin", stdin="\n"
    )
    assert "not both" in one_error(
        cli_env, *add, "--platform-key", "k", "--platform-key-stdin", stdin="k\n", code=2
    )
    account = tango_account(cli_env)
    line = one_error(cli_env, "tango", "update", account, "--new-key", stdin="")
    assert "--platform-key-stdin" in line
    code, out, err = run(
        cli_env, "tango", "update", account, "--platform-key-stdin", stdin="rotated-key-9876\n"
    )
    assert (code, out.strip()) == (0, f"updated Tango account {account}"), err
    code, out, _ = run(cli_env, "tango", "ls", "--json")
    assert json.loads(out)[0]["platform_key"] == "••••9876"
    assert "rotated-key" not in out


# 3. a bad base URL is refused by update as by add -----------------------------------------------


def test_tango_update_validates_the_base_url_as_add_does(
    cli_env: dict[str, str | None], db: Db
) -> None:
    add_error = one_error(
        cli_env, "tango", "add", "--name", "T", "--platform-name", "p", "--customer-id", "c",
        "--account-id", "a", "--base-url", "bad", "--platform-key-stdin", stdin="key\n",
    )  # fmt: skip
    account = tango_account(cli_env)
    assert one_error(cli_env, "tango", "update", account, "--base-url", "bad") == add_error
    assert "base_url must be an http:// or https:// URL" in add_error
    for bad in ("http://", "ftp://tango.example", "https://tango.example:99999"):
        assert "base_url" in one_error(cli_env, "tango", "update", account, "--base-url", bad)
    with pytest.raises(IncentiveError, match="base_url"):  # what REST and the UI call
        IncentiveManager(db.sessionmaker).update_tango_account(int(account), base_url="bad")
    _, out, _ = run(cli_env, "tango", "ls", "--json")
    assert json.loads(out)[0]["base_url"] == "https://tango.example"


# 4. rewards export validates --status as rewards ls does ----------------------------------------


def test_rewards_export_refuses_an_unknown_status(
    cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    reference = manual_incentive(cli_env)
    output = tmp_path / "r.csv"
    line = one_error(
        cli_env, "rewards", "export", reference, "-o", str(output), "--status", "bogus", code=2
    )
    assert line == one_error(cli_env, "rewards", "ls", "--status", "bogus", code=2)
    assert "unknown status bogus" in line
    assert not output.exists()
    code, out, _ = run(
        cli_env, "rewards", "export", reference, "-o", str(output), "--status", "held"
    )
    assert (code, out.strip()) == (0, f"wrote 0 reward(s) to {output}")


def test_rest_export_refuses_an_unknown_status(hub: TestClient, admin: Person) -> None:
    created = hub.post(
        API, json={"name": "M", "provider": "manual", "amount": "5", "currency": "USD"},
        headers=admin.headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    answer = hub.get(
        f"{API}/{created.json()['reference_id']}/rewards.csv",
        params={"status": "bogus"}, headers=admin.headers,
    )  # fmt: skip
    assert answer.status_code == 422
    assert "unknown status bogus" in answer.text


# 5. a password in a Tango base URL is refused, and never shown -----------------------------------

CREDENTIALS_REFUSED = (
    "base_url must not contain a user name or password (they have fields of their own)"
)


def test_a_base_url_with_credentials_is_refused(cli_env: dict[str, str | None]) -> None:
    error = one_error(
        cli_env, "tango", "add", "--name", "T", "--platform-name", "p", "--customer-id", "c",
        "--account-id", "a", "--base-url", "http://bob:PASSW0RDX@127.0.0.1:18765",
        "--platform-key-stdin", stdin="tango-secret-key-1234\n",
    )  # fmt: skip
    assert error == f"error: {CREDENTIALS_REFUSED}"
    account = tango_account(cli_env)
    error = one_error(
        cli_env, "tango", "update", account, "--base-url", "https://ann@tango.example"
    )
    assert error == f"error: {CREDENTIALS_REFUSED}"


def test_rest_refuses_a_base_url_with_credentials(hub: TestClient, admin: Person) -> None:
    account = {
        "name": "Secret", "base_url": "https://ann:S3CRETPW@tango.example", "platform_name": "p",
        "platform_key": "k" * 12, "customer_id": "c", "account_id": "a",
    }  # fmt: skip
    created = hub.post(f"{API}/providers/tango-accounts", json=account, headers=admin.headers)
    assert created.status_code == 422
    assert CREDENTIALS_REFUSED in created.text
    assert "S3CRETPW" not in created.text


def test_an_account_stored_with_a_password_in_its_base_url_shows_it_masked(
    hub: TestClient, hub_settings: Settings, admin: Person, cli_env: dict[str, str | None]
) -> None:
    """Accounts stored before such URLs were refused keep working, with the password hidden."""
    created = hub.post(
        f"{API}/providers/tango-accounts",
        json={"name": "Old", "base_url": "https://tango.example", "platform_name": "p",
              "platform_key": "k" * 12, "customer_id": "c", "account_id": "a"},
        headers=admin.headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    store = hub.app.state.store  # type: ignore[attr-defined]
    with store.sessionmaker() as session, session.begin():
        session.execute(update(TangoAccount).values(base_url="https://ann:S3CRETPW@tango.example"))
    listed = hub.get(f"{API}/providers/tango-accounts", headers=admin.headers)
    assert listed.json()[0]["base_url"] == "https://ann:***@tango.example"
    assert "S3CRETPW" not in listed.text
    sign_in(hub, admin)
    page = hub.get("/incentives/providers")
    assert page.status_code == 200
    assert "https://ann:***@tango.example" in page.text
    assert "S3CRETPW" not in page.text
    keys = ",".join(key.get_secret_value() for key in hub_settings.secret_keys)
    code, out, _ = run({**cli_env, "QUALFLOW_SECRET_KEYS": keys}, "tango", "ls", "--json")
    assert code == 0
    assert "S3CRETPW" not in out
    assert json.loads(out)[0]["base_url"] == "https://ann:***@tango.example"


def test_shown_base_url_without_a_password_is_unchanged() -> None:
    from qualflow.incentives.manage import shown_base_url

    assert shown_base_url("https://api.tangocard.com") == "https://api.tangocard.com"
    assert shown_base_url("http://u:p@h:1/x") == "http://u:***@h:1/x"
    assert TangoAccountOut.model_fields["base_url"].description


# 6. huge numbers --------------------------------------------------------------------------------


def test_huge_amounts_are_refused_with_one_line(cli_env: dict[str, str | None]) -> None:
    line = one_error(
        cli_env, "create", "--name", "x", "--provider", "manual", "--amount",
        "99999999999999999", "--currency", "USD",
    )  # fmt: skip
    assert "too large" in line
    assert "OverflowError" not in line
    reference = manual_incentive(cli_env)
    assert "too large" in one_error(cli_env, "update", reference, "--amount", "99999999999999999")
    assert "too large" in one_error(cli_env, "update", reference, "--budget", "1e400")
    assert "max_rewards" in one_error(cli_env, "update", reference, "--max-rewards", HUGE)


@pytest.mark.parametrize(
    "args",
    [
        ("pools", "import", HUGE, "codes.csv"),
        ("keys", "rename", HUGE, "x"),
        ("keys", "reveal", HUGE),
        ("keys", "deactivate", HUGE, "--yes"),
        ("tango", "rm", HUGE),
        ("tango", "update", HUGE, "--name", "x"),
        ("tango", "catalog", HUGE),
        ("create", "--name", "x", "--provider", "gift_codes", "--pool", HUGE),
    ],
)
def test_huge_ids_are_a_usage_error(cli_env: dict[str, str | None], args: tuple[str, ...]) -> None:
    result = invoke(cli_env, *args)
    assert result.exit_code == 2, result.stderr
    assert isinstance(result.exception, SystemExit)
    assert "OverflowError" not in result.stderr
    assert str(MAX_ID) in result.stderr


def test_a_huge_value_in_a_pool_csv_is_a_rejected_line(
    cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    code, pool, _ = run(cli_env, "pools", "create", "P")
    assert code == 0
    codes = tmp_path / "codes.csv"
    codes.write_text("code,value,currency\nAAA,1e400,USD\nBBB,99999999999,USD\nCCC,10,USD\n")
    code, out, err = run(cli_env, "pools", "import", pool.strip(), str(codes))
    assert (code, out.strip()) == (0, "imported 1, skipped 0 duplicate(s)"), err
    assert err.splitlines() == [
        "rejected line 2: 1e400 USD is too large an amount",
        "rejected line 3: 99999999999.00 USD is too large (at most 21474836.47 USD)",
    ]


# 7. garbled messages ----------------------------------------------------------------------------


def test_messages_read_as_sentences(cli_env: dict[str, str | None]) -> None:
    code, out, _ = run(cli_env, "rewards", "release", "nosuch")
    assert (code, out.strip()) == (1, "NOSUCH: refused: reward NOSUCH does not exist")
    line = one_error(cli_env, "rewards", "resend", "X", "--email", "bad email")
    assert line == "error: 'bad email' is not an email address"
    line = one_error(cli_env, "review", "nosuch")
    assert "ApiError" not in line
    assert "nosuch" in line
    assert (
        one_error(cli_env, "review", "INC-ZZZZZZ") == "error: incentive INC-ZZZZZZ does not exist"
    )


def test_a_pool_import_that_fails_prints_only_its_reason(
    cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    codes = tmp_path / "codes.csv"
    codes.write_text("foo,bar\n1,2\n")
    assert one_error(cli_env, "pools", "import", "7", str(codes)) == (
        "error: gift-code pool 7 does not exist"
    )
    code, pool, _ = run(cli_env, "pools", "create", "P")
    assert code == 0
    assert "needs a header row" in one_error(cli_env, "pools", "import", pool.strip(), str(codes))


def test_malformed_pool_csv_lines_say_what_is_wrong() -> None:
    rows, errors = parse_codes_csv('code,value,currency\nAAA,10\nBBB,"10,USD\nCCC,10,USD\n')
    assert rows == []
    assert errors == [
        "line 2: the row has 2 cell(s), too few for the header's code, value, currency "
        "(missing: currency)",
        'line 3: a quoted cell runs over lines 3-4: is a closing quote (") missing?',
    ]
    rows, errors = parse_codes_csv('code,value,currency,expiry\nA,1,USD,"2099-01-01\nB,2,USD,\n')
    assert errors == ['line 2: a quoted cell runs over lines 2-3: is a closing quote (") missing?']
    # A file whose lines are fine keeps its line numbers.
    rows, errors = parse_codes_csv("code,value,currency\nA,1,USD\nB,x,USD\nC,2,USD\n")
    assert [row.line for row in rows] == [2, 4]
    assert errors == ["line 3: 'x' is not an amount"]


# 8. contradictions ------------------------------------------------------------------------------


def test_contradictory_options_are_refused(cli_env: dict[str, str | None]) -> None:
    line = one_error(
        cli_env, "create", "--name", "x", "--provider", "manual", "--pool", "5", "--amount", "1",
        "--currency", "USD",
    )  # fmt: skip
    assert line == "error: gift_code_pool_id is for gift-code incentives, not manual ones"
    line = one_error(
        cli_env, "create", "--name", "x", "--provider", "gift_codes", "--pool", "5",
        "--tango-account", "1", "--amount", "1", "--currency", "USD",
    )  # fmt: skip
    assert "tango_account_id and utid are for Tango incentives" in line
    reference = manual_incentive(cli_env)
    assert one_error(cli_env, "update", reference, "--active", "--paused", code=2) == (
        "error: give --active or --paused, not both"
    )
    assert one_error(cli_env, "ls", "--active", "--paused", code=2) == (
        "error: give --active or --paused, not both"
    )
    code, out, _ = run(cli_env, "update", reference, "--paused")
    assert code == 0
    code, out, _ = run(cli_env, "show", reference, "--json")
    assert json.loads(out)["active"] is False
    code, out, _ = run(cli_env, "ls", "--active", "--json")
    assert json.loads(out) == []


def test_overlong_emails_are_refused(cli_env: dict[str, str | None]) -> None:
    long_local = "a" * 300 + "@example.org"
    line = one_error(cli_env, "rewards", "resend", "X", "--email", long_local)
    assert "is not an email address" in line
    line = one_error(
        cli_env, "create", "--name", "x", "--provider", "manual", "--amount", "1",
        "--currency", "USD", "--alert-email", "a" * 65 + "@example.org",
    )  # fmt: skip
    assert "is not an email address" in line


def test_tango_fields_too_long_or_taken_are_one_line(cli_env: dict[str, str | None]) -> None:
    first = tango_account(cli_env)
    code, second, err = run(
        cli_env, "tango", "add", "--name", "Other", "--platform-name", "p", "--customer-id", "c",
        "--account-id", "a", "--platform-key-stdin", stdin="another-key-5678\n",
    )  # fmt: skip
    assert code == 0, err
    assert one_error(cli_env, "tango", "update", second.strip(), "--name", "T") == (
        "error: a Tango account named 'T' exists already"
    )
    assert one_error(cli_env, "tango", "update", first, "--customer-id", "c" * 101) == (
        "error: customer_id is longer than 100 characters"
    )
    assert one_error(cli_env, "pools", "create", "p" * 201) == (
        "error: the pool's name is longer than 200 characters"
    )
