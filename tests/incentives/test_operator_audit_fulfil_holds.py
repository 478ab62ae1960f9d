"""``qualflow incentives fulfil`` says which rewards it had to hold (and why) instead of only
counting them among those it handled."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualflow.incentives.service import RewardRequestIn, RewardService
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
        "COLUMNS": "200",
    }


def test_fulfil_warns_about_a_reward_it_held(cli_env: dict[str, str], db: Db) -> None:
    code, out, err = run(cli_env, "pools", "create", "Empty pool")
    assert code == 0, err
    code, out, err = run(
        cli_env, "create", "--name", "Cards", "--provider", "gift_codes", "--pool", out.strip(),
        "--amount", "10", "--currency", "USD", "--approval-mode", "automatic",
    )  # fmt: skip
    assert code == 0, err
    submission = RewardService(db.sessionmaker).submit(
        RewardRequestIn(
            incentive_reference=out.strip(), email="c@example.org", source="automation",
            requested_by="tests", request_key="k", response_values=dict(CLEAN),
        )
    )  # fmt: skip
    assert submission.reward is not None
    assert submission.reward.status == "approved"

    code, out, err = run(cli_env, "fulfil")
    assert code == 0, err
    assert out.strip() == "handled 1 reward(s)"
    [warning] = err.strip().splitlines()
    assert warning.startswith(f"warning: {submission.reward.reference_id} held: ")
