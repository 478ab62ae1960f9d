"""Sandbox respondent → webhook → run → reward ordered/assigned → email received, per provider,
and every stated outcome: duplicate email, duplicate response, bot, insufficient balance, out of
codes, limits, anonymous response; and a JSON event posted to the edge → run → reward."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from qualflow.engine.automations import Automations
from qualflow.engine.runs import RunDetail
from qualflow.incentives.api import build_review
from qualflow.incentives.emails import NO_EMAIL_MESSAGE
from qualflow.incentives.models import RewardTransition
from qualflow.incentives.runtime import IncentiveOptions, build_runtime
from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT
from tests.engine.engine_support import SmtpSink
from tests.incentives.e2e_support import CLEAN_FRAUD, RewardHub, email_qid, reward_hub
from tests.incentives.support import body_text, parsed

pytestmark = pytest.mark.slow


@pytest.fixture
def hub(database_url: str, smtp_sink: SmtpSink) -> Iterator[RewardHub]:
    with reward_hub(database_url, smtp_sink.port) as opened:
        yield opened


def reward_step(run: RunDetail) -> object:
    [step] = [s for s in run.steps if s.key == "reward"]
    return step


def answer(hub: RewardHub, email: str, **values: object) -> dict[str, object]:
    return {f"{email_qid(hub.screener)}_TEXT": email, "recipientFirstName": "Ana", **values}


def test_gift_codes_from_respondent_to_inbox_with_every_outcome(
    hub: RewardHub, smtp_sink: SmtpSink
) -> None:
    incentive = hub.incentive("gift_codes", stock=2)
    first = hub.automation(incentive, name="reward A")
    second = hub.automation(incentive, name="reward B")  # the same response reaches it too

    response = hub.respond(**answer(hub, "Ana@Example.org"))
    runs = [hub.wait_run(a, hub.screener, response) for a in (first, second)]
    assert all(run.status == "succeeded" for run in runs), [run.error for run in runs]
    steps = [reward_step(run) for run in runs]
    [paid] = [s for s in steps if s.status == "succeeded"]  # type: ignore[attr-defined]
    [skipped] = [s for s in steps if s.status == "skipped"]  # type: ignore[attr-defined]
    reference = paid.output["reward"]  # type: ignore[attr-defined]
    assert paid.output["status"] == "sent"  # type: ignore[attr-defined]
    assert skipped.error == f"already rewarded as {reference}"  # duplicate response
    [mail] = smtp_sink.messages
    assert mail["to"] == ["Ana@Example.org"]
    assert parsed(mail)["Subject"] == "Your reward: 10.00 USD gift code"
    assert f"CODE-{incentive.gift_code_pool_id}-" in body_text(mail)
    assert hub.reward(reference).response_id == response
    Automations(hub.engine.services).set_enabled(second, False)

    again = hub.respond(**answer(hub, "ana@example.org"))
    duplicate = reward_step(hub.wait_run(first, hub.screener, again))
    assert duplicate.status == "skipped"  # type: ignore[attr-defined]
    assert duplicate.error == f"already rewarded as {reference}"  # type: ignore[attr-defined]

    bot = hub.respond(
        **answer(hub, "bot@example.org", Q_RecaptchaScore=0.1, Q_RelevantIDFraudScore=95)
    )
    held = reward_step(hub.wait_run(first, hub.screener, bot))
    assert held.status == "succeeded"  # type: ignore[attr-defined]
    assert held.output["status"] == "held"  # type: ignore[attr-defined]
    reasons = " ".join(held.output["reasons"])  # type: ignore[attr-defined]
    assert "Q_RecaptchaScore 0.1 is below 0.5" in reasons
    assert "Q_RelevantIDFraudScore 95 is at or above 30" in reasons

    hub.wait_run(first, hub.screener, hub.respond(**answer(hub, "ben@example.org")))
    last = hub.respond(**answer(hub, "cleo@example.org"))
    out_of_codes = reward_step(hub.wait_run(first, hub.screener, last))
    assert out_of_codes.output["status"] == "held"  # type: ignore[attr-defined]
    assert out_of_codes.output["reasons"][0].startswith("out of codes: pool")  # type: ignore[attr-defined]
    assert len(smtp_sink.messages) == 2


def test_tango_from_respondent_to_inbox_and_insufficient_balance(
    hub: RewardHub, smtp_sink: SmtpSink
) -> None:
    incentive = hub.incentive("tango")
    automation = hub.automation(incentive)
    response = hub.respond(**answer(hub, "pat@example.org"))
    step = reward_step(hub.wait_run(automation, hub.screener, response))
    assert step.output["status"] == "sent"  # type: ignore[attr-defined]
    [order] = hub.tango.orders.values()
    assert order["recipient"]["email"] == "pat@example.org"
    code = order["reward"]["credentialList"][0]["value"]
    assert code in body_text(smtp_sink.messages[0])
    assert hub.tango.balance(DEFAULT_ACCOUNT) == Decimal("990.00")

    hub.tango.set_balance(DEFAULT_ACCOUNT, "5")
    poor = hub.respond(**answer(hub, "quinn@example.org"))
    held = reward_step(hub.wait_run(automation, hub.screener, poor))
    assert held.output["status"] == "held"  # type: ignore[attr-defined]
    # Our cached balance still said 990, so Tango itself refused; its words are kept.
    [reason] = held.output["reasons"]  # type: ignore[attr-defined]
    assert reason.startswith("insufficient balance: ")
    assert "has 5.00 USD" in reason
    assert len(hub.tango.orders) == 1
    assert len(smtp_sink.messages) == 1


def test_tango_orders_once_for_duplicates_and_holds_bots(
    hub: RewardHub, smtp_sink: SmtpSink
) -> None:
    incentive = hub.incentive("tango")
    first = hub.automation(incentive, name="tango A")
    second = hub.automation(incentive, name="tango B")  # the same response reaches it too

    response = hub.respond(**answer(hub, "Rae@Example.org"))
    steps = [reward_step(hub.wait_run(a, hub.screener, response)) for a in (first, second)]
    [paid] = [s for s in steps if s.status == "succeeded"]  # type: ignore[attr-defined]
    [skipped] = [s for s in steps if s.status == "skipped"]  # type: ignore[attr-defined]
    reference = paid.output["reward"]  # type: ignore[attr-defined]
    assert paid.output["status"] == "sent"  # type: ignore[attr-defined]
    assert skipped.error == f"already rewarded as {reference}"  # duplicate response
    Automations(hub.engine.services).set_enabled(second, False)

    again = hub.respond(**answer(hub, "rae@example.ORG"))
    duplicate = reward_step(hub.wait_run(first, hub.screener, again))
    assert duplicate.status == "skipped"  # type: ignore[attr-defined]
    assert duplicate.error == f"already rewarded as {reference}"  # type: ignore[attr-defined]

    bot = hub.respond(**answer(hub, "bot@example.org", Q_RecaptchaScore=0.2))
    held = reward_step(hub.wait_run(first, hub.screener, bot))
    assert held.status == "succeeded"  # type: ignore[attr-defined]
    assert held.output["status"] == "held"  # type: ignore[attr-defined]
    assert held.output["reasons"] == ["Q_RecaptchaScore 0.2 is below 0.5 (likely a bot)"]  # type: ignore[attr-defined]
    assert hub.reward(held.output["reward"]).status == "held"  # type: ignore[attr-defined]

    # Tango was asked once, for the one eligible respondent; one email went out.
    [order] = hub.tango.orders.values()
    assert order["recipient"]["email"] == "Rae@Example.org"
    assert hub.tango.balance(DEFAULT_ACCOUNT) == Decimal("990.00")
    [mail] = smtp_sink.messages
    assert mail["to"] == ["Rae@Example.org"]
    assert order["reward"]["credentialList"][0]["value"] in body_text(mail)


def test_manual_limits_and_anonymous_responses(hub: RewardHub, smtp_sink: SmtpSink) -> None:
    manual = hub.incentive("manual", max_rewards=1)
    automation = hub.automation(manual)
    first = reward_step(
        hub.wait_run(automation, hub.screener, hub.respond(**answer(hub, "m1@example.org")))
    )
    assert first.output["status"] == "ordered"  # type: ignore[attr-defined]
    over = reward_step(
        hub.wait_run(automation, hub.screener, hub.respond(**answer(hub, "m2@example.org")))
    )
    assert over.output["status"] == "held"  # type: ignore[attr-defined]
    assert over.output["reasons"] == ["limit reached: 1 of 1 rewards already committed"]  # type: ignore[attr-defined]
    assert smtp_sink.messages == []  # manual rewards are emailed once marked paid

    # Paid by hand, then marked paid (as `qualflow incentives rewards mark-paid` does): the
    # fulfiller emails it.
    reference = first.output["reward"]  # type: ignore[attr-defined]
    runtime = hub.runtime
    [marked] = runtime.service.mark_paid([reference], actor="finance@example.org")
    assert marked.ok, marked.message
    assert asyncio.run(runtime.fulfiller.drain()) == 1
    paid = hub.reward(reference)
    assert paid.status == "sent"
    assert paid.paid_at is not None
    [mail] = smtp_sink.messages
    assert mail["to"] == ["m1@example.org"]
    assert "Hi Ana," in body_text(mail)
    assert "10.00 USD" in body_text(mail)
    with hub.factory() as session:
        reasons = session.scalars(
            select(RewardTransition.reason).where(RewardTransition.reward_id == paid.id)
        ).all()
    assert "marked paid by finance@example.org" in reasons
    [again] = runtime.service.mark_paid([reference], actor="finance@example.org")
    assert not again.ok  # paid once
    assert hub.reward(over.output["reward"]).status == "held"  # type: ignore[attr-defined]
    assert len(smtp_sink.messages) == 1

    # A survey without an email question, rewarded from the recipient email: anonymous-link
    # respondents have none.
    gifts = hub.incentive("gift_codes")
    by_recipient = hub.automation(
        gifts, survey=hub.anonymous_survey, email_source="recipient_email"
    )
    anonymous = hub.respond(
        hub.anonymous_survey, distributionChannel="anonymous", recipientEmail="",
        recipientFirstName="",
    )  # fmt: skip
    run = hub.wait_run(by_recipient, hub.anonymous_survey, anonymous)
    assert run.status == "failed"
    assert run.error == NO_EMAIL_MESSAGE
    personal = hub.respond(
        hub.anonymous_survey, distributionChannel="email", recipientEmail="known@example.org",
        recipientFirstName="Kim",
    )  # fmt: skip
    step = reward_step(hub.wait_run(by_recipient, hub.anonymous_survey, personal))
    assert step.output["status"] == "sent"  # type: ignore[attr-defined]
    assert "Hi Kim," in body_text(smtp_sink.messages[-1])


# A JSON event names the respondent in an embedded-data-style field of its own.
EVENT_FIELDS = {
    "respondent_email": "$.embeddedData.RespondentEmail",
    "first_name": "$.embeddedData.FirstName",
}
EVENT_STEP = {
    "email_source": "embedded_data",
    "email_field": "respondent_email",
    "first_name_field": "first_name",
}
MISSING_FROM_EVENT = (
    "fraud-detection field(s) missing from the event: Q_RecaptchaScore, Q_RelevantIDDuplicate, "
    "Q_RelevantIDFraudScore (send them in the event's fields, or switch these rules off)"
)


def event(email: str, first_name: str = "Eve", **embedded: object) -> dict[str, object]:
    return {
        "type": "study.completed",
        "embeddedData": {"RespondentEmail": email, "FirstName": first_name, **embedded},
    }


def test_json_event_without_fraud_fields_is_held_then_released_to_the_inbox(
    hub: RewardHub, smtp_sink: SmtpSink
) -> None:
    incentive = hub.incentive("gift_codes", stock=3)
    automation = hub.event_automation(incentive, EVENT_FIELDS, EVENT_STEP)

    run = hub.wait_run_id(hub.post_event(automation, event("Eve@Example.org")))
    assert run.status == "succeeded", run.error
    held = reward_step(run)
    assert held.output["status"] == "held"  # type: ignore[attr-defined]
    assert held.output["reasons"] == [MISSING_FROM_EVENT]  # type: ignore[attr-defined]
    reference = held.output["reward"]  # type: ignore[attr-defined]
    reward = hub.reward(reference)
    assert (reward.email, reward.first_name, reward.response_id) == ("Eve@Example.org", "Eve", None)
    assert smtp_sink.messages == []

    runtime = hub.runtime
    [released] = runtime.service.release([reference], actor="reviewer@example.org")
    assert released.ok, released.message
    asyncio.run(runtime.fulfiller.drain())
    assert hub.reward(reference).status == "sent"
    [mail] = smtp_sink.messages
    assert mail["to"] == ["Eve@Example.org"]
    assert "Hi Eve," in body_text(mail)
    assert f"CODE-{incentive.gift_code_pool_id}-" in body_text(mail)

    duplicate = reward_step(hub.wait_run_id(hub.post_event(automation, event("eve@example.org"))))
    assert duplicate.status == "skipped"  # type: ignore[attr-defined]
    assert duplicate.error == f"already rewarded as {reference}"  # type: ignore[attr-defined]

    # A run of the same automation started by hand with the fraud fields in its data: values
    # from the trigger (not a response) that pass the rules are paid and emailed at once.
    by_hand = Automations(hub.engine.services).run_now(
        automation.id, {"respondent_email": "hal@example.org", "first_name": "Hal", **CLEAN_FRAUD}
    )
    sent = reward_step(hub.wait_run_id(by_hand))
    assert sent.output["status"] == "sent", sent.output  # type: ignore[attr-defined]
    assert sent.output["reasons"] == []  # type: ignore[attr-defined]
    assert smtp_sink.messages[-1]["to"] == ["hal@example.org"]
    assert "Hi Hal," in body_text(smtp_sink.messages[-1])
    assert len(smtp_sink.messages) == 2


def test_json_event_with_clean_fraud_fields_is_sent_and_emailed(
    hub: RewardHub, smtp_sink: SmtpSink
) -> None:
    incentive = hub.incentive("gift_codes", stock=3)
    fields = EVENT_FIELDS | {name: f"$.embeddedData.{name}" for name in CLEAN_FRAUD}
    automation = hub.event_automation(incentive, fields, EVENT_STEP)

    run = hub.wait_run_id(
        hub.post_event(automation, event("fay@example.org", "Fay", **CLEAN_FRAUD))
    )
    step = reward_step(run)
    assert step.output["status"] == "sent", step.output  # type: ignore[attr-defined]
    [mail] = smtp_sink.messages
    assert mail["to"] == ["fay@example.org"]
    assert "Hi Fay," in body_text(mail)


def test_configuration_review_reads_the_survey(hub: RewardHub) -> None:
    incentive = hub.incentive("gift_codes", stock=3)
    hub.automation(incentive, name="screener rewards")
    hub.automation(
        incentive, survey=hub.anonymous_survey, email_source="recipient_email", name="cx rewards"
    )
    runtime = build_runtime(hub.factory, None, IncentiveOptions())
    review = asyncio.run(build_review(runtime, incentive.reference_id))

    by_name = {a.name: a for a in review.automations}
    screener = by_name["screener rewards"]
    assert screener.survey_name == hub.screener.name
    assert screener.email_required is True
    assert screener.email_question == "What is your email address?"
    assert screener.fraud_detection == {
        "recaptcha": True, "relevant_id": True, "ballot_box_stuffing": True
    }  # fmt: skip
    assert screener.anonymous_link is None  # no responses yet, no anonymous distribution: unknown
    assert screener.warnings == []
    cx = by_name["cx rewards"]
    assert cx.email_required is False
    assert any("anonymous link have none" in w for w in cx.warnings)
    assert any("bot detection (reCAPTCHA) is off" in w for w in cx.warnings)
    assert review.provider.stock == 3
    assert any(w.startswith("low stock: only 3") for w in review.warnings)
    assert any(w.startswith("cx rewards: ") for w in review.warnings)
