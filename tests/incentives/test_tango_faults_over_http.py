"""The Tango provider against a sandbox served over HTTP, with a fault rule on its orders: it
retries with the same externalRefID, and orders exactly once when the rule is cleared."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import update

from qualflow.demo.servers import start_server
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import Reward
from qualflow.incentives.providers import ProviderContext
from qualflow.incentives.providers.tango import clear_caches
from qualflow.incentives.schemas import IncentiveSpec
from qualflow.incentives.service import RewardRetry, RewardService
from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT, DEFAULT_CUSTOMER
from tests.incentives.support import Db, reward_row
from tests.incentives.test_tango import ask


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    clear_caches()
    with start_server(create_app(SandboxState()), name="sandbox") as server:
        yield server.url


@pytest.fixture
def providers(db: Db) -> ProviderContext:
    # No transport: the provider calls the sandbox over real HTTP.
    return ProviderContext(sessionmaker=db.sessionmaker, tango_interval=0.0, tango_backoff=0.0)


def test_a_503_rule_on_orders_is_retried_with_the_same_ref_and_ordered_once_when_cleared(
    db: Db, manager: IncentiveManager, service: RewardService, sandbox_url: str
) -> None:
    tango = httpx.get(f"{sandbox_url}/_sandbox/tango").json()
    account = manager.create_tango_account(
        name="sandbox over HTTP",
        base_url=sandbox_url,
        platform_name=tango["platformName"],
        platform_key=tango["platformKey"],
        customer_id=DEFAULT_CUSTOMER,
        account_id=DEFAULT_ACCOUNT,
    )
    incentive = asyncio.run(
        manager.create(
            IncentiveSpec(
                name="Tango over HTTP",
                provider="tango",
                tango_account_id=account.id,
                utid="U561593",
                amount=Decimal("10.00"),
                approval_mode="automatic",
            ),
            actor="tests",
        )
    )
    rule = {"path": "/raas/v2/orders", "method": "POST", "status": 503}
    assert httpx.post(f"{sandbox_url}/_sandbox/faults", json=rule).status_code == 200

    submission = service.submit(ask(incentive, "pat@example.org"), lease_owner="t")
    assert submission.reward is not None
    with pytest.raises(RewardRetry, match="HTTP 503"):
        asyncio.run(service.fulfil(submission.reward.id, owner="t"))
    waiting = reward_row(db, submission.reward.reference_id)
    assert waiting.status == "approved"
    ref = waiting.external_ref_id
    assert ref
    [hit_rule] = httpx.get(f"{sandbox_url}/_sandbox/faults").json()["result"]["rules"]
    assert hit_rule["hits"] > 1  # the client retried the order before giving up for now
    assert httpx.get(f"{sandbox_url}/_sandbox/tango").json()["orders"] == 0

    # Still failing: a second round is retried too, with the reward's same reference.
    with db.sessionmaker() as session:
        session.execute(update(Reward).values(next_attempt_at=None))
        session.commit()
    with pytest.raises(RewardRetry, match="HTTP 503"):
        asyncio.run(service.fulfil(submission.reward.id, owner="t"))
    assert reward_row(db, submission.reward.reference_id).external_ref_id == ref

    assert httpx.delete(f"{sandbox_url}/_sandbox/faults").status_code == 200
    with db.sessionmaker() as session:
        session.execute(update(Reward).values(next_attempt_at=None))
        session.commit()
    asyncio.run(service.fulfil(submission.reward.id, owner="t"))
    sent = reward_row(db, submission.reward.reference_id)
    assert sent.status == "sent"
    assert sent.external_ref_id == ref
    auth = (tango["platformName"], tango["platformKey"])
    orders = httpx.get(f"{sandbox_url}/raas/v2/orders", auth=auth).json()["orders"]
    assert [order["externalRefID"] for order in orders] == [ref]
    assert orders[0]["referenceOrderID"] == sent.provider_order_id
