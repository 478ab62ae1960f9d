"""A reward whose first email the mail server refused for good, delivered later by a resend: the
reward points at the outbox email that delivered it, and its REST and UI views say so."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.service import RewardFailed, RewardService
from qualflow.notify.models import OutboxEmail
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Db, Person, reward_row
from tests.incentives.test_api import API, gift_incentive, platform_key
from tests.incentives.test_pages import form, sign_in
from tests.incentives.test_rewards import gift_incentive as service_gift_incentive
from tests.incentives.test_rewards import request

REFUSED = "550 5.1.1 no such mailbox"


def outbox_row(db: Db, outbox_id: int | None) -> OutboxEmail:
    assert outbox_id is not None
    with db.sessionmaker() as session:
        row = session.get(OutboxEmail, outbox_id)
        assert row is not None
        return row


def refused_reward(service: RewardService, manager: IncentiveManager, smtp_sink: SmtpSink) -> str:
    incentive = service_gift_incentive(manager)
    smtp_sink.refuse_next.append(REFUSED)
    submission = service.submit(request(incentive, "pat@example.org"), lease_owner="tests")
    assert submission.reward is not None
    with pytest.raises(RewardFailed, match="no such mailbox"):
        asyncio.run(service.fulfil(submission.reward.id, owner="tests", submitted=submission))
    return submission.reward.reference_id


def test_a_resend_that_delivers_a_refused_reward_records_its_email(
    db: Db, manager: IncentiveManager, service: RewardService, smtp_sink: SmtpSink
) -> None:
    reference = refused_reward(service, manager, smtp_sink)
    refused = reward_row(db, reference)
    assert (refused.status, refused.email_outbox_id, refused.next_attempt_at) == (
        "ordered", None, None,
    )  # fmt: skip

    resent = asyncio.run(service.resend(reference, actor="ops", new_email="pat.new@example.org"))

    assert resent.first  # the first email to reach the respondent
    assert resent.reward.email_outbox_id == reward_row(db, reference).email_outbox_id
    reward = reward_row(db, reference)
    assert reward.status == "sent"
    assert reward.sent_at is not None
    assert reward.last_error is None
    delivered = outbox_row(db, reward.email_outbox_id)
    assert delivered.idempotency_key == f"reward:{reference}:resend:1"
    assert delivered.status == "sent"
    assert delivered.recipients == ["pat.new@example.org"]
    assert smtp_sink.messages[-1]["to"] == ["pat.new@example.org"]

    # Resent once more: the reward still names the email that delivered it first.
    assert not asyncio.run(service.resend(reference, actor="ops")).first
    again = reward_row(db, reference)
    assert again.email_outbox_id == delivered.id
    assert again.sent_at == reward.sent_at
    assert again.resend_count == 2


def test_a_reward_emailed_at_once_records_its_email(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    incentive = service_gift_incentive(manager)
    submission = service.submit(request(incentive, "first@example.org"), lease_owner="tests")
    assert submission.reward is not None
    asyncio.run(service.fulfil(submission.reward.id, owner="tests", submitted=submission))
    reward = reward_row(db, submission.reward.reference_id)
    assert reward.status == "sent"
    assert outbox_row(db, reward.email_outbox_id).idempotency_key == (
        f"reward:{reward.reference_id}"
    )


def test_the_rest_and_ui_views_name_the_email_that_delivered_it(
    hub: TestClient, admin: Person, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(hub, admin)
    platform, key = platform_key(hub, admin)
    smtp_sink.refuse_next.append(REFUSED)
    created = hub.post(
        f"{API}/{incentive['reference_id']}/rewards",
        json={"email": "sam@example.org", **CLEAN_FRAUD_FIELDS}, auth=(platform, key),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    reference = created.json()["reference_id"]
    detail = hub.get(f"{API}/rewards/{reference}", headers=admin.headers).json()
    assert detail["status"] == "ordered", detail
    assert detail["email_outbox_id"] is None
    assert "no such mailbox" in detail["last_error"]

    resent = hub.post(
        f"{API}/rewards/{reference}/resend", json={"email": "sam.b@example.org"},
        headers=admin.headers,
    )  # fmt: skip
    assert resent.status_code == 200, resent.text
    body = resent.json()
    assert body["status"] == "sent"
    assert body["sent_at"] is not None
    assert body["last_error"] is None
    assert isinstance(body["email_outbox_id"], int)
    assert (
        hub.get(f"{API}/rewards/{reference}", headers=admin.headers).json()["email_outbox_id"]
        == body["email_outbox_id"]
    )

    sign_in(hub, admin)
    page = hub.get(f"/incentives/rewards/{reference}").text
    assert f'href="/outbox/{body["email_outbox_id"]}"' in page
    assert "Last error" not in page
    outbox = hub.get(f"/outbox/{body['email_outbox_id']}").text
    assert "sam.b@example.org" in outbox


def test_the_ui_says_the_email_was_sent_or_resent_as_the_service_did(
    hub: TestClient, admin: Person, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(hub, admin)
    platform, key = platform_key(hub, admin)
    smtp_sink.refuse_next.append(REFUSED)
    created = hub.post(
        f"{API}/{incentive['reference_id']}/rewards",
        json={"email": "kim@example.org", **CLEAN_FRAUD_FIELDS}, auth=(platform, key),
    )  # fmt: skip
    reference = created.json()["reference_id"]
    token = sign_in(hub, admin)

    first = hub.post(
        f"/incentives/rewards/{reference}/resend", data=form(token, email="kim.b@example.org")
    )
    assert "Email sent to kim.b@example.org." in first.text
    second = hub.post(f"/incentives/rewards/{reference}/resend", data=form(token))
    assert "Email resent to the respondent." in second.text
    refused = hub.post("/incentives/rewards/RW-NOPE2345/resend", data=form(token))
    assert "reward RW-NOPE2345 does not exist" in refused.text
