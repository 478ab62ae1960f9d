"""A bulk operation given the same reward more than once acts on it once, in first-seen order,
whoever calls it (the REST bulk endpoint and the review queue pass people's lists through)."""

from __future__ import annotations

from sqlalchemy import update

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import Incentive, Reward
from qualflow.incentives.service import ActionResult, RewardService
from tests.incentives.support import Db, reward_row, transitions
from tests.incentives.test_rewards import gift_incentive, manual_incentive, paid_reference, request


def held_rewards(service: RewardService, manager: IncentiveManager, count: int) -> list[str]:
    incentive = gift_incentive(manager, approval_mode="review_all")
    references = []
    for n in range(count):
        reward = service.submit(request(incentive, f"held{n}@example.org")).reward
        assert reward is not None
        references.append(reward.reference_id)
    return references


def test_block_names_each_reward_once_in_first_seen_order(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    first, second = held_rewards(service, manager, 2)
    results = service.block(
        [second, f" {first.lower()} ", "rw-nope2345", first, second.lower(), "RW-NOPE2345"],
        actor="r",
        reason="bots",
    )
    assert [(r.reference_id, r.ok, r.status) for r in results] == [
        (second, True, "blocked"),
        (first, True, "blocked"),
        ("RW-NOPE2345", False, ""),
    ]
    for reference in (first, second):
        assert reward_row(db, reference).status == "blocked"
        assert [t[1] for t in transitions(db, reference)].count("blocked") == 1


def test_release_retry_cancel_and_mark_paid_act_once_on_a_repeated_reward(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    released, failed, cancelled = held_rewards(service, manager, 3)

    def once(results: list[ActionResult], reference: str) -> None:
        assert [(r.reference_id, r.ok) for r in results] == [(reference, True)], results

    once(service.release([released, released.lower(), released], actor="r"), released)
    with db.sessionmaker.begin() as session:
        session.execute(update(Reward).where(Reward.reference_id == failed).values(status="failed"))
    once(service.retry([failed, failed], actor="r"), failed)
    once(service.cancel([cancelled, f"{cancelled} "], actor="r"), cancelled)
    incentive_id = reward_row(db, released).incentive_id
    with db.sessionmaker() as session:
        incentive = session.get(Incentive, incentive_id)
        assert incentive is not None
        assert incentive.committed_count == 2  # the release and the retry, each counted once

    unpaid = paid_reference(service, manual_incentive(manager), "paid@example.org")
    once(service.mark_paid([unpaid, unpaid.lower()], actor="r"), unpaid)
    marks = [t for t in transitions(db, unpaid) if t[2] == "marked paid by r"]
    assert len(marks) == 1
