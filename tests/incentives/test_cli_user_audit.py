"""``qualflow incentives`` as a demanding new user meets it: bulk actions say how each reward
ended, empty listings say what to do, people's text is printed as it is, and every option says
what it does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from qualflow.cli import app
from qualflow.cli.incentives_cmd import app as incentives_app
from qualflow.incentives.service import EMAIL_AWAITS_SETTINGS, RewardRequestIn, RewardService
from qualflow.store.secrets import SecretBox
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Db

Env = dict[str, str | None]


@pytest.fixture
def cli_env(db: Db, secret_box: SecretBox, tmp_path: Path) -> Env:
    return {
        "QUALFLOW_DATABASE_URL": db.url,
        "QUALFLOW_SECRET_KEYS": ",".join(secret_box.keys),
        "QUALFLOW_DATA_DIR": str(tmp_path / "data"),
        "QUALFLOW_SMTP_HOST": None,  # unset: the tests say whether email works
        "TANGO_PLATFORM_KEY": None,
        "COLUMNS": "200",
    }


@pytest.fixture
def mail_env(cli_env: Env, smtp_sink: SmtpSink) -> Env:
    return {**cli_env, "QUALFLOW_SMTP_HOST": "127.0.0.1", "QUALFLOW_SMTP_PORT": str(smtp_sink.port)}


def invoke(env: Env, *args: str) -> Result:
    return CliRunner().invoke(app, ["incentives", *args], env=env)


def ok(env: Env, *args: str) -> str:
    result = invoke(env, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout.strip()


def failed(env: Env, *args: str, code: int = 1) -> tuple[str, str]:
    """The command fails with exit code ``code`` and its last stderr line is one
    ``error: …``; (stdout, that line)."""
    result = invoke(env, *args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr
    return result.stdout.strip(), last


def incentive(env: Env, *options: str) -> str:
    return ok(env, "create", "--name", "Study", *options)


def gift_codes(env: Env, tmp_path: Path, codes: int, *options: str) -> str:
    pool = ok(env, "pools", "create", "Cards")
    csv = tmp_path / "codes.csv"
    csv.write_text("code,value,currency\n" + "".join(f"C{i},10,USD\n" for i in range(codes)))
    if codes:
        ok(env, "pools", "import", pool, str(csv))
    return incentive(
        env, "--provider", "gift_codes", "--pool", pool, "--amount", "10", "--currency", "USD",
        *options,
    )  # fmt: skip


def submit(db: Db, reference: str, *emails: str) -> list[str]:
    service = RewardService(db.sessionmaker)
    made = []
    for email in emails:
        submitted = service.submit(
            RewardRequestIn(
                incentive_reference=reference, email=email, source="manual",
                requested_by="tests", request_key=f"{reference}:{email}",
                response_values=dict(CLEAN_FRAUD_FIELDS),
            )
        )  # fmt: skip
        assert submitted.reward is not None, submitted.message
        made.append(submitted.reward.reference_id)
    return made


# -- bulk actions report how each reward ended ----------------------------------------------------


def test_release_says_which_rewards_were_paid_and_which_are_held_again(
    db: Db, mail_env: Env, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    """One code for two held rewards: the service accepts both releases, but only one can be
    paid; the other is held again, and the command must not call that "ok (approved)"."""
    reference = gift_codes(mail_env, tmp_path, 1, "--approval-mode", "review_all")
    first, second = submit(db, reference, "a@example.org", "b@example.org")
    stdout, error = failed(
        mail_env, "rewards", "release", first, second.lower(), second, "--reason", "checked"
    )
    lines = stdout.splitlines()
    assert len(lines) == 2  # the same reward named twice is released once
    assert lines[0].startswith(f"{first}: ok (sent) released by cli:")
    assert lines[1].startswith(f"{second}: not paid (held): released by cli:")
    assert lines[1].endswith(
        ": checked, then held: out of codes: pool 'Cards' has no unused 10.00 USD code left"
    )
    assert error == "error: 1 of 2 reward(s) not released and paid"
    assert [m["to"] for m in smtp_sink.messages] == [["a@example.org"]]

    result = invoke(mail_env, "rewards", "release", second, "--json")
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert (answer["succeeded"], answer["failed"]) == (0, 1)
    assert answer["results"][0]["status"] == "held"
    assert result.stderr.strip() == "error: 1 of 1 reward(s) not released and paid"


def test_mark_paid_without_email_says_the_email_waits_for_email_settings(
    db: Db, cli_env: Env, mail_env: Env, smtp_sink: SmtpSink
) -> None:
    reference = incentive(
        cli_env, "--provider", "manual", "--amount", "5", "--currency", "EUR",
        "--approval-mode", "automatic",
    )  # fmt: skip
    (reward,) = submit(db, reference, "m@example.org")
    assert ok(cli_env, "fulfil") == "handled 1 reward(s)"  # manual: waits to be paid by hand
    ok(cli_env, "update", reference, "--approval-mode", "review_all")
    (held,) = submit(db, reference, "h@example.org")
    assert ok(cli_env, "rewards", "mark-paid", reward) == (
        f"{reward}: ok (ordered) marked paid by cli:{_user()}; to be tried again by a worker "
        f"({EMAIL_AWAITS_SETTINGS})"
    )
    shown = ok(cli_env, "rewards", "show", reward)
    assert "5.00 EUR from " + reference + " (manual)" in shown
    assert f"last error: {EMAIL_AWAITS_SETTINGS}" in shown
    assert failed(cli_env, "rewards", "resend", reward)[1] == (
        "error: email is not configured (set QUALFLOW_SMTP_HOST)"
    )

    # Its first email, which waited for email settings: "sent", as the UI says.
    assert ok(mail_env, "rewards", "resend", reward) == f"sent {reward} to m@example.org"
    assert failed(mail_env, "rewards", "resend", held)[1] == (
        f"error: only rewards that were paid can be resent; {held} is held"
    )
    assert "last error" not in ok(mail_env, "rewards", "show", reward)
    assert len(smtp_sink.messages) == 1


def test_fulfil_names_the_reward_it_could_not_email(
    db: Db, cli_env: Env, mail_env: Env, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    reference = gift_codes(cli_env, tmp_path, 1, "--approval-mode", "automatic")
    (reward,) = submit(db, reference, "f@example.org")
    result = invoke(cli_env, "fulfil")
    assert (result.exit_code, result.stdout.strip()) == (0, "handled 1 reward(s)")
    # Not Python's raw "reward 1: …" log line, which names a row id no command takes.
    assert result.stderr == f"warning: {reward} was {EMAIL_AWAITS_SETTINGS}\n"
    # Run again with email settings, it sends what waited for them.
    assert ok(mail_env, "fulfil") == "handled 1 reward(s)"
    assert [m["to"] for m in smtp_sink.messages] == [["f@example.org"]]
    assert ok(mail_env, "fulfil") == "handled 0 reward(s)"
    # A copy of an email the respondent already had is "resent".
    assert ok(mail_env, "rewards", "resend", reward) == f"resent {reward} to f@example.org"
    assert len(smtp_sink.messages) == 2


def test_refusals_end_with_one_error_line_and_blank_ids_are_refused(db: Db, cli_env: Env) -> None:
    reference = incentive(
        cli_env, "--provider", "manual", "--amount", "5", "--currency", "USD",
        "--approval-mode", "review_all",
    )  # fmt: skip
    (reward,) = submit(db, reference, "x@example.org")
    stdout, error = failed(cli_env, "rewards", "block", reward, reward, "RW-NOPE")
    assert stdout.splitlines() == [
        f"{reward}: ok (blocked) blocked by cli:{_user()}",
        "RW-NOPE: refused: reward RW-NOPE does not exist",
    ]
    assert error == "error: 1 of 2 reward(s) not blocked"
    blank = "error: an empty reference id was given (an unset shell variable?)"
    assert failed(cli_env, "show", "", code=2)[1] == blank
    assert failed(cli_env, "rewards", "show", " ", code=2)[1] == blank
    assert failed(cli_env, "rewards", "ls", "--incentive", "", code=2)[1] == blank
    assert failed(cli_env, "rewards", "cancel", reward, "")[1] == (
        "error: an empty reward reference id was given (an unset shell variable?)"
    )


# -- listings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["pools", "ls"], "No gift-code pools yet: create one with qualflow incentives pools"),
        (["tango", "ls"], "No Tango accounts yet: add one with qualflow incentives tango add."),
        (["keys", "ls"], "No platform API keys yet: create one with qualflow incentives keys"),
        (["rewards", "ls"], "No rewards yet: they come from an automation's"),
        (["rewards", "ls", "--status", "held"], "No rewards match."),
    ],
)
def test_an_empty_listing_says_what_to_do(cli_env: Env, args: list[str], says: str) -> None:
    out = ok(cli_env, *args)
    assert out.startswith(says)
    assert "\n" not in out
    assert json.loads(ok(cli_env, *args, "--json")) == []


def test_rewards_ls_says_when_it_shows_only_the_newest(db: Db, cli_env: Env) -> None:
    reference = incentive(
        cli_env, "--provider", "manual", "--amount", "5", "--currency", "USD",
        "--approval-mode", "review_all",
    )  # fmt: skip
    rewards = submit(db, reference, "a@example.org", "b@example.org", "c@example.org")
    result = invoke(cli_env, "rewards", "ls", "--status", "HELD", "--limit", "2", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["reference_id"] for r in json.loads(result.stdout)] == rewards[:0:-1]
    assert result.stderr == (
        "note: showing the newest 2 of 3 rewards; --limit shows more (up to 10000)\n"
    )
    assert invoke(cli_env, "rewards", "ls", "--limit", "3").stderr == ""
    listed = ok(cli_env, "rewards", "ls", "--status", "sent,held", "--status", "failed", "--json")
    assert len(json.loads(listed)) == 3


def test_text_people_wrote_is_printed_as_it_is(db: Db, cli_env: Env, tmp_path: Path) -> None:
    """A name with rich markup in it once ended every listing in a MarkupError traceback."""
    odd = "[/] Odd [bold]one"
    pool = ok(cli_env, "pools", "create", odd)
    reference = ok(
        cli_env, "create", "--name", odd, "--provider", "gift_codes", "--pool", pool,
        "--amount", "10", "--currency", "USD", "--approval-mode", "automatic",
    )  # fmt: skip
    (reward,) = submit(db, reference, "o@example.org")
    ok(cli_env, "fulfil")  # no code: held, with the pool's name in the reason
    for args in (
        ["ls"], ["show", reference], ["review", reference], ["pools", "ls"], ["rewards", "ls"],
        ["rewards", "show", reward],
    ):  # fmt: skip
        assert odd in ok(cli_env, *args), args
    review = ok(cli_env, "review", reference).splitlines()
    assert review[0] == f"{reference} {odd}"
    assert "approval: automatic" in review


def test_long_reasons_are_cut_visibly(db: Db, cli_env: Env) -> None:
    pool = ok(cli_env, "pools", "create", "Thank-you cards for the spring panel " + "x" * 40)
    reference = incentive(
        cli_env, "--provider", "gift_codes", "--pool", pool, "--amount", "10", "--currency",
        "USD", "--approval-mode", "automatic",
    )  # fmt: skip
    (reward,) = submit(db, reference, "r@example.org")
    ok(cli_env, "fulfil")  # held: "out of codes: pool '…' has no unused 10.00 USD code left"
    listed = ok(cli_env, "rewards", "ls")
    assert "out of codes: pool 'Thank-you cards" in listed
    assert "…" in listed  # the reason runs past the column's 80 characters, and says so
    assert "has no unused 10.00 USD code left" in ok(cli_env, "rewards", "show", reward)


# -- pools, export, dates -------------------------------------------------------------------------


def test_a_pool_import_that_imports_nothing_ends_with_an_error_line(
    cli_env: Env, tmp_path: Path
) -> None:
    pool = ok(cli_env, "pools", "create", "P")
    bad = tmp_path / "bad.csv"
    bad.write_text("code,value,currency\n,10,USD\nA,x,USD\n")
    result = invoke(cli_env, "pools", "import", pool, str(bad))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "rejected line 2: the code is empty",
        "rejected line 3: 'x' is not an amount",
        f"error: no code imported: 2 line(s) of {bad} rejected",
    ]
    header_only = tmp_path / "header.csv"
    header_only.write_text("code,value,currency,expiry\n")
    assert failed(cli_env, "pools", "import", pool, str(header_only))[1] == (
        f"error: {header_only} has no codes below its header row"
    )


def test_pools_ls_json_carries_the_low_stock_warnings(cli_env: Env, tmp_path: Path) -> None:
    reference = gift_codes(cli_env, tmp_path, 2)
    result = invoke(cli_env, "pools", "ls")
    assert result.stderr.startswith(f"warning: Study ({reference}) has 2 unused 10.00 USD code(s)")
    (pool,) = json.loads(ok(cli_env, "pools", "ls", "--json"))
    assert pool["stock"][0]["unused"] == 2
    (low,) = pool["low_stock"]
    assert (low["reference_id"], low["unused"], low["threshold"]) == (reference, 2, 10)
    assert low["message"] == result.stderr.strip().removeprefix("warning: ")


def test_rewards_export_to_stdout(
    db: Db, cli_env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    reference = incentive(
        cli_env, "--provider", "manual", "--amount", "5", "--currency", "USD",
        "--approval-mode", "review_all",
    )  # fmt: skip
    (reward,) = submit(db, reference, "e@example.org")
    result = invoke(cli_env, "rewards", "export", reference, "-o", "-", "--status", "HELD")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("reward,status,email")
    assert result.stdout.splitlines()[1].startswith(f"{reward},held,e@example.org")
    assert result.stderr == "wrote 1 reward(s) to stdout\n"
    assert not (tmp_path / "-").exists()


def test_open_and_close_dates_have_options(cli_env: Env) -> None:
    reference = incentive(
        cli_env, "--provider", "manual", "--amount", "5", "--currency", "USD",
        "--opens-at", "2030-01-01T00:00:00Z",
    )  # fmt: skip
    shown = json.loads(ok(cli_env, "show", reference, "--json"))
    assert (shown["opens_at"], shown["state"]) == ("2030-01-01T00:00:00Z", "not yet open")
    ok(cli_env, "update", reference, "--budget", "100")
    text = ok(cli_env, "show", reference)
    assert "Opens at             2030-01-01T00:00:00Z" in text
    assert "Budget               100.00 USD" in text  # amounts carry their currency
    assert "Committed amount     0.00 USD" in text
    assert failed(cli_env, "update", reference, "--closes-at", "2031-01-01T00:00")[1] == (
        "error: closes_at: give a time zone (e.g. 2025-01-31T23:59:00Z)"
    )
    ok(cli_env, "update", reference, "--closes-at", "2031-01-01T00:00:00+02:00")
    assert json.loads(ok(cli_env, "show", reference, "--json"))["closes_at"] == (
        "2030-12-31T22:00:00Z"
    )


# -- help ----------------------------------------------------------------------------------------


def _commands(group: Any, path: str = "") -> list[tuple[str, Any]]:
    # Duck-typed: recent typer releases build commands with their own copy of click.
    found: list[tuple[str, Any]] = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += _commands(command, f"{path}{name} ")
        else:
            found.append((f"{path}{name}", command))
    return found


def test_every_option_and_argument_says_what_it_is() -> None:
    group = typer.main.get_command(incentives_app)
    assert len(_commands(group)) > 25
    missing = [
        f"{name} {param.name}"
        for name, command in _commands(group)
        for param in command.params
        if param.name != "help" and not (getattr(param, "help", None) or "").strip()
    ]
    assert missing == []


def _user() -> str:
    import getpass

    return getpass.getuser()
