"""REST: releasing a held reward pays it at once, as the CLI does, and answers how it ended:
sent, or held again with the reason (a Tango account still short of funds)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Person, Tango
from tests.incentives.test_api import API, create_tango_account, platform_key


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
