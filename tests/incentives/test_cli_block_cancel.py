"""``rewards block`` and ``rewards cancel``: one command in two words, with the same options,
the same lines and the same exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from qualflow.cli.incentives_cmd import rewards_app
from qualflow.store.secrets import SecretBox
from tests.incentives.support import Db
from tests.incentives.test_cli_user_audit import Env, _user, failed, incentive, invoke, ok, submit

DONE = {"block": "blocked", "cancel": "cancelled"}


@pytest.fixture
def cli_env(db: Db, secret_box: SecretBox, tmp_path: Path) -> Env:
    return {
        "QUALFLOW_DATABASE_URL": db.url,
        "QUALFLOW_SECRET_KEYS": ",".join(secret_box.keys),
        "QUALFLOW_DATA_DIR": str(tmp_path / "data"),
        "QUALFLOW_SMTP_HOST": None,
        "COLUMNS": "200",
    }


def parameters(name: str) -> list[tuple[str, tuple[str, ...], bool]]:
    sub = typer.main.get_command(rewards_app).commands[name]  # type: ignore[attr-defined]
    return [(p.name or "", tuple(p.opts), p.required) for p in sub.params]


def test_both_take_the_same_arguments_and_options() -> None:
    assert parameters("block") == parameters("cancel")
    assert [name for name, _, _ in parameters("block")] == ["references", "reason", "as_json"]


@pytest.mark.parametrize("action", ["block", "cancel"])
def test_each_line_says_how_a_reward_ended_and_a_refusal_fails_the_command(
    db: Db, cli_env: Env, action: str
) -> None:
    reference = incentive(
        cli_env, "--provider", "manual", "--amount", "5", "--currency", "USD",
        "--approval-mode", "review_all",
    )  # fmt: skip
    held, other = submit(db, reference, "x@example.org", "y@example.org")
    done = DONE[action]

    stdout, error = failed(cli_env, "rewards", action, held, held.lower(), "RW-NOPE")
    assert stdout.splitlines() == [
        f"{held}: ok ({done}) {done} by cli:{_user()}",
        "RW-NOPE: refused: reward RW-NOPE does not exist",
    ]
    assert error == f"error: 1 of 2 reward(s) not {done}"

    answer = ok(cli_env, "rewards", action, other, "--reason", "test", "--json")
    assert json.loads(answer) == {
        "succeeded": 1,
        "failed": 0,
        "results": [
            {
                "reference_id": other,
                "ok": True,
                "status": done,
                "message": f"{done} by cli:{_user()}: test",
            }
        ],
    }
    # Ended already: refused, with the status it has.
    again = invoke(cli_env, "rewards", action, other, "--json")
    assert again.exit_code == 1
    assert json.loads(again.stdout)["results"][0]["status"] == done
