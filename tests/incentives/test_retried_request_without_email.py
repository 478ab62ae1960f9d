"""A request retried under the same request key, whose later copy lost its email (a platform
retry without the field, a replayed run whose response no longer has it): it answers what the
key already did, not "no email"."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from qualflow.incentives.emails import NO_EMAIL_MESSAGE
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import RewardRequest
from qualflow.incentives.service import RewardService
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Db, Person
from tests.incentives.test_api import API, platform_key
from tests.incentives.test_api import gift_incentive as api_gift_incentive
from tests.incentives.test_rewards import gift_incentive, request, submit_and_pay


def requests_with_key(db: Db, key: str) -> list[tuple[str, int | None]]:
    with db.sessionmaker() as session:
        rows = session.execute(
            select(RewardRequest.outcome, RewardRequest.reward_id).where(
                RewardRequest.request_key == key
            )
        )
        return [(outcome, reward_id) for outcome, reward_id in rows]


def test_the_key_that_created_a_reward_answers_it_without_an_email(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    incentive = gift_incentive(manager)
    created = submit_and_pay(
        service, request(incentive, "ana@example.org", response_id="R_1", key="run:1")
    )
    assert created.outcome == "created"
    assert created.reward is not None

    for email in (None, "", "not an address"):
        again = service.submit(request(incentive, email, response_id="R_1", key="run:1"))
        assert again.outcome == "existing", (email, again.message)
        assert again.reward is not None
        assert again.reward.reference_id == created.reward.reference_id
        assert again.message == f"this request created {created.reward.reference_id}"
    # Answered from the record, not recorded again.
    assert requests_with_key(db, "run:1") == [("created", created.reward.id)]


def test_the_key_that_was_a_duplicate_stays_one_without_an_email(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    incentive = gift_incentive(manager)
    first = submit_and_pay(service, request(incentive, "bo@example.org", key="run:a"))
    assert first.reward is not None
    duplicate = service.submit(request(incentive, "BO@example.org", key="run:b"))
    assert duplicate.outcome == "duplicate"

    again = service.submit(request(incentive, None, key="run:b"))

    assert again.outcome == "duplicate"
    assert again.message == f"already rewarded as {first.reward.reference_id}"
    assert again.reward is not None
    assert again.reward.reference_id == first.reward.reference_id
    assert [outcome for outcome, _ in requests_with_key(db, "run:b")] == ["duplicate"]


def test_a_key_without_a_reward_is_still_refused_without_an_email(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    incentive = gift_incentive(manager)
    for _ in range(2):
        refused = service.submit(request(incentive, None, response_id="R_7", key="run:7"))
        assert (refused.outcome, refused.message, refused.reward) == (
            "rejected", NO_EMAIL_MESSAGE, None,
        )  # fmt: skip
    assert requests_with_key(db, "run:7") == [("rejected", None)]
    # Another key (another response) is not answered by this one's reward either.
    submit_and_pay(service, request(incentive, "cy@example.org", response_id="R_8", key="run:8"))
    other = service.submit(request(incentive, None, response_id="R_8", key="run:other"))
    assert other.outcome == "rejected"


def test_a_platform_retry_without_the_email_answers_the_reward(
    hub: TestClient, admin: Person, smtp_sink: SmtpSink
) -> None:
    incentive = api_gift_incentive(hub, admin)
    platform, key = platform_key(hub, admin)
    url = f"{API}/{incentive['reference_id']}/rewards"
    body = {"email": "dee@example.org", "responseId": "R_5", **CLEAN_FRAUD_FIELDS}
    created = hub.post(url, json=body, auth=(platform, key))
    assert created.status_code == 201, created.text

    lost = hub.post(url, json={"responseId": "R_5", "email": ""}, auth=(platform, key))

    assert lost.status_code == 200, lost.text
    assert lost.json()["reference_id"] == created.json()["reference_id"]
    assert lost.json()["status"] == "sent"
    assert len(smtp_sink.messages) == 1  # nobody was emailed twice

    # A response already rewarded through another one's email: 409 with or without the email.
    other = {"email": "dee@example.org", "responseId": "R_6"}
    assert hub.post(url, json=other, auth=(platform, key)).status_code == 409
    retried = hub.post(url, json={"responseId": "R_6"}, auth=(platform, key))
    assert retried.status_code == 409
    assert retried.json()["error"]["code"] == "already_rewarded"
    # A response nothing was asked for yet: still no reward without an email.
    fresh = hub.post(url, json={"responseId": "R_7"}, auth=(platform, key))
    assert fresh.status_code == 422
    assert fresh.json()["error"]["message"] == NO_EMAIL_MESSAGE
