"""A manual reward approved but not yet recorded for payment by hand (no worker ran since it was
approved or released) can be marked paid at once: it awaits payment just the same."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from qualflow.incentives import service as service_module
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import Incentive
from qualflow.incentives.schemas import IncentiveSpec
from qualflow.incentives.service import RewardService
from tests.incentives.support import Db, reward_row, transitions
from tests.incentives.test_rewards import request


def manual_incentive(manager: IncentiveManager, approval_mode: str) -> Incentive:
    """A manual (paid by hand) incentive of 25 EUR."""
    spec = IncentiveSpec(
        name="Diary", provider="manual", amount=Decimal("25"), currency="EUR",
        reward_name="bank transfer", approval_mode=approval_mode,
    )  # fmt: skip
    return asyncio.run(manager.create(spec, actor="tests"))


def test_an_approved_manual_reward_can_be_marked_paid(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    incentive = manual_incentive(manager, "automatic")
    submission = service.submit(request(incentive, "m@example.org"))
    assert submission.reward is not None
    reference = submission.reward.reference_id
    assert reward_row(db, reference).status == "approved"

    [result] = service.mark_paid([reference], actor="ops@example.org")
    assert result.ok, result.message
    reward = reward_row(db, reference)
    assert (reward.status, reward.paid_at is not None) == ("ordered", True)
    assert transitions(db, reference)[-2:] == [
        ("approved", "ordered", "to be paid by hand"),
        ("ordered", "ordered", "marked paid by ops@example.org"),
    ]
    again = service.mark_paid([reference], actor="ops@example.org")[0]
    assert not again.ok
    assert "was marked paid already" in again.message


def test_a_held_manual_reward_says_to_release_it_first(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    incentive = manual_incentive(manager, "review_all")
    submission = service.submit(request(incentive, "h@example.org"))
    assert submission.reward is not None
    reference = submission.reward.reference_id
    [result] = service.mark_paid([reference], actor="ops@example.org")
    assert not result.ok
    assert result.message == (
        f"{reference} is held for review (this incentive reviews every reward before paying it): "
        "release it first, then mark it paid"
    )
    assert reward_row(db, reference).status == "held"


def test_a_worker_recording_the_reward_first_is_a_clear_refusal_not_an_error(
    db: Db, manager: IncentiveManager, service: RewardService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fulfiller moved the reward on between mark-paid's read and its write: mark-paid's
    own move finds the status changed and refuses with a reason (the operator tries again)."""
    incentive = manual_incentive(manager, "automatic")
    submission = service.submit(request(incentive, "r@example.org"))
    assert submission.reward is not None
    reference = submission.reward.reference_id
    monkeypatch.setattr(service_module, "move", lambda *args, **kwargs: False)

    [result] = service.mark_paid([reference], actor="ops@example.org")

    assert not result.ok
    assert "mark it paid again" in result.message
    assert reward_row(db, reference).paid_at is None
