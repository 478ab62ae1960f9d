"""A reward paid by a process without email settings is not lost: it stays due, and the first
fulfiller with email settings sends it, once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from qualflow.engine.actions import ActionContext, get_action
from qualflow.engine.config import EngineConfig
from qualflow.engine.services import EngineServices
from qualflow.incentives.lifecycle import TransitionError, describe
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import Incentive, Reward
from qualflow.incentives.providers import ProviderContext
from qualflow.incentives.service import (
    EMAIL_AWAITS_SETTINGS,
    EMAIL_NOT_CONFIGURED,
    Fulfiller,
    RewardFailed,
    RewardService,
)
from qualflow.notify.email import SmtpSettings
from qualflow.notify.models import OutboxEmail
from qualflow.store.base import utcnow
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Db, body_text, reward_row, transitions
from tests.incentives.test_rewards import gift_incentive, manual_incentive, paid_reference, request


def send_reward_step(
    db: Db, service: RewardService, incentive: Incentive, email: str
) -> dict[str, Any]:
    """The output of an ``incentives.send_reward`` step for a JSON event carrying ``email``."""
    spec = get_action("incentives.send_reward")
    config = spec.validate_config(
        {
            "incentive": incentive.reference_id,
            "email_source": "embedded_data",
            "email_field": "email",
        }
    )
    ctx = ActionContext(
        run_id="run-1",
        automation_id=1,
        automation_name="Thank respondents",
        automation_version=1,
        connection_id=None,
        step_key="reward",
        position=0,
        attempt=1,
        trigger={"fields": {"email": email, **CLEAN_FRAUD_FIELDS}},
        outputs={},
        services=EngineServices(
            config=EngineConfig(database_url=db.url),
            sessionmaker=db.sessionmaker,
            extras={"incentives.service": service},
        ),
    )
    output: dict[str, Any] = asyncio.run(spec.func(ctx, config))
    return output


def reward_emails(db: Db, reference: str) -> list[OutboxEmail]:
    with db.sessionmaker() as session:
        return list(
            session.scalars(
                select(OutboxEmail).where(
                    OutboxEmail.idempotency_key.startswith(f"reward:{reference}")
                )
            )
        )


def test_a_step_without_email_settings_pays_and_a_worker_with_them_emails_once(
    db: Db,
    manager: IncentiveManager,
    providers: ProviderContext,
    smtp: SmtpSettings,
    smtp_sink: SmtpSink,
) -> None:
    incentive = gift_incentive(manager)
    without_email = RewardService(db.sessionmaker, providers=providers)

    before = utcnow()
    output = send_reward_step(db, without_email, incentive, "ana@example.org")

    # The step succeeds, saying the reward was paid and what its email waits for.
    reference = output["reward"]
    assert output["status"] == "ordered"
    assert output["summary"] == f"{reference} ordered, not emailed yet: {EMAIL_AWAITS_SETTINGS}"
    waiting = reward_row(db, reference)
    assert waiting.last_error == EMAIL_AWAITS_SETTINGS
    assert waiting.next_attempt_at is not None
    assert before < waiting.next_attempt_at <= utcnow() + timedelta(hours=1)
    assert transitions(db, reference)[-1] == ("ordered", "ordered", EMAIL_AWAITS_SETTINGS)
    assert smtp_sink.messages == []
    assert reward_emails(db, reference) == []
    # Its own process looks again only after the backoff.
    assert Fulfiller(without_email).due() == []

    with_email = RewardService(db.sessionmaker, providers=providers, smtp=smtp)
    fulfiller = Fulfiller(with_email)
    assert fulfiller.due() == [waiting.id]
    assert asyncio.run(fulfiller.drain()) == 1

    sent = reward_row(db, reference)
    assert (sent.status, sent.last_error, sent.next_attempt_at) == ("sent", None, None)
    assert transitions(db, reference)[-1] == ("ordered", "sent", "reward emailed")
    assert [m["to"] for m in smtp_sink.messages] == [["ana@example.org"]]
    assert reference in body_text(smtp_sink.messages[0])
    assert [(e.status, e.idempotency_key) for e in reward_emails(db, reference)] == [
        ("sent", f"reward:{reference}")
    ]

    assert asyncio.run(fulfiller.drain()) == 0
    assert asyncio.run(Fulfiller(without_email).drain()) == 0
    assert len(smtp_sink.messages) == 1


def test_every_later_attempt_without_email_settings_keeps_it_due_within_the_hour(
    db: Db, manager: IncentiveManager, providers: ProviderContext, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(manager)
    without_email = RewardService(db.sessionmaker, providers=providers)
    submission = without_email.submit(request(incentive, "bo@example.org"), lease_owner="tests")
    assert submission.reward is not None
    reward_id, reference = submission.reward.id, submission.reward.reference_id
    first = asyncio.run(without_email.fulfil(reward_id, owner="tests", submitted=submission))
    assert first is not None
    assert describe(first) == f"ordered, not emailed yet: {EMAIL_AWAITS_SETTINGS}"

    # The attempts its fulfiller makes as each backoff ends.
    for attempt in range(9):
        asyncio.run(without_email.fulfil(reward_id, owner=f"fulfiller-{attempt}"))

    waiting = reward_row(db, reference)
    assert (waiting.status, waiting.attempts, waiting.lease_owner) == ("ordered", 10, None)
    assert waiting.next_attempt_at is not None
    assert (
        utcnow() + timedelta(minutes=59) < waiting.next_attempt_at <= utcnow() + timedelta(hours=1)
    )
    # The wait is in the history once, not once per attempt.
    assert [t for t in transitions(db, reference) if t[2] == EMAIL_AWAITS_SETTINGS] == [
        ("ordered", "ordered", EMAIL_AWAITS_SETTINGS)
    ]
    assert smtp_sink.messages == []


def test_resend_of_a_waiting_reward_sends_its_email_once(
    db: Db,
    manager: IncentiveManager,
    providers: ProviderContext,
    smtp: SmtpSettings,
    smtp_sink: SmtpSink,
) -> None:
    without_email = RewardService(db.sessionmaker, providers=providers)
    reference = paid_reference(without_email, gift_incentive(manager), "cy@example.org")

    with pytest.raises(RewardFailed, match=r"^email is not configured") as no_settings:
        asyncio.run(without_email.resend(reference, actor="ops"))
    assert no_settings.value.reason == EMAIL_NOT_CONFIGURED
    with_email = RewardService(db.sessionmaker, providers=providers, smtp=smtp)
    with pytest.raises(TransitionError, match="was not emailed yet"):
        asyncio.run(with_email.resend(reference, actor="ops", new_email="other@example.org"))
    assert smtp_sink.messages == []

    sent = asyncio.run(with_email.resend(reference, actor="ops", new_email="CY@example.org"))
    assert (sent.reward.status, sent.reward.resend_count, sent.first) == ("sent", 0, True)
    assert transitions(db, reference)[-2:] == [
        ("ordered", "sent", "reward emailed"),
        ("sent", "sent", "emailed to cy@example.org at once at the request of ops"),
    ]
    assert reward_row(db, reference).lease_owner is None
    assert asyncio.run(Fulfiller(with_email).drain()) == 0
    assert [m["to"] for m in smtp_sink.messages] == [["cy@example.org"]]
    assert [e.idempotency_key for e in reward_emails(db, reference)] == [f"reward:{reference}"]


def test_a_manual_reward_marked_paid_without_email_settings_waits_for_them(
    db: Db,
    manager: IncentiveManager,
    providers: ProviderContext,
    smtp: SmtpSettings,
    smtp_sink: SmtpSink,
) -> None:
    without_email = RewardService(db.sessionmaker, providers=providers)
    reference = paid_reference(without_email, manual_incentive(manager), "di@example.org")
    assert reward_row(db, reference).next_attempt_at is None  # waits to be paid by hand

    (marked,) = without_email.mark_paid([reference], actor="ops")
    assert marked.ok
    assert asyncio.run(Fulfiller(without_email).drain()) == 1
    waiting = reward_row(db, reference)
    assert (waiting.status, waiting.last_error) == ("ordered", EMAIL_AWAITS_SETTINGS)
    assert waiting.next_attempt_at is not None

    with_email = RewardService(db.sessionmaker, providers=providers, smtp=smtp)
    assert asyncio.run(Fulfiller(with_email).drain()) == 1
    assert reward_row(db, reference).status == "sent"
    assert transitions(db, reference)[-1] == (
        "ordered", "sent", "reward emailed after payment by hand"
    )  # fmt: skip
    assert [m["to"] for m in smtp_sink.messages] == [["di@example.org"]]
    assert asyncio.run(Fulfiller(with_email).drain()) == 0
    assert len(smtp_sink.messages) == 1


def test_a_reward_whose_email_failed_otherwise_is_not_taken_early(
    db: Db, manager: IncentiveManager, providers: ProviderContext, smtp: SmtpSettings
) -> None:
    """Only the wait for email settings skips the backoff: a failing SMTP server keeps its."""
    incentive = gift_incentive(manager)
    with_email = RewardService(db.sessionmaker, providers=providers, smtp=smtp)
    submission = with_email.submit(request(incentive, "ed@example.org"), lease_owner="tests")
    assert submission.reward is not None
    with db.sessionmaker.begin() as session:
        reward = session.get(Reward, submission.reward.id)
        assert reward is not None
        reward.last_error = "email to ed@example.org failed: SMTP server answered 451"
        reward.next_attempt_at = utcnow() + timedelta(minutes=5)
        reward.lease_owner = reward.lease_until = None
    assert Fulfiller(with_email).due() == []
