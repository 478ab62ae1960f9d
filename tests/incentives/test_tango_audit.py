"""Tango, audited end to end against the sandbox double: amounts and currencies checked against
the catalog as it is when ordering, balances, idempotent retries, refusals people can act on."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import pytest
from sqlalchemy import update

from qualflow.incentives.manage import IncentiveError, IncentiveManager
from qualflow.incentives.models import Incentive, TangoAccount
from qualflow.incentives.providers import ProviderContext
from qualflow.incentives.providers.base import Delivery, OrderRequest
from qualflow.incentives.providers.tango import TangoProvider, clear_caches, external_ref_id
from qualflow.incentives.service import Fulfiller, RewardFailed, RewardService
from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT, TangoItem
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import Db, Tango, body_text, reward_row
from tests.incentives.test_tango import ask, tango_incentive


def _item(tango: Tango, utid: str) -> TangoItem:
    item = tango.state.item(utid)
    assert item is not None
    return item


def _pay(service: RewardService, incentive: Incentive, email: str) -> str:
    """Submit and pay one reward; its reference (whatever became of it)."""
    submission = service.submit(ask(incentive, email), lease_owner="t")
    assert submission.reward is not None
    with contextlib.suppress(RewardFailed):
        asyncio.run(service.fulfil(submission.reward.id, owner="t"))
    return submission.reward.reference_id


def test_too_many_decimals_are_refused_when_the_incentive_is_saved(
    manager: IncentiveManager, tango: Tango
) -> None:
    with pytest.raises(IncentiveError, match="more than 2 decimal places"):
        tango_incentive(manager, tango, amount="10.005")


def test_balance_exactly_equal_to_the_amount_pays(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    tango.state.set_balance(DEFAULT_ACCOUNT, "10.00")
    reference = _pay(service, incentive, "exact@example.org")
    assert reward_row(db, reference).status == "sent"
    assert tango.state.balance(DEFAULT_ACCOUNT) == Decimal("0")


def test_an_item_whose_currency_changed_is_not_ordered_in_the_wrong_currency(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)  # 10.00 USD
    _item(tango, "U561593").currency = "EUR"
    clear_caches()
    reference = _pay(service, incentive, "cur@example.org")
    reward = reward_row(db, reference)
    assert tango.state.orders == {}  # not 10.00 EUR for a reward of 10.00 USD
    assert reward.status == "failed"
    assert "is now in EUR, but the reward is 10.00 USD" in reward.reasons[0]
    health = asyncio.run(manager.health(manager.get(incentive.reference_id)))
    assert not health.ok
    assert any("is now in EUR" in w for w in health.warnings)


def test_a_fixed_item_whose_face_value_changed_is_not_ordered(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango, utid="U442382", amount=None)  # 10 USD fixed
    _item(tango, "U442382").face_value = Decimal("12")
    clear_caches()
    reference = _pay(service, incentive, "fixed@example.org")
    reward = reward_row(db, reference)
    assert tango.state.orders == {}
    assert reward.status == "failed"
    assert "the amount must be 12.00 USD, not 10.00" in reward.reasons[0]


def test_an_item_that_left_the_catalog_is_not_ordered(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    for brand in tango.state.brands:
        brand.items = [i for i in brand.items if i.utid != "U561593"]
    # The catalog this process cached when the incentive was saved still lists the item.
    reference = _pay(service, incentive, "gone@example.org")
    reward = reward_row(db, reference)
    assert tango.state.orders == {}
    assert reward.status == "failed"
    assert "utid: Item U561593 is not available." in reward.reasons[0]
    # That refusal drops the stale catalog: the next reward is stopped before ordering.
    asked = tango.state.order_requests
    reference = _pay(service, incentive, "gone2@example.org")
    reward = reward_row(db, reference)
    assert tango.state.order_requests == asked
    assert reward.status == "failed"
    assert "catalog item U561593 is not in the catalog" in reward.reasons[0]


def test_server_error_then_success_orders_once(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    tango.state.fail_next(500, times=1, path_prefix="/raas/v2/orders")
    reference = _pay(service, incentive, "five@example.org")
    assert reward_row(db, reference).status == "sent"
    assert len(tango.state.orders) == 1


def test_an_item_added_to_the_catalog_can_be_chosen_at_once(
    manager: IncentiveManager, tango: Tango
) -> None:
    tango_incentive(manager, tango)  # the catalog is now cached in this process
    new = TangoItem(
        "U999001", "New card", "USD", "VARIABLE_VALUE", min_value=Decimal(1), max_value=Decimal(100)
    )
    tango.state.brands[0].items.append(new)
    incentive = tango_incentive(manager, tango, utid="U999001", amount="5")
    assert incentive.reward_name == "New card"
    _item(tango, "U157190").status = "active"  # a retired item back in service
    assert tango_incentive(manager, tango, utid="U157190", amount="5").amount_minor == 500


def test_a_refused_platform_key_holds_the_reward_with_tangos_message_and_what_to_fix(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    with db.sessionmaker() as session:
        session.execute(update(TangoAccount).values(platform_key="wrong"))
        session.commit()
    reference = _pay(service, incentive, "key@example.org")
    reward = reward_row(db, reference)
    assert tango.state.orders == {}
    assert reward.status == "held"
    [reason] = reward.reasons
    assert "Tango answered HTTP 401: Invalid platform name or key." in reason
    assert "correct its platform name and key, then release the reward" in reason
    # Once the key is corrected, releasing the reward pays it.
    with db.sessionmaker() as session:
        session.execute(update(TangoAccount).values(platform_key=tango.state.platform_key))
        session.commit()
    assert service.release([reference], actor="finance")[0].ok
    asyncio.run(Fulfiller(service).drain())
    assert reward_row(db, reference).status == "sent"
    assert len(tango.state.orders) == 1


def test_an_order_placed_but_answered_500_is_retried_into_the_same_order(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango, smtp_sink: SmtpSink
) -> None:
    """Tango placed (and charged) the order, but its answer was a 500: the retry carries the
    same externalRefID, so Tango answers the original order; one charge, its code emailed."""
    incentive = tango_incentive(manager, tango)
    tango.state.fail_next(500, path_prefix="/raas/v2/orders", after=True)
    reference = _pay(service, incentive, "lost@example.org")
    reward = reward_row(db, reference)
    assert reward.status == "sent"
    assert tango.state.order_requests == 2
    [order] = tango.state.orders.values()
    assert order["externalRefID"] == reward.external_ref_id
    assert reward.provider_order_id == order["referenceOrderID"]
    assert tango.state.balance(DEFAULT_ACCOUNT) == Decimal("990.00")
    code = order["reward"]["credentialList"][0]["value"]
    assert code in body_text(smtp_sink.messages[0])


def _request(incentive: Incentive, email: str) -> OrderRequest:
    return OrderRequest(
        reward_id=1, reward_reference="R-1", incentive_id=incentive.id,
        incentive_reference=incentive.reference_id, incentive_name=incentive.name, email=email,
        email_normalized=email.lower(), first_name="Pat", amount_minor=incentive.amount_minor,
        currency=incentive.currency, utid=incentive.utid,
        tango_account_id=incentive.tango_account_id, gift_code_pool_id=None, external_ref_id=None,
    )  # fmt: skip


def test_two_workers_ordering_the_same_reward_at_once_place_one_order(
    db: Db, manager: IncentiveManager, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    workers = [
        TangoProvider(ProviderContext(db.sessionmaker, tango.transport, 0.0, 0.0)) for _ in range(2)
    ]
    request = _request(incentive, "Both@Example.org")

    async def both() -> list[Delivery]:
        return list(await asyncio.gather(*(w.order(request) for w in workers)))

    first, second = asyncio.run(both())
    [order] = tango.state.orders.values()
    assert order["externalRefID"] == external_ref_id(incentive.reference_id, "both@example.org")
    assert first.provider_order_id == second.provider_order_id == order["referenceOrderID"]
    assert first.credentials == second.credentials
    assert tango.state.balance(DEFAULT_ACCOUNT) == Decimal("990.00")


def test_a_429_waits_at_least_its_retry_after_then_orders_once(
    db: Db, manager: IncentiveManager, tango: Tango, no_client_waits: list[float]
) -> None:
    incentive = tango_incentive(manager, tango)
    tango.state.fail_next(429, path_prefix="/raas/v2/orders", retry_after=7)
    provider = TangoProvider(ProviderContext(db.sessionmaker, tango.transport, 0.0, 0.0))
    delivery = asyncio.run(provider.order(_request(incentive, "slow@example.org")))
    assert no_client_waits == [7.0]
    [order] = tango.state.orders.values()
    assert delivery.provider_order_id == order["referenceOrderID"]
    assert tango.state.order_requests == 1  # the 429 was answered before reaching the order
