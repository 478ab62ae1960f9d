"""Tango: the sandbox's RaaS v2 double, and rewards ordered through it."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from qualflow.incentives import throttle
from qualflow.incentives.alerts import record_alerts
from qualflow.incentives.manage import IncentiveError, IncentiveManager
from qualflow.incentives.models import Incentive, TangoAccount
from qualflow.incentives.providers import ProviderContext
from qualflow.incentives.providers.tango import external_ref_id
from qualflow.incentives.schemas import IncentivePatch, IncentiveSpec
from qualflow.incentives.service import (
    Fulfiller,
    RewardFailed,
    RewardRequestIn,
    RewardRetry,
    RewardService,
)
from qualflow.notify.email import SmtpSettings
from qualflow.notify.models import OutboxEmail
from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT, DEFAULT_CUSTOMER
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import Db, Tango, body_text, reward_row

HUB = "http://hub.example"
CLEAN = {
    "Q_RecaptchaScore": 1.0,
    "Q_RelevantIDDuplicateScore": 0,
    "Q_RelevantIDFraudScore": 0,
}


async def _call(tango: Tango, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=tango.transport, base_url="http://tango") as client:
        return await client.request(method, path, **kwargs)


def call(
    tango: Tango, method: str, path: str, *, auth: bool = True, **kwargs: Any
) -> httpx.Response:
    if auth:
        kwargs["auth"] = (tango.state.platform_name, tango.state.platform_key)
    return asyncio.run(_call(tango, method, path, **kwargs))


def order_body(**overrides: Any) -> dict[str, Any]:
    return {
        "customerIdentifier": DEFAULT_CUSTOMER,
        "accountIdentifier": DEFAULT_ACCOUNT,
        "amount": 10.0,
        "utid": "U561593",
        "sendEmail": False,
        "recipient": {"email": "p@example.org", "firstName": "Pat"},
        "externalRefID": "abc123",
        **overrides,
    }


def account(manager: IncentiveManager, tango: Tango, *, key: str | None = None) -> TangoAccount:
    return manager.create_tango_account(
        name=f"sandbox {len(manager.tango_accounts())}",
        base_url="http://tango",
        platform_name=tango.state.platform_name,
        platform_key=key or tango.state.platform_key,
        customer_id=DEFAULT_CUSTOMER,
        account_id=DEFAULT_ACCOUNT,
    )


def tango_incentive(
    manager: IncentiveManager, tango: Tango, *, utid: str = "U561593", amount: str | None = "10.00"
) -> Incentive:
    spec = IncentiveSpec(
        name="Tango study",
        provider="tango",
        tango_account_id=account(manager, tango).id,
        utid=utid,
        amount=Decimal(amount) if amount is not None else None,
        approval_mode="automatic",
    )
    return asyncio.run(manager.create(spec, actor="tests"))


def ask(incentive: Incentive, email: str, key: str | None = None) -> RewardRequestIn:
    return RewardRequestIn(
        incentive_reference=incentive.reference_id,
        email=email,
        first_name="Pat",
        source="automation",
        requested_by="tests",
        request_key=key or email,
        response_values=dict(CLEAN),
    )


# -- the sandbox double ---------------------------------------------------------------------------


def test_sandbox_orders_are_idempotent_per_external_ref_and_debit_the_balance(tango: Tango) -> None:
    before = tango.state.balance(DEFAULT_ACCOUNT)
    first = call(tango, "POST", "/raas/v2/orders", json=order_body())
    assert first.status_code == 201
    again = call(tango, "POST", "/raas/v2/orders", json=order_body(utid="U442382", amount=10))
    assert again.status_code == 200
    assert again.json()["referenceOrderID"] == first.json()["referenceOrderID"]
    assert tango.state.balance(DEFAULT_ACCOUNT) == before - Decimal("10")
    order = first.json()
    assert order["reward"]["credentialList"][0]["value"]
    assert order["amountCharged"]["total"] == 10.0
    found = call(tango, "GET", "/raas/v2/orders", params={"externalRefID": "abc123"})
    assert found.json()["page"]["totalCount"] == 1
    fetched = call(tango, "GET", f"/raas/v2/orders/{order['referenceOrderID']}")
    assert fetched.json() == order
    resent = call(tango, "POST", f"/raas/v2/orders/{order['referenceOrderID']}/resends", json={})
    assert resent.status_code == 201


@pytest.mark.parametrize(
    ("overrides", "constraint", "message"),
    [
        ({"amount": 5000}, "Range", "amount must be between"),
        ({"utid": "U442382", "amount": 7, "externalRefID": "x1"}, "FixedValue", "fixed value"),
        ({"utid": "U157190", "externalRefID": "x2"}, "InvalidItem", "not available"),
        ({"utid": "U157189", "amount": 10.5, "externalRefID": "x3"}, "WholeAmount", "whole"),
        ({"externalRefID": "not alnum!"}, "Pattern", "alphanumeric"),
        ({"amount": 999.0, "externalRefID": "x4", "utid": "U561593"}, None, None),
        ({"amount": 1500, "externalRefID": "x5"}, "InsufficientFunds", "Insufficient funds"),
    ],
)
def test_sandbox_refusals_use_tangos_error_shape(
    tango: Tango, overrides: dict[str, Any], constraint: str | None, message: str | None
) -> None:
    response = call(tango, "POST", "/raas/v2/orders", json=order_body(**overrides))
    if constraint is None:
        assert response.status_code == 201
        return
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"timestamp", "requestId", "path", "httpCode", "httpPhrase", "errors"}
    assert body["httpCode"] == 400
    assert body["errors"][0]["constraint"] == constraint
    assert message is not None
    assert message in body["errors"][0]["message"]


def test_sandbox_requires_the_platform_credentials(tango: Tango) -> None:
    response = call(tango, "GET", "/raas/v2/catalogs", auth=False)
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == "Invalid platform name or key."
    wrong = asyncio.run(
        _call(tango, "GET", "/raas/v2/accounts/x", auth=(tango.state.platform_name, "nope"))
    )
    assert wrong.status_code == 401
    assert (
        call(tango, "GET", f"/raas/v2/accounts/{DEFAULT_ACCOUNT}").json()["currentBalance"]
        == 1000.0
    )
    assert call(tango, "GET", "/raas/v2/accounts/unknown").status_code == 404


# -- incentives validated against the catalog -----------------------------------------------------


def test_incentive_values_are_checked_against_the_catalog(
    manager: IncentiveManager, tango: Tango
) -> None:
    fixed = tango_incentive(manager, tango, utid="U442383", amount=None)
    assert fixed.amount_minor == 2500
    assert fixed.reward_name == "Coffee House $25 eGift"
    assert fixed.redemption_instructions.startswith("Show the code")
    cases = [
        ("U442383", "20", "fixed-value item: the amount must be 25.00 USD, not 20"),
        ("U561593", "5000", "accepts amounts from 0.01 to 2000.00 USD"),
        ("U157189", "10.50", "requires a whole amount"),
        ("U157190", "10", "catalog item U157190 is inactive"),
        ("U000000", "10", "catalog item U000000 is not in the catalog"),
        ("U561593", None, "variable-value item: give an amount"),
    ]
    for utid, amount, message in cases:
        with pytest.raises(IncentiveError, match=message):
            tango_incentive(manager, tango, utid=utid, amount=amount)
    spec = IncentiveSpec(
        name="x", provider="tango", tango_account_id=fixed.tango_account_id,
        utid="U561593", amount=Decimal(5), currency="EUR",
    )  # fmt: skip
    with pytest.raises(IncentiveError, match="is in USD, not EUR"):
        asyncio.run(manager.create(spec, actor="t"))


# -- rewards ordered through Tango ----------------------------------------------------------------


def test_a_tango_reward_is_ordered_once_and_emailed(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango, smtp_sink: SmtpSink
) -> None:
    incentive = tango_incentive(manager, tango)
    submission = service.submit(ask(incentive, "Pat@Example.org"), lease_owner="t")
    assert submission.reward is not None
    asyncio.run(service.fulfil(submission.reward.id, owner="t"))

    reward = reward_row(db, submission.reward.reference_id)
    assert reward.status == "sent"
    expected_ref = hashlib.sha256(f"{incentive.reference_id}|pat@example.org".encode()).hexdigest()
    assert (
        reward.external_ref_id
        == expected_ref
        == external_ref_id(incentive.reference_id, "pat@example.org")
    )
    orders = list(tango.state.orders.values())
    assert len(orders) == 1
    assert orders[0]["externalRefID"] == expected_ref
    assert orders[0]["sendEmail"] is False
    assert reward.provider_order_id == orders[0]["referenceOrderID"]
    assert tango.state.balance(DEFAULT_ACCOUNT) == Decimal("990.00")
    code = orders[0]["reward"]["credentialList"][0]["value"]
    text = body_text(smtp_sink.messages[0])
    assert code in text
    assert "Claim Code" in text
    assert "Redeem at amazon.com/redeem" in text


def test_insufficient_balance_holds_and_a_top_up_then_release_pays(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    tango.state.set_balance(DEFAULT_ACCOUNT, "4.00")
    submission = service.submit(ask(incentive, "poor@example.org"), lease_owner="t")
    assert submission.reward is not None
    asyncio.run(service.fulfil(submission.reward.id, owner="t"))
    reward = reward_row(db, submission.reward.reference_id)
    assert reward.status == "held"
    assert reward.reasons == [
        f"insufficient balance: Tango account {DEFAULT_ACCOUNT} has 4.00 USD, this reward needs "
        "10.00 USD"
    ]
    assert tango.state.orders == {}
    health = asyncio.run(manager.health(manager.get(incentive.reference_id)))
    assert not health.ok
    assert health.balance == Decimal("4.0")
    assert any("insufficient balance" in w for w in health.warnings)

    tango.state.set_balance(DEFAULT_ACCOUNT, "100")
    assert service.release([reward.reference_id], actor="finance")[0].ok
    asyncio.run(Fulfiller(service).drain())
    assert reward_row(db, reward.reference_id).status == "sent"
    assert len(tango.state.orders) == 1


def test_an_item_in_another_currency_is_charged_at_tangos_rate_and_tango_judges_the_balance(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango, utid="U561594", amount="20.00")  # EUR item
    assert incentive.currency == "EUR"
    health = asyncio.run(manager.health(manager.get(incentive.reference_id)))
    assert health.ok, health.warnings
    assert any("the account is in USD and the rewards in EUR" in w for w in health.warnings)

    paid = service.submit(ask(incentive, "eu@example.org"), lease_owner="t")
    assert paid.reward is not None
    asyncio.run(service.fulfil(paid.reward.id, owner="t"))
    assert reward_row(db, paid.reward.reference_id).status == "sent"
    [order] = tango.state.orders.values()
    assert order["denomination"]["currencyCode"] == "EUR"
    assert order["amountCharged"]["currencyCode"] == "USD"
    assert order["amountCharged"]["exchangeRate"] == 1.08
    assert tango.state.balance(DEFAULT_ACCOUNT) == Decimal("1000.00") - Decimal("21.60")

    # 21.00 USD looks like enough for 20.00, but Tango charges 21.60 USD for 20 EUR: only
    # Tango can judge, and its refusal holds the reward.
    tango.state.set_balance(DEFAULT_ACCOUNT, "21.00")
    short = service.submit(ask(incentive, "short@example.org"), lease_owner="t")
    assert short.reward is not None
    asyncio.run(service.fulfil(short.reward.id, owner="t"))
    held = reward_row(db, short.reward.reference_id)
    assert held.status == "held"
    assert held.reasons[0].startswith("insufficient balance: ")
    assert "21.60" in held.reasons[0]
    assert len(tango.state.orders) == 1


def _funds_alerts(db: Db) -> list[tuple[str, int, list[str], str, str]]:
    alerts = record_alerts(
        db.sessionmaker, sender="hub@example.org", providers_url=f"{HUB}/incentives/providers"
    )
    with db.sessionmaker() as session:
        rows = [session.get(OutboxEmail, alert.email_id) for alert in alerts]
        return [
            (alert.level, getattr(alert.shortage, "held", 0), row.recipients, row.subject,
             row.body_text)
            for alert, row in zip(alerts, rows, strict=True)
            if row is not None
        ]  # fmt: skip


def test_rewards_held_for_funds_are_emailed_once_to_the_alert_recipients(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    patch = IncentivePatch(alert_emails=["finance@example.org"])
    asyncio.run(manager.update(incentive.reference_id, patch, actor="tests"))
    tango.state.set_balance(DEFAULT_ACCOUNT, "4.00")

    def held(email: str) -> str:
        submission = service.submit(ask(incentive, email), lease_owner="t")
        assert submission.reward is not None
        asyncio.run(service.fulfil(submission.reward.id, owner="t"))
        assert reward_row(db, submission.reward.reference_id).status == "held"
        return submission.reward.reference_id

    first = held("poor1@example.org")
    [(level, count, to, subject, text)] = _funds_alerts(db)
    assert (level, count, to) == ("funds", 1, ["finance@example.org"])
    reference = incentive.reference_id
    assert subject == f"Rewards held for Tango funds: Tango study ({reference}), 1 held"
    assert "has too little balance to pay them" in text
    assert f"{HUB}/incentives/review-queue" in text
    second = held("poor2@example.org")
    assert _funds_alerts(db) == []  # emailed once while rewards wait for funds

    tango.state.set_balance(DEFAULT_ACCOUNT, "100")
    assert all(r.ok for r in service.release([first, second], actor="finance"))
    asyncio.run(Fulfiller(service).drain())
    assert _funds_alerts(db) == []  # nothing held: the mark clears
    tango.state.set_balance(DEFAULT_ACCOUNT, "1.00")
    held("poor3@example.org")
    [(level, count, *_)] = _funds_alerts(db)  # a new shortage is emailed again
    assert (level, count) == ("funds", 1)


def test_server_errors_are_retried_with_the_same_external_ref(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    tango.state.fail_next(503, times=1, path_prefix="/raas/v2/orders")
    first = service.submit(ask(incentive, "a@example.org"), lease_owner="t")
    assert first.reward is not None
    asyncio.run(service.fulfil(first.reward.id, owner="t"))
    assert reward_row(db, first.reward.reference_id).status == "sent"
    assert tango.state.order_requests == 1  # the 503 was answered before reaching the order

    # Tango keeps failing: the reward waits for a retry; the retry orders exactly once.
    tango.state.fail_next(503, times=3, path_prefix="/raas/v2/orders")
    second = service.submit(ask(incentive, "b@example.org"), lease_owner="t")
    assert second.reward is not None
    with pytest.raises(RewardRetry, match="HTTP 503"):
        asyncio.run(service.fulfil(second.reward.id, owner="t"))
    waiting = reward_row(db, second.reward.reference_id)
    assert waiting.status == "approved"
    assert waiting.next_attempt_at is not None
    assert "Injected failure" in (waiting.last_error or "")
    # An order that reached Tango but whose answer was lost: the repeat returns it (200).
    status, _ = tango.state.create_order(
        {**order_body(), "externalRefID": waiting.external_ref_id, "amount": 10.0}
    )
    assert status == 201
    with db.sessionmaker() as session:
        session.execute(update(type(waiting)).values(next_attempt_at=None))
        session.commit()
    asyncio.run(service.fulfil(second.reward.id, owner="t"))
    assert reward_row(db, second.reward.reference_id).status == "sent"
    refs = [o["externalRefID"] for o in tango.state.orders.values()]
    assert refs.count(waiting.external_ref_id) == 1


def test_client_errors_fail_the_reward_with_tangos_message(
    db: Db, manager: IncentiveManager, service: RewardService, tango: Tango
) -> None:
    incentive = tango_incentive(manager, tango)
    with db.sessionmaker() as session:
        session.execute(update(TangoAccount).values(customer_id="someone-else"))
        session.commit()
    submission = service.submit(ask(incentive, "c@example.org"), lease_owner="t")
    assert submission.reward is not None
    with pytest.raises(RewardFailed, match="does not belong to customer someone-else"):
        asyncio.run(service.fulfil(submission.reward.id, owner="t"))
    reward = reward_row(db, submission.reward.reference_id)
    assert reward.status == "failed"
    assert "Tango answered HTTP 400: accountIdentifier: Account" in reward.reasons[0]
    assert not reward.counted
    assert manager.get(incentive.reference_id).committed_count == 0


def test_health_reports_a_refused_key(manager: IncentiveManager, tango: Tango) -> None:
    incentive = tango_incentive(manager, tango)
    with manager.factory() as session:
        session.execute(update(TangoAccount).values(platform_key="wrong"))
        session.commit()
    health = asyncio.run(manager.health(manager.get(incentive.reference_id)))
    assert not health.ok
    assert health.key_status == "refused"
    assert "Invalid platform name or key." in health.summary


def test_the_sandbox_answers_429_beyond_one_request_per_second(tango: Tango) -> None:
    now = [100.0]
    tango.state.clock = lambda: now[0]
    tango.state.requests_per_second = 1
    assert call(tango, "GET", f"/raas/v2/accounts/{DEFAULT_ACCOUNT}").status_code == 200
    now[0] += 0.5
    refused = call(tango, "GET", f"/raas/v2/accounts/{DEFAULT_ACCOUNT}")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["httpCode"] == 429
    assert refused.json()["errors"][0]["constraint"] == "RateLimit"
    now[0] += 0.5
    assert call(tango, "GET", f"/raas/v2/accounts/{DEFAULT_ACCOUNT}").status_code == 200
    assert tango.state.rate_limited_count == 1


def test_the_rate_limit_is_shared_by_every_process(
    db: Db, tango: Tango, smtp: SmtpSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two services (as two worker processes would) share one request budget: every Tango
    request waits for its own slot from the database, spaced by the interval. Asserted on the
    slots handed out, never on arrival times (those depend on the machine's load)."""
    slots: list[datetime] = []
    reserve = throttle.reserve_slot

    def recording(factory: Any, key: str, interval: float) -> datetime:
        slot = reserve(factory, key, interval)
        slots.append(slot)
        return slot

    monkeypatch.setattr(throttle, "reserve_slot", recording)
    interval = 0.05
    contexts = [
        ProviderContext(
            sessionmaker=db.sessionmaker, tango_transport=tango.transport,
            tango_interval=interval, tango_backoff=0.0,
        )
        for _ in range(2)
    ]  # fmt: skip
    incentive = tango_incentive(IncentiveManager(db.sessionmaker, contexts[0]), tango)
    workers = [RewardService(db.sessionmaker, providers=c, smtp=smtp) for c in contexts]
    # A 429 is retried like a server error, with the same externalRefID.
    tango.state.fail_next(429, times=1, path_prefix="/raas/v2/orders")

    async def pay_concurrently() -> None:
        submissions = [
            workers[n % 2].submit(ask(incentive, f"r{n}@example.org"), lease_owner=f"o{n}")
            for n in range(4)
        ]
        await asyncio.gather(
            *(
                workers[n % 2].fulfil(s.reward.id, owner=f"o{n}")
                for n, s in enumerate(submissions)
                if s.reward
            )
        )

    asyncio.run(pay_concurrently())
    assert len(tango.state.orders) == 4
    assert tango.state.failures[0].remaining == 0  # the 429 was answered, and retried
    # Every request the sandbox saw had waited for a slot, and no two slots are closer than
    # the interval, whichever service took them.
    assert tango.state.request_count == len(slots)
    ordered = sorted(slots)
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(ordered)]
    assert min(gaps) >= interval - 1e-6


def test_an_unreachable_tango_is_named_as_such() -> None:
    from qualflow.incentives.providers.tango_client import TangoClient, TangoError

    async def ask() -> None:
        # Port 1 on loopback refuses the connection at once.
        client = TangoClient("http://127.0.0.1:1/raas/v2", "platform", "key", max_attempts=1)
        try:
            await client.get_catalog()
        finally:
            await client.aclose()

    with pytest.raises(TangoError) as caught:
        asyncio.run(ask())
    assert caught.value.status_code is None
    assert caught.value.retriable
    assert str(caught.value).startswith("Tango could not be reached: ConnectError")
