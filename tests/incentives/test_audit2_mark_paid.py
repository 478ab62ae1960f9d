"""Marking a manual reward paid a second time says it was paid already, and when, instead of
a refusal that reads as if the reward still awaited payment."""

from __future__ import annotations

import asyncio

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.service import Fulfiller, RewardService
from tests.incentives.support import Db, reward_row
from tests.incentives.test_rewards import gift_incentive, manual_incentive, paid_reference


def test_marking_paid_twice_says_when_and_by_whom_it_was_marked(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    reference = paid_reference(service, manual_incentive(manager), "twice@example.org")
    (first,) = service.mark_paid([reference], actor="finance@example.org")
    assert first.ok
    paid_at = reward_row(db, reference).paid_at
    assert paid_at is not None

    (again,) = service.mark_paid([reference], actor="ops@example.org")

    assert not again.ok
    assert again.message == (
        f"{reference} was marked paid already, on {paid_at:%Y-%m-%d %H:%M} UTC by "
        "finance@example.org; its email goes out next"
    )
    assert reward_row(db, reference).paid_at == paid_at


def test_marking_a_reward_of_another_provider_paid_names_the_provider(
    manager: IncentiveManager, service: RewardService
) -> None:
    reference = paid_reference(service, gift_incentive(manager), "codes@example.org")

    (refused,) = service.mark_paid([reference], actor="ops@example.org")

    assert not refused.ok
    assert refused.message == (
        f"only manual rewards awaiting payment can be marked paid; {reference} is a "
        "gift_codes reward that is sent"
    )


def test_marking_paid_after_the_email_went_says_it_was_sent(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    reference = paid_reference(service, manual_incentive(manager), "sent@example.org")
    (first,) = service.mark_paid([reference], actor="finance@example.org")
    assert first.ok
    assert asyncio.run(Fulfiller(service).drain()) == 1
    reward = reward_row(db, reference)
    assert reward.status == "sent"
    assert reward.paid_at is not None

    (again,) = service.mark_paid([reference], actor="ops@example.org")

    assert (again.ok, again.status) == (False, "sent")
    assert again.message == (
        f"{reference} was marked paid already, on {reward.paid_at:%Y-%m-%d %H:%M} UTC by "
        "finance@example.org; its email was sent"
    )
