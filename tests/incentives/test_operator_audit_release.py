"""REST: releasing a held reward pays it at once, as the CLI does, and answers how it ended:
sent, or held again with the reason (a Tango account still short of funds)."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.service import Fulfiller, RewardService
from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Db, Person, Tango, reward_row
from tests.incentives.test_api import API, create_tango_account, platform_key
from tests.incentives.test_operator_audit_mark_paid import manual_incentive
from tests.incentives.test_rewards import request


def test_release_answers_how_the_reward_ended(hub: TestClient, admin: Person, tango: Tango) -> None:
    account = create_tango_account(hub, admin, tango).json()["id"]
    incentive = hub.post(
        API,
        json={"name": "Tango", "provider": "tango", "tango_account_id": account,
              "utid": "U561593", "amount": "10", "approval_mode": "automatic"},
        headers=admin.headers,
    ).json()  # fmt: skip
    platform, key = platform_key(hub, admin)
    tango.state.set_balance(DEFAULT_ACCOUNT, "5")
    answer = hub.post(
        f"{API}/{incentive['reference_id']}/rewards",
        json={"email": "low@example.org", **CLEAN_FRAUD_FIELDS},
        auth=(platform, key),
    ).json()
    assert answer["status"] == "held"
    release = f"{API}/rewards/{answer['reference_id']}/release"

    still_short = hub.post(release, json={"reason": "try"}, headers=admin.headers)
    assert still_short.status_code == 200, still_short.text
    assert still_short.json()["status"] == "held"
    assert still_short.json()["transitions"][-1]["reason"].startswith(
        "insufficient balance: Tango account qualflow-demo-account has 5.00 USD"
    )

    tango.state.set_balance(DEFAULT_ACCOUNT, "100")
    funded = hub.post(release, json={"reason": "funded"}, headers=admin.headers)
    assert funded.status_code == 200, funded.text
    assert funded.json()["status"] == "sent"
    assert funded.json()["provider_order_id"]
    assert len(tango.state.orders) == 1


def test_a_reward_released_for_immediate_payment_is_not_taken_by_the_background_fulfiller(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    """The API releases a reward leased to itself, so the fulfiller (polling in the same or
    another process) cannot take it between the release and the API's own payment, which
    would leave the answer saying 'approved' instead of how it ended."""
    incentive = manual_incentive(manager, "review_all")
    submission = service.submit(request(incentive, "h@example.org"))
    assert submission.reward is not None
    assert submission.reward.status == "held"
    reference, reward_id = submission.reward.reference_id, submission.reward.id

    [released] = service.release([reference], actor="ops@example.org", lease_owner="api:me")

    assert released.ok, released.message
    assert reward_id not in Fulfiller(service).due()
    paid = asyncio.run(service.fulfil(reward_id, owner="api:me"))
    assert paid is not None
    assert paid.status == "ordered"
    assert reward_row(db, reference).lease_owner is None
