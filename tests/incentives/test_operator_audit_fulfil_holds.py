"""``qualflow incentives fulfil`` says which rewards it had to hold (and why) instead of only
counting them among those it handled."""

from __future__ import annotations

from tests.incentives.support import Db
from tests.incentives.test_cli import run
from tests.incentives.test_operator_audit_cli_show import cli_env, submit_clean_request

__all__ = ["cli_env"]  # the fixture, used by name


def test_fulfil_warns_about_a_reward_it_held(cli_env: dict[str, str], db: Db) -> None:
    code, out, err = run(cli_env, "pools", "create", "Empty pool")
    assert code == 0, err
    code, out, err = run(
        cli_env, "create", "--name", "Cards", "--provider", "gift_codes", "--pool", out.strip(),
        "--amount", "10", "--currency", "USD", "--approval-mode", "automatic",
    )  # fmt: skip
    assert code == 0, err
    submission = submit_clean_request(db, out.strip(), "c@example.org")
    assert submission.reward is not None
    assert submission.reward.status == "approved"

    code, out, err = run(cli_env, "fulfil")
    assert code == 0, err
    assert out.strip() == "handled 1 reward(s)"
    [warning] = err.strip().splitlines()
    assert warning.startswith(f"warning: {submission.reward.reference_id} held: ")
