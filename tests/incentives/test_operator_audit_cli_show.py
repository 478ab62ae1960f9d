"""``rewards show``: why a reward was held reads as past once it was released, not as the reason
of a reward since paid."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualflow.incentives.service import RewardRequestIn, RewardService, Submission
from qualflow.store.secrets import SecretBox
from tests.incentives.support import Db
from tests.incentives.test_cli import run
from tests.incentives.test_rewards import CLEAN


@pytest.fixture
def cli_env(db: Db, secret_box: SecretBox, tmp_path: Path) -> dict[str, str]:
    return {
        "QUALFLOW_DATABASE_URL": db.url,
        "QUALFLOW_SECRET_KEYS": ",".join(secret_box.keys),
        "QUALFLOW_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",  # one line per reason, however long
    }


def submit_clean_request(db: Db, incentive_reference: str, email: str) -> Submission:
    """A reward request as an automation run makes it, with a response no fraud rule flags."""
    return RewardService(db.sessionmaker).submit(
        RewardRequestIn(
            incentive_reference=incentive_reference, email=email, source="automation",
            requested_by="tests", request_key="k", response_values=dict(CLEAN),
        )
    )  # fmt: skip


def test_a_released_reward_shows_its_hold_as_past(cli_env: dict[str, str], db: Db) -> None:
    code, out, err = run(
        cli_env, "create", "--name", "Diary", "--provider", "manual", "--amount", "25",
        "--currency", "EUR", "--approval-mode", "review_all",
    )  # fmt: skip
    assert code == 0, err
    submission = submit_clean_request(db, out.strip(), "m@example.org")
    assert submission.reward is not None
    reference = submission.reward.reference_id
    [hold] = submission.reward.reasons

    code, out, _ = run(cli_env, "rewards", "show", reference)
    assert f"  reason: {hold}" in out.splitlines()

    assert run(cli_env, "rewards", "release", reference)[0] == 0
    code, out, _ = run(cli_env, "rewards", "show", reference)
    assert out.splitlines()[0].startswith(f"{reference} ordered")
    assert f"  was held: {hold}" in out.splitlines()
    assert not any(line.startswith("  reason:") for line in out.splitlines())


def test_the_list_marks_a_released_rewards_hold_as_earlier(cli_env: dict[str, str], db: Db) -> None:
    code, out, err = run(
        cli_env, "create", "--name", "Diary", "--provider", "manual", "--amount", "25",
        "--currency", "EUR", "--approval-mode", "review_all",
    )  # fmt: skip
    assert code == 0, err
    submission = submit_clean_request(db, out.strip(), "m@example.org")
    assert submission.reward is not None
    reference = submission.reward.reference_id
    code, out, _ = run(cli_env, "rewards", "ls")
    [held] = [line for line in out.splitlines() if reference in line]
    assert "│ this incentive reviews every reward" in held

    assert run(cli_env, "rewards", "release", reference)[0] == 0
    code, out, _ = run(cli_env, "rewards", "ls")
    [released] = [line for line in out.splitlines() if reference in line]
    assert "│ earlier: this incentive reviews every reward" in released
