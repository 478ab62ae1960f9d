"""A Tango 429 whose Retry-After outlasts the client's own retries: the reward's next attempt
and every other request of the platform wait for it (not the shorter built-in backoff)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.providers import ProviderContext
from qualflow.incentives.providers.base import ProviderError
from qualflow.incentives.providers.tango import TangoProvider
from qualflow.incentives.service import RewardRetry, RewardService
from qualflow.store.base import utcnow
from tests.incentives.support import Db, Tango, reward_row
from tests.incentives.test_tango import ask, tango_incentive
from tests.incentives.test_tango_audit import _request

RETRY_AFTER = 7200


def test_the_next_attempt_waits_for_a_retry_after_longer_than_the_backoff(
    db: Db,
    manager: IncentiveManager,
    service: RewardService,
    tango: Tango,
    no_client_waits: list[float],
) -> None:
    incentive = tango_incentive(manager, tango)
    tango.state.fail_next(429, times=10, path_prefix="/raas/v2/orders", retry_after=RETRY_AFTER)
    submission = service.submit(ask(incentive, "later@example.org"), lease_owner="t")
    assert submission.reward is not None
    before = utcnow()
    with pytest.raises(RewardRetry) as caught:
        asyncio.run(service.fulfil(submission.reward.id, owner="t"))
    assert caught.value.retry_after == RETRY_AFTER
    reward = reward_row(db, submission.reward.reference_id)
    assert reward.status == "approved"
    assert reward.next_attempt_at is not None
    # The built-in backoff alone would be a minute; Tango asked for two hours.
    assert reward.next_attempt_at >= before + timedelta(seconds=RETRY_AFTER)
    assert tango.state.orders == {}


def test_after_a_429_the_next_request_of_the_platform_waits_for_its_retry_after(
    db: Db, manager: IncentiveManager, tango: Tango, no_client_waits: list[float]
) -> None:
    incentive = tango_incentive(manager, tango)
    # 1 request/s shared through the database, as in production.
    provider = TangoProvider(ProviderContext(db.sessionmaker, tango.transport, 1.0, 0.0))
    tango.state.fail_next(429, times=3, path_prefix="/raas/v2/orders", retry_after=RETRY_AFTER)
    with pytest.raises(ProviderError) as refused:
        asyncio.run(provider.order(_request(incentive, "first@example.org")))
    assert refused.value.retry_after == RETRY_AFTER
    no_client_waits.clear()
    # Another reward (in any process sharing the database) holds back for the Retry-After
    # instead of sending at the next 1 s slot.
    asyncio.run(provider.order(_request(incentive, "second@example.org")))
    assert max(no_client_waits) >= RETRY_AFTER - 60
    assert len(tango.state.orders) == 1
