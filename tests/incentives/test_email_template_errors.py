"""A reward whose email template fails to render is paid and recorded, says why its email is
missing, can be resent once the template is fixed, and never stalls the fulfiller's queue."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.providers import ProviderContext
from qualflow.incentives.schemas import IncentivePatch
from qualflow.incentives.service import Fulfiller, RewardFailed, RewardService
from qualflow.notify.email import SmtpSettings
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import Db, reward_row, transitions
from tests.incentives.test_email_awaits_settings import reward_emails
from tests.incentives.test_rewards import gift_incentive, request

# Valid syntax (accepted when saved); fails only when rendered.
BROKEN_BODY = "Hi {{ first_name }}, your code is {{ code }} ({{ 1 // 0 }})."


def test_a_template_error_leaves_the_reward_paid_with_the_reason_until_a_resend(
    db: Db,
    manager: IncentiveManager,
    providers: ProviderContext,
    smtp: SmtpSettings,
    smtp_sink: SmtpSink,
) -> None:
    incentive = gift_incentive(manager, email_body=BROKEN_BODY)
    service = RewardService(db.sessionmaker, providers=providers, smtp=smtp)
    submission = service.submit(request(incentive, "ana@example.org"), lease_owner="tests")
    assert submission.reward is not None
    reference = submission.reward.reference_id

    with pytest.raises(RewardFailed, match="email could not be written: template error"):
        asyncio.run(service.fulfil(submission.reward.id, owner="tests", submitted=submission))

    paid = reward_row(db, reference)
    # Paid (the gift code is taken and recorded), not emailed, and not retried blindly.
    assert paid.status == "ordered"
    assert paid.delivery is not None
    assert '"credentials"' in paid.delivery
    assert paid.next_attempt_at is None
    assert paid.lease_owner is None
    assert paid.last_error is not None
    assert "by zero" in paid.last_error
    assert "fix the incentive's email template, then resend" in paid.last_error
    assert transitions(db, reference)[-1][2] == paid.last_error
    assert smtp_sink.messages == []
    assert reward_emails(db, reference) == []
    assert Fulfiller(service).due() == []

    # Resending before the fix says what is wrong, and sends nothing.
    with pytest.raises(RewardFailed, match="template error"):
        asyncio.run(service.resend(reference, actor="ops"))
    assert smtp_sink.messages == []

    asyncio.run(
        manager.update(
            incentive.reference_id,
            IncentivePatch(email_body="Hi {{ first_name }}, your code is {{ code }}."),
            actor="ops",
        )
    )
    sent = asyncio.run(service.resend(reference, actor="ops"))
    assert (sent.reward.status, sent.first) == ("sent", True)
    assert [m["to"] for m in smtp_sink.messages] == [["ana@example.org"]]


def test_one_reward_that_cannot_be_emailed_does_not_stall_the_others(
    db: Db,
    manager: IncentiveManager,
    providers: ProviderContext,
    smtp: SmtpSettings,
    smtp_sink: SmtpSink,
) -> None:
    broken = gift_incentive(manager, email_body=BROKEN_BODY)
    working = gift_incentive(manager)
    service = RewardService(db.sessionmaker, providers=providers, smtp=smtp)
    # Approved, for the fulfiller to pay: the broken one first in its queue.
    first = service.submit(request(broken, "bo@example.org"))
    second = service.submit(request(working, "cy@example.org"))
    assert first.reward is not None
    assert second.reward is not None

    fulfiller = Fulfiller(service, batch=1)
    assert asyncio.run(fulfiller.drain()) == 2
    assert reward_row(db, first.reward.reference_id).status == "ordered"
    assert reward_row(db, second.reward.reference_id).status == "sent"
    assert [m["to"] for m in smtp_sink.messages] == [["cy@example.org"]]
    assert asyncio.run(fulfiller.drain()) == 0


def test_an_unexpected_error_moves_the_reward_back_instead_of_stalling_the_queue(
    db: Db,
    manager: IncentiveManager,
    providers: ProviderContext,
    smtp: SmtpSettings,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    incentive = gift_incentive(manager)
    service = RewardService(db.sessionmaker, providers=providers, smtp=smtp)
    unlucky = service.submit(request(incentive, "dee@example.org"))
    lucky = service.submit(request(incentive, "eve@example.org"))
    assert unlucky.reward is not None
    assert lucky.reward is not None
    fulfil = service.fulfil

    async def failing_for_one(reward_id: int, **kwargs: Any) -> Any:
        if reward_id == unlucky.reward.id:  # type: ignore[union-attr]
            raise RuntimeError("the provider's library broke")
        return await fulfil(reward_id, **kwargs)

    monkeypatch.setattr(service, "fulfil", failing_for_one)
    fulfiller = Fulfiller(service, batch=1)
    assert asyncio.run(fulfiller.drain()) == 2
    assert reward_row(db, lucky.reward.reference_id).status == "sent"
    stuck = reward_row(db, unlucky.reward.reference_id)
    assert stuck.status == "approved"
    assert stuck.last_error == "unexpected error: RuntimeError: the provider's library broke"
    assert stuck.next_attempt_at is not None
    # Not due again at once: the next drain has nothing to do.
    assert asyncio.run(fulfiller.drain()) == 0
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.getMessage() == f"reward {unlucky.reward.id}: fulfilling it failed"
    assert logged.exc_info is not None
