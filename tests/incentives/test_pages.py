"""Incentive pages over HTTP: forms with CSRF, permissions, the review queue and API keys."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from qualflow.incentives.models import Reward
from qualflow.notify.models import OutboxEmail
from qualflow.settings import Settings
from qualflow.store.base import utcnow
from qualflow.store.db import make_engine
from tests.engine.engine_support import SmtpSink
from tests.hub.hub_support import sign_in
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Person, Tango, body_text
from tests.incentives.test_api import wait_for

MakePerson = Callable[..., Person]


def form(token: str, **fields: str | list[str]) -> dict[str, str | list[str]]:
    return {"csrf_token": token, **fields}


INCENTIVE_FIELDS = {
    "name": "Card sort study",
    "provider": "gift_codes",
    "amount": "10",
    "currency": "USD",
    "reward_name": "gift card",
    "approval_mode": "review_all",
    "active": "on",
    "recaptcha_enabled": "on",
    "recaptcha_threshold": "0.5",
    "duplicate_enabled": "on",
    "duplicate_threshold": "75",
    "fraud_enabled": "on",
    "fraud_threshold": "30",
    "hold_missing": "on",
    "shared_email_threshold": "3",
    "shared_ip_threshold": "3",
    "low_stock_threshold": "10",
}


def test_incentive_pages_queue_and_keys(
    hub: TestClient, make_person: MakePerson, smtp_sink: SmtpSink, hub_settings: Settings
) -> None:
    admin = make_person("admin")
    token = sign_in(hub, admin)
    assert "No incentives yet" in hub.get("/incentives").text
    assert "Incentives" in hub.get("/").text  # in the sidebar

    created = hub.post(
        "/incentives/providers/pools", data=form(token, name="Cards", description="")
    )
    assert "Pool “Cards” created" in created.text
    pool_id = re.search(r"Cards</strong> <span class=\"faint\">#(\d+)", created.text)
    assert pool_id
    imported = hub.post(
        f"/incentives/providers/pools/{pool_id.group(1)}/codes",
        data={"csrf_token": token},
        files={
            "file": ("codes.csv", b"code,value,currency,expiry\nPAGE-CODE-1,10,USD,\n", "text/csv")
        },
    )
    assert "Imported 1 code(s)" in imported.text

    bad = hub.post("/incentives/new", data=form(token, **{**INCENTIVE_FIELDS, "amount": "ten"}))
    assert bad.status_code == 400
    assert "Enter a number." in bad.text
    not_an_email = hub.post(
        "/incentives/new",
        data=form(token, **{**INCENTIVE_FIELDS, "alert_emails": "ops@example.org, finance"}),
    )
    assert not_an_email.status_code == 400
    assert "&#39;finance&#39; is not an email address" in not_an_email.text
    assert 'value="ops@example.org, finance"' in not_an_email.text  # kept for correcting
    missing = hub.post("/incentives/new", data=form(token, **INCENTIVE_FIELDS))
    assert missing.status_code == 400
    assert "a gift-code incentive needs gift_code_pool_id" in missing.text
    page = hub.post(
        "/incentives/new",
        data=form(
            token, **INCENTIVE_FIELDS, gift_code_pool_id=pool_id.group(1),
            alert_emails="ops@example.org;\nfinance@example.org",
        ),
    )  # fmt: skip
    assert page.status_code == 200
    assert (
        "<dd>below 10 codes, out of codes; to ops@example.org, finance@example.org</dd>"
        in page.text
    )
    reference = re.search(r"Incentive (INC-[A-Z0-9]{6}) created", page.text)
    assert reference
    ref = reference.group(1)
    assert 'hx-get="/incentives/' in page.text  # the review panel loads on its own
    # How to call it from a Qualtrics workflow: the full URL, ready to copy.
    url = f"{hub_settings.public_base_url.rstrip('/')}/api/v1/incentives/{ref}/rewards"
    assert f'data-copy="{url}"' in page.text
    review = hub.get(f"/incentives/{ref}/review")
    assert "no automation rewards with this incentive yet" in review.text
    assert "1 unused 10.00 USD code(s)" in review.text
    assert "0 rewards committed (no limit)" in review.text
    # One code against a threshold of 10: the overview and the incentives page say so.
    for path in ("/", "/incentives", "/incentives/providers"):
        warned = hub.get(path).text
        assert 'data-testid="low-stock"' in warned
        assert f"({ref}) has 1 unused 10.00 USD code(s) left in pool “Cards”" in warned
    assert "0.00 USD (no budget limit)" in review.text

    tested = hub.post(
        f"/incentives/{ref}/test", data=form(token, email="t@example.org"),
        headers={"X-CSRF-Token": token},
    )  # fmt: skip
    assert 'data-testid="test-report"' in tested.text
    assert "Nobody was paid." in tested.text
    assert smtp_sink.messages[-1]["to"] == [admin.email]

    # A platform API key, then a reward requested with it lands in the review queue.
    hub.post("/incentives/api-keys", data=form(token, platform="acme", display_name="Workflow"))
    keys = hub.get("/incentives/api-keys")
    key_id = re.search(r'data-testid="key-(\d+)"', keys.text)
    assert key_id
    revealed = hub.post(
        f"/incentives/api-keys/{key_id.group(1)}/reveal", headers={"X-CSRF-Token": token}
    )
    raw = re.search(r"acme:(qfk_[A-Za-z0-9_-]+)", revealed.text)
    assert raw
    assert revealed.headers["cache-control"] == "no-store"
    assert raw.group(1) not in hub.get("/incentives/api-keys").text  # only when revealed
    assert "revealed by " + admin.email in hub.get("/incentives/api-keys").text
    answer = hub.post(
        f"/api/v1/incentives/{ref}/rewards", json={"email": "q@example.org", **CLEAN_FRAUD_FIELDS},
        auth=("acme", raw.group(1)),
    )  # fmt: skip
    reward = answer.json()["reference_id"]
    queue = hub.get("/incentives/review-queue")
    assert f'data-testid="held-{reward}"' in queue.text
    assert "this incentive reviews every reward before paying it" in queue.text
    overview = hub.get("/").text
    assert 'data-testid="rewards-held"' in overview  # the overview says what needs attention
    assert "1 reward is held for review." in overview

    released = hub.post(
        "/incentives/review-queue", data=form(token, action="release", reward=[reward])
    )
    assert f"Released 1 reward(s): {reward}." in released.text
    assert 'data-testid="rewards-held"' not in hub.get("/").text
    detail = hub.get(f"/incentives/rewards/{reward}")
    assert "released by " + admin.email in detail.text
    assert 'data-testid="reward-run"' not in detail.text  # asked for by a key, not by a run
    wait_for(lambda: any(m["to"] == ["q@example.org"] for m in smtp_sink.messages))
    assert "PAGE-CODE-1" in body_text(smtp_sink.messages[-1])
    assert f"({ref}) is out of 10.00 USD codes in pool “Cards”" in hub.get("/").text

    deactivated = hub.post(f"/incentives/api-keys/{key_id.group(1)}/deactivate", data=form(token))
    assert "deactivated for good" in deactivated.text

    # A sent reward can be resent; one paid whose first email waits for its next attempt (the
    # mail server refused it a while ago) can be sent now instead.
    sent_page = hub.get(f"/incentives/rewards/{reward}").text
    assert "Resend email" in sent_page
    assert 'data-testid="send-now"' not in sent_page
    engine = make_engine(hub_settings.database_url)
    with engine.begin() as connection:  # as a process without email settings leaves it
        connection.execute(
            update(Reward)
            .where(Reward.reference_id == reward)
            .values(
                status="ordered", sent_at=None, email_outbox_id=None,
                last_error="email to q@example.org failed: 421 try again later",
                next_attempt_at=utcnow() + timedelta(minutes=30),
            )
        )  # fmt: skip
        connection.execute(
            delete(OutboxEmail).where(OutboxEmail.idempotency_key == f"reward:{reward}")
        )
    engine.dispose()
    waiting_page = hub.get(f"/incentives/rewards/{reward}").text
    assert 'data-testid="send-now"' in waiting_page
    assert "otherwise a worker tries again" in waiting_page
    assert "Resend email" not in waiting_page
    emails = len(smtp_sink.messages)
    sent_now = hub.post(f"/incentives/rewards/{reward}/resend", data=form(token))
    assert "Email sent to the respondent." in sent_now.text
    assert len(smtp_sink.messages) == emails + 1
    assert smtp_sink.messages[-1]["to"] == ["q@example.org"]
    assert "Resend email" in sent_now.text


def test_pages_check_permissions_and_csrf(hub: TestClient, make_person: MakePerson) -> None:
    viewer = make_person("viewer")
    token = sign_in(hub, viewer)
    assert hub.get("/incentives").status_code == 200
    denied = hub.get("/incentives/new")
    assert denied.status_code == 403
    assert "Manage permission on incentives" in denied.text
    assert hub.get("/incentives/api-keys").status_code == 403  # viewers see no keys
    forged = hub.post("/incentives/review-queue", data={"action": "release", "reward": "RW-X"})
    assert forged.status_code in (400, 403)
    assert (
        hub.post("/incentives/review-queue", data=form(token, action="release")).status_code == 403
    )
    missing = hub.get("/incentives/INC-ZZZZZZ")
    assert missing.status_code == 404


def test_a_tango_catalog_page_leads_to_a_prefilled_incentive(
    hub: TestClient, make_person: MakePerson, tango: Tango
) -> None:
    from tests.incentives.test_api import create_tango_account

    admin = make_person("admin")
    sign_in(hub, admin)
    account = create_tango_account(hub, admin, tango).json()["id"]
    providers = hub.get("/incentives/providers")
    assert f'data-testid="catalog-{account}"' in providers.text
    page = hub.get(f"/incentives/providers/tango/{account}/catalog")
    assert page.status_code == 200
    row = re.search(r'<tr data-utid="U442382">(.*?)</tr>', page.text, re.S)
    assert row
    assert "Coffee House $10 eGift" in row.group(1)
    assert "10.00 USD" in row.group(1)
    link = re.search(r'href="(/incentives/new\?[^"]+)"', row.group(1))
    assert link
    assert 'data-utid="U157190"' in page.text  # inactive: listed, but nothing to create
    inactive = re.search(r'<tr data-utid="U157190">(.*?)</tr>', page.text, re.S)
    assert inactive
    assert "New incentive" not in inactive.group(1)

    form = hub.get(html.unescape(link.group(1))).text
    assert re.search(r'name="utid"[^>]*value="U442382"', form)
    assert re.search(r'name="amount"[^>]*value="10.00"', form)
    assert re.search(r'value="tango"[^>]*checked', form)
    assert f'<option value="{account}" selected' in form

    missing = hub.get("/incentives/providers/tango/999/catalog")
    assert missing.status_code == 404
    assert "Tango account 999" in missing.text


def test_the_automation_editor_offers_the_incentives_by_reference(
    hub: TestClient, make_person: MakePerson
) -> None:
    from tests.incentives.test_api import gift_incentive

    admin = make_person("admin")
    sign_in(hub, admin)
    incentive = gift_incentive(hub, admin, stock=1, name="Card sort")
    editor = hub.get("/automations/new")
    assert editor.status_code == 200
    options = re.search(r'<datalist id="suggest-incentives"[^>]*>(.*?)</datalist>', editor.text)
    assert options
    offered = f'<option value="{incentive["reference_id"]}">Card sort (open)</option>'
    assert offered in options.group(1)
    step = hub.get("/automations/_step", params={"action": "incentives.send_reward"})
    assert re.search(r'name="step-\w+-config-incentive"[^>]*list="suggest-incentives"', step.text)
    # Someone who cannot see incentives is not offered them.
    automations_only = make_person("viewer", automations="manage", incentives="none")
    hub.cookies.clear()
    sign_in(hub, automations_only)
    assert incentive["reference_id"] not in hub.get("/automations/new").text
