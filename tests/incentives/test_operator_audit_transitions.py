"""A reward's history says why each step happened, the first one too: how it was requested."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.service import RewardService
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Db, Person, Tango, transitions
from tests.incentives.test_api import API, gift_incentive, platform_key
from tests.incentives.test_rewards import request
from tests.incentives.test_tango import tango_incentive


def test_a_reward_requested_through_the_platform_api_says_so(
    hub: TestClient, admin: Person
) -> None:
    incentive = gift_incentive(hub, admin)
    platform, key = platform_key(hub, admin)
    answer = hub.post(
        f"{API}/{incentive['reference_id']}/rewards",
        json={"email": "p@example.org", "responseId": "R_1", **CLEAN_FRAUD_FIELDS},
        auth=(platform, key),
    )
    history = hub.get(
        f"{API}/rewards/{answer.json()['reference_id']}/transitions", headers=admin.headers
    ).json()
    first = history[0]
    assert (first["from_status"], first["to_status"]) == (None, "pending")
    assert first["actor"] == "API key 'Workflow' of platform acme"
    assert first["reason"] == "requested through the platform API for response R_1"
    assert all(step["actor"] and step["reason"] for step in history), history


def test_a_reward_requested_by_an_automation_says_so(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    submission = service.submit(request(incentive, "a@example.org"), lease_owner="t")
    assert submission.reward is not None
    first = transitions(db, submission.reward.reference_id)[0]
    assert first == (None, "pending", "requested by an automation run")
