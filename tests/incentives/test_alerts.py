"""Incentive alerts: one email to the incentive managers (or its alert recipients) when a
gift-code incentive runs low, one when it runs out, none again until codes are imported and it
runs short once more; one when a limit is reached while rewards wait for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from qualflow.accounts.users import create_user
from qualflow.incentives.alerts import record_alerts, send_due_alerts
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import Incentive
from qualflow.incentives.runtime import configure_incentives
from qualflow.incentives.schemas import IncentiveSpec
from qualflow.notify.email import SmtpSettings
from qualflow.notify.models import OutboxEmail
from qualflow.settings import Settings
from qualflow.web.app import create_app
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Person, body_text, parsed
from tests.incentives.test_api import API, codes, gift_incentive, platform_key, wait_for

PROVIDERS_URL = "http://hub.example/incentives/providers"


def _check(hub: TestClient, smtp: SmtpSettings | None) -> list[Any]:
    factory = hub.app.state.store.sessionmaker  # type: ignore[attr-defined]
    return asyncio.run(send_due_alerts(factory, smtp, providers_url=PROVIDERS_URL))


def _alerts(sink: SmtpSink) -> list[dict[str, Any]]:
    return [m for m in sink.messages if "gift codes" in str(parsed(m)["Subject"])]


def _reward(hub: TestClient, reference: str, n: int, key: tuple[str, str]) -> None:
    answer = hub.post(
        f"{API}/{reference}/rewards",
        json={"email": f"r{n}@example.org", **CLEAN_FRAUD_FIELDS},
        auth=key,
    )
    assert answer.status_code == 201, answer.text


def test_low_then_out_then_restocked_is_two_emails_to_the_managers(
    hub: TestClient,
    admin: Person,
    make_person: Callable[..., Person],
    smtp: SmtpSettings,
    smtp_sink: SmtpSink,
) -> None:
    manager = make_person("viewer", incentives="manage")
    make_person("viewer")  # sees incentives, cannot import codes: not emailed
    incentive = gift_incentive(hub, admin, stock=6, name="Diary study", low_stock_threshold=5)
    reference = incentive["reference_id"]
    key = platform_key(hub, admin)

    assert _check(hub, smtp) == []  # 6 codes, threshold 5
    _reward(hub, reference, 1, key)
    _reward(hub, reference, 2, key)  # 4 left
    [low] = _check(hub, smtp)
    assert (low.level, low.shortage.unused) == ("low", 4)
    assert _check(hub, smtp) == []  # emailed once, not at every check
    _reward(hub, reference, 3, key)  # 3 left: still the same shortage
    assert _check(hub, smtp) == []
    for n in range(4, 7):
        _reward(hub, reference, n, key)
    [out] = _check(hub, smtp)
    assert (out.level, out.shortage.unused) == ("out", 0)

    alerts = _alerts(smtp_sink)
    assert [str(parsed(m)["Subject"]) for m in alerts] == [
        f"Low on gift codes: Diary study ({reference}), 4 left",
        f"Out of gift codes: Diary study ({reference})",
    ]
    assert sorted(alerts[0]["to"]) == sorted([admin.email, manager.email])
    assert PROVIDERS_URL in body_text(alerts[1])
    assert f"pools import {incentive['gift_code_pool_id']}" in body_text(alerts[1])

    # Two codes imported: still low, which was emailed; running out again is emailed again.
    pool = incentive["gift_code_pool_id"]
    _import(hub, admin, pool, "TWO-", 2)
    assert _check(hub, smtp) == []
    assert _mark(hub, reference) == "low"
    for n in range(7, 9):
        _reward(hub, reference, n, key)
    [out_again] = _check(hub, smtp)
    assert out_again.level == "out"

    # Restocked: the mark is cleared, and the next shortage is emailed again.
    _import(hub, admin, pool, "MORE-", 6)
    assert _check(hub, smtp) == []
    assert _mark(hub, reference) is None
    for n in range(9, 11):
        _reward(hub, reference, n, key)
    [again] = _check(hub, smtp)
    assert again.level == "low"


def test_an_incentive_can_name_who_gets_its_alerts(
    hub: TestClient,
    admin: Person,
    make_person: Callable[..., Person],
    smtp: SmtpSettings,
    smtp_sink: SmtpSink,
) -> None:
    make_person("viewer", incentives="manage")  # a manager, not emailed while a list is named
    named = [" Finance@Example.org", "finance@example.org", "ops@example.org"]
    incentive = gift_incentive(hub, admin, stock=3, low_stock_threshold=3, alert_emails=named)
    reference = incentive["reference_id"]
    assert incentive["alert_emails"] == ["finance@example.org", "ops@example.org"]
    key = platform_key(hub, admin)

    _reward(hub, reference, 1, key)
    [low] = _check(hub, smtp)
    assert low.level == "low"
    assert sorted(_alerts(smtp_sink)[-1]["to"]) == ["finance@example.org", "ops@example.org"]

    # Without a list, the managers get the alerts again.
    cleared = hub.patch(f"{API}/{reference}", json={"alert_emails": None}, headers=admin.headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["alert_emails"] == []
    _reward(hub, reference, 2, key)
    _reward(hub, reference, 3, key)
    [out] = _check(hub, smtp)
    assert out.level == "out"
    assert admin.email in _alerts(smtp_sink)[-1]["to"]
    assert "ops@example.org" not in _alerts(smtp_sink)[-1]["to"]


def test_a_reached_limit_is_emailed_once_per_limit(
    hub: TestClient, admin: Person, smtp: SmtpSettings, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(
        hub, admin, stock=10, low_stock_threshold=0, max_rewards=2, name="Diary study",
        alert_emails=["lead@example.org"],
    )  # fmt: skip
    reference = incentive["reference_id"]
    key = platform_key(hub, admin)

    def held(n: int) -> str:
        answer = hub.post(
            f"{API}/{reference}/rewards",
            json={"email": f"l{n}@example.org", **CLEAN_FRAUD_FIELDS},
            auth=key,
        )
        assert answer.json()["status"] == "held", answer.text
        return str(answer.json()["reference_id"])

    _reward(hub, reference, 1, key)
    _reward(hub, reference, 2, key)
    assert _check(hub, smtp) == []  # reached, but nobody is waiting
    first = held(3)
    [limit] = _check(hub, smtp)
    assert (limit.level, limit.shortage.held) == ("limit", 1)
    [mail] = [m for m in smtp_sink.messages if "Limit reached" in str(parsed(m)["Subject"])]
    assert mail["to"] == ["lead@example.org"]
    assert str(parsed(mail)["Subject"]) == (
        f"Limit reached: Diary study ({reference}), 1 reward(s) held"
    )
    assert "reached 2 rewards: 1 more reward(s) are held" in body_text(mail)
    assert f"http://hub.example/incentives/{reference}" in body_text(mail)
    held(4)
    assert _check(hub, smtp) == []  # the same limit: told already

    # Raised to 3: the held rewards wait for a release, which is no news; releasing one
    # reaches the new limit with one still held, which is.
    raised = hub.patch(f"{API}/{reference}", json={"max_rewards": 3}, headers=admin.headers)
    assert raised.status_code == 200, raised.text
    assert _check(hub, smtp) == []
    released = hub.post(f"{API}/rewards/{first}/release", headers=admin.headers)
    assert released.status_code == 200, released.text
    [again] = _check(hub, smtp)
    assert (again.level, again.shortage.held, again.shortage.limits) == ("limit", 1, "3 rewards")


def test_an_alert_recipient_that_is_not_an_email_is_refused(hub: TestClient, admin: Person) -> None:
    incentive = gift_incentive(hub, admin, stock=1)
    refused = hub.patch(
        f"{API}/{incentive['reference_id']}",
        json={"alert_emails": ["ops@example.org", "finance team"]},
        headers=admin.headers,
    )
    assert refused.status_code == 422
    assert "'finance team' is not an email address" in refused.text
    too_many = [f"p{n}@example.org" for n in range(21)]
    created = hub.post(
        API,
        json={"name": "x", "provider": "manual", "amount": "1", "currency": "USD",
              "alert_emails": too_many},
        headers=admin.headers,
    )  # fmt: skip
    assert created.status_code == 422


def _import(hub: TestClient, admin: Person, pool: int, prefix: str, count: int) -> None:
    imported = hub.post(
        f"{API}/providers/gift-code-pools/{pool}/codes",
        content=codes(count).replace("CODE-", prefix),
        headers={**admin.headers, "Content-Type": "text/csv"},
    )
    assert imported.json()["imported"] == count


def _mark(hub: TestClient, reference: str) -> str | None:
    with hub.app.state.store.sessionmaker() as session:  # type: ignore[attr-defined]
        return session.scalar(
            select(Incentive.stock_alert).where(Incentive.reference_id == reference)
        )


def test_an_alert_is_kept_in_the_outbox_until_email_works(
    hub: TestClient, admin: Person, smtp: SmtpSettings, smtp_sink: SmtpSink
) -> None:
    gift_incentive(hub, admin, stock=0, name="Empty")
    [alert] = _check(hub, None)  # no SMTP configured: recorded, not sent
    factory = hub.app.state.store.sessionmaker  # type: ignore[attr-defined]
    with factory() as session:
        row = session.get(OutboxEmail, alert.email_id)
        assert row is not None
        assert row.status == "pending"
    assert _check(hub, smtp) == []  # nothing new to alert about, but the pending one goes out
    assert [str(parsed(m)["Subject"]) for m in _alerts(smtp_sink)] == [
        f"Out of gift codes: Empty ({alert.shortage.reference_id})"
    ]
    # Two processes checking at once queue it once.
    assert record_alerts(factory, sender="x@example.org", providers_url=PROVIDERS_URL) == []


def test_the_hub_checks_the_stock_by_itself(
    hub_settings: Settings, smtp: SmtpSettings, smtp_sink: SmtpSink
) -> None:
    app = create_app(hub_settings, engine="off")
    configure_incentives(app, smtp=smtp, alert_check_interval=0.1, run_fulfiller=False)
    with TestClient(app) as client:
        factory = app.state.store.sessionmaker
        with factory() as session:
            create_user(session, email="boss@example.org", name="Boss", role="admin",
                        password="correct horse battery staple")  # fmt: skip
            session.commit()
        manager = IncentiveManager(factory)
        pool = manager.create_pool("Empty pool", "")
        spec = IncentiveSpec(
            name="Nothing left", provider="gift_codes", gift_code_pool_id=pool.id,
            amount=Decimal(5), currency="USD",
        )  # fmt: skip
        asyncio.run(manager.create(spec, actor="tests"))
        wait_for(lambda: bool(_alerts(smtp_sink)), "the stock alert")
        assert client.get("/healthz").status_code == 200
    [alert] = _alerts(smtp_sink)
    assert alert["to"] == ["boss@example.org"]
    assert "/incentives/providers" in body_text(alert)
