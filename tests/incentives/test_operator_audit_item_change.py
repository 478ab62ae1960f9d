"""Choosing another Tango item for an incentive brings the new item's reward name and
redemption instructions (the emails named the old brand); ones a person wrote are kept."""

from __future__ import annotations

import asyncio

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.schemas import IncentivePatch
from tests.incentives.support import Tango
from tests.incentives.test_tango import tango_incentive


def test_a_new_item_brings_its_own_name_and_instructions(
    manager: IncentiveManager, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)  # U561593, the Amazon.com card
    assert incentive.reward_name == "Amazon.com Gift Card"
    changed = asyncio.run(
        manager.update(
            incentive.reference_id, IncentivePatch(utid="U442382"), actor="ops@example.org"
        )
    )
    coffee = tango.state.item("U442382")
    assert coffee is not None
    assert changed.reward_name == coffee.reward_name
    assert changed.redemption_instructions == coffee.redemption_instructions


def test_a_name_a_person_wrote_stays_with_a_new_item(
    manager: IncentiveManager, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    asyncio.run(
        manager.update(
            incentive.reference_id,
            IncentivePatch(reward_name="thank-you card", redemption_instructions="Enjoy."),
            actor="ops@example.org",
        )
    )
    changed = asyncio.run(
        manager.update(
            incentive.reference_id, IncentivePatch(utid="U442382"), actor="ops@example.org"
        )
    )
    assert (changed.reward_name, changed.redemption_instructions) == ("thank-you card", "Enjoy.")
