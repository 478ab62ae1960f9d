"""The reward lifecycle through RewardService with the gift-code and manual providers:
duplicates, fraud, limits, review, emails received by a real SMTP server."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from qualflow.incentives.emails import NO_EMAIL_MESSAGE
from qualflow.incentives.manage import IncentiveError, IncentiveManager
from qualflow.incentives.models import GiftCode, Incentive, RewardRequest
from qualflow.incentives.schemas import FraudRules, IncentivePatch, IncentiveSpec
from qualflow.incentives.service import (
    Fulfiller,
    RewardFailed,
    RewardRequestIn,
    RewardService,
    Submission,
)
from qualflow.store.base import utcnow
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import Db, body_text, parsed, reward_row, transitions

CLEAN = {
    "Q_RecaptchaScore": 0.9,
    "Q_RelevantIDDuplicate": "false",
    "Q_RelevantIDDuplicateScore": 3,
    "Q_RelevantIDFraudScore": 5,
    "ipAddress": "203.0.113.7",
}


def codes_csv(count: int, value: str = "10.00", currency: str = "USD") -> str:
    lines = ["code,value,currency,expiry"]
    lines += [f"GIFT-{n:04d}-ABCD,{value},{currency},2099-12-31" for n in range(count)]
    return "\n".join(lines) + "\n"


def gift_incentive(manager: IncentiveManager, codes: int = 5, **overrides: Any) -> Incentive:
    pool = manager.create_pool(f"pool-{utcnow().timestamp()}")
    report = manager.import_codes(pool.id, codes_csv(codes))
    assert report.imported == codes
    spec = IncentiveSpec(
        name="Banking study",
        provider="gift_codes",
        gift_code_pool_id=pool.id,
        amount=Decimal("10.00"),
        currency="USD",
        reward_name="Gift card",
        approval_mode=overrides.pop("approval_mode", "automatic"),
        redemption_instructions="Redeem at shop.example.org/redeem.",
        **overrides,
    )
    return asyncio.run(manager.create(spec, actor="tests"))


def request(
    incentive: Incentive,
    email: str | None,
    *,
    response_id: str | None = None,
    values: dict[str, Any] | None = None,
    key: str | None = None,
    first_name: str | None = "Ana",
    participant: str | None = None,
) -> RewardRequestIn:
    values = dict(CLEAN) if values is None else values
    return RewardRequestIn(
        incentive_reference=incentive.reference_id,
        email=email,
        first_name=first_name,
        source="automation",
        requested_by="tests",
        request_key=key or f"req:{response_id or email}",
        response_id=response_id,
        survey_id="SV_test",
        participant_id=participant,
        ip_address=str(values.get("ipAddress") or "") or None,
        response_values=values,
    )


def submit_and_pay(service: RewardService, req: RewardRequestIn) -> Submission:
    submission = service.submit(req, lease_owner="tests")
    if submission.reward is not None and submission.reward.status in ("approved", "ordered"):
        asyncio.run(service.fulfil(submission.reward.id, owner="tests", submitted=submission))
    return submission


def paid_reference(service: RewardService, incentive: Incentive, email: str) -> str:
    """The reference of a reward created for ``email`` and taken as far as ``service`` can."""
    submission = submit_and_pay(service, request(incentive, email))
    assert submission.reward is not None
    return submission.reward.reference_id


def manual_incentive(manager: IncentiveManager) -> Incentive:
    spec = IncentiveSpec(
        name="Diary study", provider="manual", amount=Decimal("25"), currency="EUR",
        approval_mode="automatic",
    )  # fmt: skip
    return asyncio.run(manager.create(spec, actor="tests"))


def test_a_gift_code_reward_is_claimed_and_emailed_with_the_template(
    db: Db, manager: IncentiveManager, service: RewardService, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(manager)
    submission = submit_and_pay(
        service, request(incentive, " Ana.Lopez@Example.org ", response_id="R_1")
    )

    assert submission.outcome == "created"
    reward = reward_row(db, submission.reward.reference_id)  # type: ignore[union-attr]
    assert reward.status == "sent"
    assert reward.email_normalized == "ana.lopez@example.org"
    assert [t[1] for t in transitions(db, reward.reference_id)] == [
        "pending",
        "approved",
        "ordered",
        "sent",
    ]
    with db.sessionmaker() as session:
        code = session.scalar(select(GiftCode).where(GiftCode.reward_id == reward.id))
        assert code is not None
    assert len(smtp_sink.messages) == 1
    message = smtp_sink.messages[0]
    assert message["to"] == ["Ana.Lopez@Example.org"]  # as given, trimmed
    assert parsed(message)["Subject"] == "Your reward: 10.00 USD Gift card"
    text = body_text(message)
    assert "Hi Ana," in text
    assert code.code in text
    assert "Redeem at shop.example.org/redeem." in text
    assert reward.reference_id in text
    # The code is a secret: the reward keeps only a masked hint.
    assert code.code not in (reward.delivery_hint or "")


def test_no_email_is_rejected_with_the_stated_message(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    incentive = gift_incentive(manager)
    for value in (None, "", "not-an-email", "a@b"):
        submission = service.submit(request(incentive, value, key=f"k-{value}"))
        assert submission.outcome == "rejected"
        assert submission.message == NO_EMAIL_MESSAGE
    with db.sessionmaker() as session:
        outcomes = session.scalars(select(RewardRequest.outcome)).all()
    assert outcomes == ["rejected"] * 4  # recorded, never lost


def test_duplicate_email_and_duplicate_response_are_skipped_naming_the_reward(
    manager: IncentiveManager, service: RewardService, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(manager)
    first = submit_and_pay(service, request(incentive, "ana@example.org", response_id="R_1"))
    reference = first.reward.reference_id  # type: ignore[union-attr]

    same_email = service.submit(request(incentive, "ANA@example.org", response_id="R_2"))
    same_response = service.submit(
        request(incentive, "other@example.org", response_id="R_1", key="another delivery")
    )
    assert same_email.outcome == same_response.outcome == "duplicate"
    assert same_email.message == same_response.message == f"already rewarded as {reference}"
    # The same request again (a retried step) resumes its own reward instead.
    again = service.submit(request(incentive, "ana@example.org", response_id="R_1"))
    assert again.outcome == "existing"
    assert again.reward.reference_id == reference  # type: ignore[union-attr]
    assert len(smtp_sink.messages) == 1


def test_bots_are_held_with_every_reason(
    db: Db, manager: IncentiveManager, service: RewardService, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(manager)
    bot = {
        "Q_RecaptchaScore": 0.1,
        "Q_RelevantIDDuplicate": "true",
        "Q_RelevantIDDuplicateScore": 90,
        "Q_RelevantIDFraudScore": 80,
        "Q_BallotBoxStuffing": "true",
    }
    submission = service.submit(request(incentive, "bot@example.org", values=bot))
    reward = submission.reward
    assert reward is not None
    assert reward.status == "held"
    reasons = " | ".join(reward.reasons)
    assert "Q_RecaptchaScore 0.1 is below 0.5" in reasons
    assert "Q_RelevantIDDuplicate is true" in reasons
    assert "Q_RelevantIDFraudScore 80 is at or above 30" in reasons
    assert "Q_BallotBoxStuffing" in reasons
    missing = service.submit(request(incentive, "m@example.org", values={}, key="m"))
    assert missing.reward is not None
    assert missing.reward.status == "held"
    assert "missing from the response" in missing.reward.reasons[0]
    assert smtp_sink.messages == []
    with db.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(GiftCode).where(
            GiftCode.reward_id.is_not(None))) == 0  # fmt: skip


def test_rules_can_be_switched_off_and_retuned(
    manager: IncentiveManager, service: RewardService
) -> None:
    rules = FraudRules.model_validate(
        {
            "recaptcha": {"enabled": True, "threshold": 0.2},
            "relevant_id_duplicate": {"enabled": False, "threshold": 75},
            "relevant_id_fraud": {"enabled": False, "threshold": 30},
            "hold_when_fields_missing": False,
        }
    )
    incentive = gift_incentive(manager, fraud_rules=rules)
    values = {"Q_RecaptchaScore": 0.3, "Q_RelevantIDFraudScore": 99}
    submission = submit_and_pay(service, request(incentive, "x@example.org", values=values))
    assert submission.reward is not None
    assert reward_status(service, submission) == "sent"


def reward_status(service: RewardService, submission: Submission) -> str:
    from qualflow.incentives.service import get_reward

    assert submission.reward is not None
    with service.factory() as session:
        return get_reward(session, submission.reward.reference_id).status


def test_cross_request_signals_hold_in_review_suspicious_mode_only(
    manager: IncentiveManager, service: RewardService
) -> None:
    suspicious = gift_incentive(manager, approval_mode="review_suspicious")
    automatic = gift_incentive(manager, approval_mode="automatic")
    for n in range(4):
        values = {**CLEAN, "ipAddress": "198.51.100.9"}
        service.submit(request(suspicious, f"p{n}@example.org", values=values, key=f"s{n}"))
    held = service.submit(
        request(suspicious, "p9@example.org", values={**CLEAN, "ipAddress": "198.51.100.9"})
    )
    assert held.reward is not None
    assert held.reward.status == "held"
    assert any("came from IP address 198.51.100.9" in r for r in held.reward.reasons)
    # Automatic mode notes the same signal as a warning and pays.
    paid = service.submit(
        request(automatic, "p10@example.org", values={**CLEAN, "ipAddress": "198.51.100.9"})
    )
    assert paid.reward is not None
    assert paid.reward.status == "approved"
    assert any("198.51.100.9" in w for w in paid.reward.warnings)
    # One email across many participant ids.
    for n in range(4):
        service.submit(
            request(suspicious, "shared@example.org", participant=f"P{n}", key=f"sh{n}",
                    values={**CLEAN, "ipAddress": f"192.0.2.{n}"}, response_id=f"R_sh{n}")
        )  # fmt: skip
    other = gift_incentive(manager, approval_mode="review_suspicious")
    linked = service.submit(
        request(
            other,
            "shared@example.org",
            participant="P9",
            values={**CLEAN, "ipAddress": "192.0.2.99"},
        )
    )
    assert linked.reward is not None
    assert linked.reward.status == "held"
    assert any("different participant ids" in r for r in linked.reward.reasons)


def test_review_all_holds_everything_and_release_pays(
    db: Db, manager: IncentiveManager, service: RewardService, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(manager, approval_mode="review_all")
    submission = service.submit(request(incentive, "r@example.org"))
    assert submission.reward is not None
    assert submission.reward.status == "held"
    assert submission.reward.reasons == ["this incentive reviews every reward before paying it"]

    results = service.release(
        [submission.reward.reference_id.lower()], actor="reviewer@example.org"
    )
    assert results[0].ok
    assert results[0].status == "approved"
    assert asyncio.run(Fulfiller(service).drain()) == 1
    reward = reward_row(db, submission.reward.reference_id)
    assert reward.status == "sent"
    assert ("held", "approved", "released by reviewer@example.org") in transitions(
        db, reward.reference_id
    )
    assert len(smtp_sink.messages) == 1
    again = service.release([reward.reference_id], actor="reviewer@example.org")
    assert not again[0].ok
    assert "only held rewards can be released" in again[0].message


def test_limits_hold_with_the_reason_and_release_respects_them(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    incentive = gift_incentive(manager, max_rewards=2)
    paid = [submit_and_pay(service, request(incentive, f"l{n}@example.org")) for n in range(2)]
    assert all(reward_status(service, s) == "sent" for s in paid)
    over = service.submit(request(incentive, "l3@example.org"))
    assert over.reward is not None
    assert over.reward.status == "held"
    assert over.reward.reasons == ["limit reached: 2 of 2 rewards already committed"]
    refused = service.release([over.reward.reference_id], actor="r")
    assert not refused[0].ok
    assert "limit reached" in refused[0].message
    # Blocking a counted reward is impossible (sent), but raising the limit lets it through.
    asyncio.run(manager.update(incentive.reference_id, IncentivePatch(max_rewards=3), actor="t"))
    assert service.release([over.reward.reference_id], actor="r")[0].ok

    budget = gift_incentive(manager, budget=Decimal("15.00"))
    submit_and_pay(service, request(budget, "b1@example.org"))
    second = service.submit(request(budget, "b2@example.org"))
    assert second.reward is not None
    assert second.reward.status == "held"
    assert second.reward.reasons[0].startswith("budget exhausted: 10.00 USD of 15.00 USD")


def test_dates_and_pause_hold(manager: IncentiveManager, service: RewardService) -> None:
    closed = gift_incentive(
        manager,
        opens_at=utcnow() - timedelta(days=2),
        closes_at=utcnow() - timedelta(days=1),
    )
    late = service.submit(request(closed, "late@example.org"))
    assert late.reward is not None
    assert late.reward.status == "held"
    assert "closed at" in late.reward.reasons[0]
    paused = gift_incentive(manager, active=False)
    held = service.submit(request(paused, "p@example.org"))
    assert held.reward is not None
    assert "is paused" in held.reward.reasons[0]


def test_out_of_codes_holds_and_importing_more_lets_a_release_through(
    db: Db, manager: IncentiveManager, service: RewardService, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(manager, codes=1)
    submit_and_pay(service, request(incentive, "first@example.org"))
    second = submit_and_pay(service, request(incentive, "second@example.org"))
    reward = reward_row(db, second.reward.reference_id)  # type: ignore[union-attr]
    assert reward.status == "held"
    assert reward.reasons[0].startswith("out of codes: pool")
    health = asyncio.run(manager.health(manager.get(incentive.reference_id)))
    assert health.stock == 0
    assert not health.ok
    assert any(w.startswith("out of codes") for w in health.warnings)
    # Its place in the limits was given back.
    assert manager.get(incentive.reference_id).committed_count == 1

    assert incentive.gift_code_pool_id is not None
    manager.import_codes(incentive.gift_code_pool_id, "code,value,currency\nNEW-CODE-1,10,USD\n")
    assert service.release([reward.reference_id], actor="r")[0].ok
    asyncio.run(Fulfiller(service).drain())
    assert reward_row(db, reward.reference_id).status == "sent"
    assert "NEW-CODE-1" in body_text(smtp_sink.messages[-1])


def test_low_stock_warning(manager: IncentiveManager) -> None:
    incentive = gift_incentive(manager, codes=3, low_stock_threshold=5)
    health = asyncio.run(manager.health(incentive))
    assert health.ok
    assert health.stock == 3
    assert any(w.startswith("low stock: only 3") for w in health.warnings)


def test_csv_import_reports_bad_lines_and_skips_duplicates(manager: IncentiveManager) -> None:
    pool = manager.create_pool("imports")
    report = manager.import_codes(
        pool.id,
        "code,value,currency,expiry\n"
        "A-1,10,USD,\n"
        "A-1,10,USD,\n"
        ",10,USD,\n"
        "B-2,ten,USD,\n"
        "C-3,10,US,\n"
        "D-4,10.001,USD,\n"
        "E-5,5,EUR,2030-02-30\n"
        "F-6,5,EUR,2030-01-31\n"
        "G-7,5,EUR,2020-01-31\n",
    )
    assert report.imported == 2
    assert report.duplicates == 1
    assert [e.split(":")[0] for e in report.errors] == [
        "line 4",
        "line 5",
        "line 6",
        "line 7",
        "line 8",
        "line 10",
    ]
    assert report.errors[-1] == "line 10: the code expired on 2020-01-31"
    with pytest.raises(IncentiveError, match="missing: currency"):
        manager.import_codes(pool.id, "code,value\nX,1\n")
    stock = manager.pool_stock(pool.id)
    assert {(e["value"], e["currency"], e["unused"]) for e in stock} == {
        ("10.00", "USD", 1),
        ("5.00", "EUR", 1),
    }


def test_manual_rewards_wait_for_payment_then_are_emailed(
    db: Db, manager: IncentiveManager, service: RewardService, smtp_sink: SmtpSink
) -> None:
    spec = IncentiveSpec(
        name="Interview thank-you",
        provider="manual",
        amount=Decimal("50"),
        currency="EUR",
        reward_name="bank transfer",
        approval_mode="automatic",
    )
    incentive = asyncio.run(manager.create(spec, actor="t"))
    submission = submit_and_pay(service, request(incentive, "m@example.org"))
    reference = submission.reward.reference_id  # type: ignore[union-attr]
    assert reward_row(db, reference).status == "ordered"
    assert smtp_sink.messages == []
    assert asyncio.run(Fulfiller(service).drain()) == 0  # nothing to do until paid

    result = service.mark_paid([reference], actor="finance@example.org")
    assert result[0].ok
    asyncio.run(Fulfiller(service).drain())
    reward = reward_row(db, reference)
    assert reward.status == "sent"
    assert reward.paid_at is not None
    assert "50.00 EUR bank transfer" in body_text(smtp_sink.messages[0])
    assert not service.mark_paid([reference], actor="x")[0].ok


def test_block_cancel_retry_and_resend(
    db: Db, manager: IncentiveManager, service: RewardService, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(manager, approval_mode="review_all")
    a = service.submit(request(incentive, "a@example.org")).reward
    b = service.submit(request(incentive, "b@example.org")).reward
    assert a is not None
    assert b is not None
    blocked = service.block(
        [a.reference_id, b.reference_id, "RW-NOPE2345"], actor="r", reason="bots"
    )
    assert [r.ok for r in blocked] == [True, True, False]
    assert blocked[2].message == "reward RW-NOPE2345 does not exist"
    assert reward_row(db, a.reference_id).status == "blocked"
    assert not service.release([a.reference_id], actor="r")[0].ok  # blocked is final

    c = service.submit(request(incentive, "c@example.org")).reward
    assert c is not None
    assert service.cancel([c.reference_id], actor="r")[0].ok
    assert reward_row(db, c.reference_id).status == "cancelled"

    d = service.submit(request(incentive, "d@example.org")).reward
    assert d is not None
    service.release([d.reference_id], actor="r")
    asyncio.run(Fulfiller(service).drain())
    sent = asyncio.run(service.resend(d.reference_id, actor="r", new_email="d2@example.org"))
    assert (sent.reward.resend_count, sent.first) == (1, False)
    assert smtp_sink.messages[-1]["to"] == ["d2@example.org"]
    assert len(smtp_sink.messages) == 2
    assert any("email resent to d2@example.org" in t[2] for t in transitions(db, d.reference_id))
    with pytest.raises(ValueError, match="not an email"):
        asyncio.run(service.resend(d.reference_id, actor="r", new_email="nope"))
    # A resend that could not be sent is not in the history as resent.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    assert service.smtp is not None
    unreachable = replace(service.smtp, port=closed_port, timeout=2.0)
    broken = RewardService(service.factory, providers=service.providers, smtp=unreachable)
    with pytest.raises(RewardFailed, match="resending"):
        asyncio.run(broken.resend(d.reference_id, actor="r", new_email="d3@example.org"))
    assert not any("d3@example.org" in t[2] for t in transitions(db, d.reference_id))
    assert len(smtp_sink.messages) == 2


def test_concurrent_claims_never_share_a_code(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    incentive = gift_incentive(manager, codes=30)
    rewards = [service.submit(request(incentive, f"c{n}@example.org")).reward for n in range(40)]
    errors: list[BaseException] = []

    def worker(chunk: list[Any]) -> None:
        async def run() -> None:
            for reward in chunk:
                await service.fulfil(reward.id, owner=f"w-{threading.get_ident()}")

        try:
            asyncio.run(run())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    # Every worker tries every reward: claims race on the same rows and the same codes.
    threads = [threading.Thread(target=worker, args=(rewards[n::2] + rewards,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.sessionmaker() as session:
        claimed = session.scalars(
            select(GiftCode.reward_id).where(GiftCode.reward_id.is_not(None))
        ).all()
    assert len(claimed) == len(set(claimed)) == 30
    statuses = [reward_row(db, r.reference_id).status for r in rewards]  # type: ignore[union-attr]
    assert statuses.count("sent") == 30
    assert statuses.count("held") == 10


@pytest.mark.parametrize("max_rewards", [None, 10])
def test_rewards_paid_at_submission_race_for_codes_and_count_exactly(
    db: Db, manager: IncentiveManager, service: RewardService, max_rewards: int | None
) -> None:
    """The hot path claims the code in the reward's creation transaction: concurrent
    submissions never share a code, those left without one are held, and the limits count
    exactly the rewards that were paid (reserved last without limits, first with them)."""
    incentive = gift_incentive(manager, codes=6, max_rewards=max_rewards)
    outcomes: list[Submission] = []
    errors: list[BaseException] = []

    def submit(chunk: range) -> None:
        try:
            for n in chunk:
                req = request(incentive, f"s{n}@example.org", response_id=f"R_{n}")
                outcomes.append(service.submit(req, lease_owner=f"owner-{n}"))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(range(n, 8, 4),)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    statuses = sorted(s.reward.status for s in outcomes if s.reward is not None)
    assert statuses == ["held"] * 2 + ["ordered"] * 6
    held = [s.reward for s in outcomes if s.reward is not None and s.reward.status == "held"]
    assert all(r.reasons[0].startswith("out of codes") for r in held)
    with db.sessionmaker() as session:
        claimed = session.scalars(
            select(GiftCode.reward_id).where(GiftCode.reward_id.is_not(None))
        ).all()
    assert len(claimed) == len(set(claimed)) == 6
    assert manager.get(incentive.reference_id).committed_count == 6


def test_a_place_the_limits_refuse_at_the_end_leaves_nothing_behind(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    """The place against the limits is taken last (with the COMMIT on PostgreSQL): a refusal
    rolls the whole attempt back (its code claim included) and the reward is decided again."""
    incentive = gift_incentive(manager, codes=3, max_rewards=1)
    assert reward_status(service, submit_and_pay(service, request(incentive, "a@example.org"))) == (
        "sent"
    )
    over = service.submit(request(incentive, "b@example.org"), lease_owner="tests")
    assert over.reward is not None
    assert over.reward.status == "held"
    assert over.reward.reasons == ["limit reached: 1 of 1 rewards already committed"]
    assert over.outbox is None
    assert transitions(db, over.reward.reference_id) == [
        (None, "pending", "requested by an automation run"),
        ("pending", "held", "limit reached: 1 of 1 rewards already committed"),
    ]
    with db.sessionmaker() as session:
        claimed = session.scalar(
            select(func.count()).select_from(GiftCode).where(GiftCode.reward_id.is_not(None))
        )
        outcomes = session.scalars(select(RewardRequest.outcome)).all()
    assert claimed == 1
    assert outcomes == ["created", "created"]
    assert manager.get(incentive.reference_id).committed_count == 1


def test_cross_request_counts_include_the_request_once(
    manager: IncentiveManager, service: RewardService
) -> None:
    """The counts are taken before the request is recorded: its own participant id and email
    count once, whether or not earlier requests had them."""
    rules = FraudRules.model_validate(
        {
            "shared_email": {"enabled": True, "threshold": 1},
            "shared_ip": {"enabled": True, "threshold": 1},
        }
    )

    def submit(email: str, participant: str) -> Submission:
        incentive = gift_incentive(manager, approval_mode="review_suspicious", fraud_rules=rules)
        values = {**CLEAN, "ipAddress": "198.51.100.20"}
        return service.submit(request(incentive, email, participant=participant, values=values))

    first = submit("e@example.org", "P1")
    same_again = submit("e@example.org", "P1")  # same email, participant and IP: still one each
    assert first.reward is not None
    assert same_again.reward is not None
    assert first.reward.status == same_again.reward.status == "approved"
    second_participant = submit("e@example.org", "P2")
    assert second_participant.reward is not None
    assert second_participant.reward.reasons == [
        "suspicious: e@example.org was used with 2 different participant ids (more than 1)"
    ]
    second_email = submit("f@example.org", "P3")
    assert second_email.reward is not None
    assert second_email.reward.reasons == [
        "suspicious: 2 different emails came from IP address 198.51.100.20 (more than 1)"
    ]


def test_a_reward_paid_at_submission_takes_two_transactions_of_few_statements(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    """The hot path's budget: created, paid and queued in one transaction, recorded sent in a
    second one (on PostgreSQL the place against the limits rides with the first COMMIT, and
    the second is one pipelined round trip)."""
    from sqlalchemy import event

    incentive = gift_incentive(manager)
    statements: list[str] = []
    commits: list[int] = []

    def statement(*args: Any) -> None:
        statements.append(args[2])

    def commit(_connection: Any) -> None:
        commits.append(1)

    event.listen(db.engine, "before_cursor_execute", statement)
    event.listen(db.engine, "commit", commit)
    try:
        paid = submit_and_pay(service, request(incentive, "hot@example.org", response_id="R_h"))
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
        event.remove(db.engine, "commit", commit)
    assert reward_status(service, paid) == "sent"
    # On PostgreSQL the second one is a pipeline run as one implicit transaction (no COMMIT).
    assert len(commits) == (2 if db.url.startswith("sqlite") else 1)
    # read, reward, request, code, ordered, outbox, transitions, (place); outbox sent, sent,
    # transition
    assert len(statements) <= 11, statements


def test_a_reward_recorded_sent_twice_has_one_transition(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    """Two attempts of one claim recording the email sent: the second finds it done."""
    from qualflow.incentives.models import Reward

    incentive = gift_incentive(manager)
    submission = service.submit(request(incentive, "twice@example.org"), lease_owner="tests")
    reward, outbox = submission.reward, submission.outbox
    assert reward is not None
    assert outbox is not None
    assert reward.status == "ordered"
    stale = Reward(**{c.key: getattr(reward, c.key) for c in Reward.__table__.columns})
    assert service._record_sent(reward, outbox.id, "tests").status == "sent"
    assert service._record_sent(stale, outbox.id, "tests").status == "sent"
    assert [t[:2] for t in transitions(db, reward.reference_id)] == [
        (None, "pending"),
        ("pending", "approved"),
        ("approved", "ordered"),
        ("ordered", "sent"),
    ]
