"""Random sequences of reward operations, checked after every step against what the lifecycle
promises.

A hypothesis state machine drives a gift-code incentive (a small pool, so codes run out) and a
manual one through submissions (new, repeated and respelled emails, repeated response ids and
request keys, bots), fulfilment, the reviewers' operations, payments by hand, resends, refused
emails, changed limits and amounts, and code imports. Whatever happened, the database must still
tell one consistent story: counters that match the rewards counted, no code given twice, one
email per reward and per resend, a history for every change.

The limits' promise, as checked here: taking a place never pushes a counter past its limit.
Lowering a limit below what is already committed keeps the rewards committed (nobody is
un-paid), so a counter may then stand above its limit, but it does not grow while it does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, update

from qualflow.incentives.emails import normalize_email
from qualflow.incentives.lifecycle import ALLOWED, TransitionError
from qualflow.incentives.manage import IncentiveError, IncentiveManager
from qualflow.incentives.models import GiftCode, Incentive, Reward, RewardTransition
from qualflow.incentives.schemas import IncentivePatch, IncentiveSpec
from qualflow.incentives.service import (
    ActionResult,
    Fulfiller,
    RewardFailed,
    RewardRetry,
    RewardService,
    Submission,
)
from qualflow.notify.email import message_id_for
from qualflow.notify.models import OutboxEmail
from qualflow.store.db import session_scope
from tests.incentives.support import Db, QuietSmtpSink, parsed
from tests.incentives.test_rewards import CLEAN, request

#: The statuses of a reward that holds a place in its incentive's limits.
COUNTING = frozenset({"approved", "ordered", "sent"})
BOT = {**CLEAN, "Q_RecaptchaScore": 0.1}
REVIEWER = "reviewer@example.org"
SENDER = "rewards@example.org"
#: What a rule may leave unchanged, as opposed to None (which clears a limit).
KEEP = "keep"

INCENTIVES = st.sampled_from(["gift", "manual"])
# Mostly none, sometimes one that another request used: a repeated response.
RESPONSES = st.none() | st.none() | st.integers(0, 5)
BOTS = st.sampled_from([False, False, False, True])

SPELLINGS = {
    "as typed": lambda address: address,
    "shouting": lambda address: address.upper(),
    "padded": lambda address: f"  {address} ",
}


@dataclass
class Books:
    """The database as one step left it, for one example's incentives."""

    incentives: dict[str, Incentive]
    rewards: dict[str, Reward]
    codes: list[GiftCode]
    history: dict[int, list[RewardTransition]]
    outbox: dict[str, OutboxEmail]

    def of(self, name: str) -> list[Reward]:
        incentive_id = self.incentives[name].id
        return [r for r in self.rewards.values() if r.incentive_id == incentive_id]

    def incentive_of(self, reward: Reward) -> Incentive:
        return next(i for i in self.incentives.values() if i.id == reward.incentive_id)

    def unclaimed_codes(self, incentive: Incentive) -> int:
        return sum(
            1
            for code in self.codes
            if code.reward_id is None
            and code.value_minor == incentive.amount_minor
            and code.currency == incentive.currency
        )


@dataclass
class Counters:
    """An incentive's limits and committed counters, followed through a bulk operation."""

    count: int
    minor: int
    max_rewards: int | None
    budget_minor: int | None

    @classmethod
    def of(cls, incentive: Incentive) -> Counters:
        return cls(
            incentive.committed_count,
            incentive.committed_minor,
            incentive.max_rewards,
            incentive.budget_minor,
        )

    def room_for(self, amount_minor: int) -> bool:
        if self.max_rewards is not None and self.count >= self.max_rewards:
            return False
        return self.budget_minor is None or self.minor + amount_minor <= self.budget_minor

    def take(self, amount_minor: int) -> None:
        self.count += 1
        self.minor += amount_minor

    def give_back(self, amount_minor: int) -> None:
        self.count -= 1
        self.minor -= amount_minor


class ErrorLog(logging.Handler):
    """Errors the fulfiller logs instead of raising (it must not stall on one reward)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def expect_message(exc: BaseException) -> None:
    assert str(exc).strip(), f"{type(exc).__name__} without a message"


# What a request is drawn from: both ways of paying take the same requests.
REQUEST_STRATEGIES = {
    "incentive": INCENTIVES,
    "person": st.integers(0, 5),
    "spelling": st.sampled_from(sorted(SPELLINGS)),
    "response": RESPONSES,
    "fresh_key": st.booleans(),
    "bot": BOTS,
}


class RewardLifecycle(RuleBasedStateMachine):
    def __init__(
        self, db: Db, manager: IncentiveManager, service: RewardService, sink: QuietSmtpSink
    ) -> None:
        super().__init__()
        self.db = db
        self.manager = manager
        self.service = service
        self.sink = sink
        sink.refuse_next.clear()
        # Every address of this example is at its own domain: the sink is shared by examples.
        self.domain = f"x{uuid.uuid4().hex[:10]}.example.org"
        self.incentives: dict[str, str] = {}
        self.pool_id = 0
        self.imported: list[str] = []
        #: Request keys as the service recorded them: (incentive, key) → (outcome, reward).
        self.requests: dict[tuple[str, str], tuple[str, str | None]] = {}
        self.previous: dict[str, Counters] = {}
        self.last_key = ""
        #: This example's rewards, in the order they were created.
        self.references: list[str] = []
        # The sink's messages are read once each: the examples share it, so it only grows.
        self.messages_read = 0
        self.message_ids: Counter[str] = Counter()
        self.errors = ErrorLog()
        logging.getLogger("qualflow.incentives.service").addHandler(self.errors)

    def teardown(self) -> None:
        logging.getLogger("qualflow.incentives.service").removeHandler(self.errors)
        self.sink.refuse_next.clear()
        # The examples share the database, and a fulfiller drains all of it: this example's
        # unfinished rewards must not be paid (and emailed) during the next one.
        if self.incentives:
            with session_scope(self.db.sessionmaker) as session:
                session.execute(
                    update(Reward)
                    .where(
                        Reward.incentive_id.in_([i.id for i in self.books().incentives.values()])
                    )
                    .values(next_attempt_at=None)
                )

    # -- setup -----------------------------------------------------------------------------

    @initialize(
        codes=st.integers(0, 4),
        gift_mode=st.sampled_from(["automatic", "automatic", "review_all"]),
        gift_max=st.none() | st.integers(1, 3),
        manual_mode=st.sampled_from(["automatic", "automatic", "review_all"]),
        manual_budget=st.none() | st.sampled_from([Decimal("25"), Decimal("60")]),
    )
    def create_incentives(
        self,
        codes: int,
        gift_mode: str,
        gift_max: int | None,
        manual_mode: str,
        manual_budget: Decimal | None,
    ) -> None:
        pool = self.manager.create_pool(f"pool-{self.domain}")
        self.pool_id = pool.id
        if codes:
            self.import_codes(codes, "10.00", again=False)
        gift = IncentiveSpec(
            name="Banking study", provider="gift_codes", gift_code_pool_id=pool.id,
            amount=Decimal("10.00"), currency="USD", reward_name="Gift card",
            approval_mode=gift_mode, max_rewards=gift_max,
        )  # fmt: skip
        manual = IncentiveSpec(
            name="Diary study", provider="manual", amount=Decimal("25"), currency="EUR",
            approval_mode=manual_mode, budget=manual_budget,
        )  # fmt: skip
        for name, spec in (("gift", gift), ("manual", manual)):
            created = asyncio.run(self.manager.create(spec, actor="tests"))
            self.incentives[name] = created.reference_id

    # -- reading the books -------------------------------------------------------------------

    def books(self) -> Books:
        with self.db.sessionmaker() as session:
            incentives = {
                name: get
                for name, reference in self.incentives.items()
                if (
                    get := session.scalar(
                        select(Incentive).where(Incentive.reference_id == reference)
                    )
                )
            }
            ids = [i.id for i in incentives.values()]
            rewards = {
                r.reference_id: r
                for r in session.scalars(select(Reward).where(Reward.incentive_id.in_(ids)))
            }
            codes = list(session.scalars(select(GiftCode).where(GiftCode.pool_id == self.pool_id)))
            history: dict[int, list[RewardTransition]] = {r.id: [] for r in rewards.values()}
            for row in session.scalars(
                select(RewardTransition)
                .where(RewardTransition.reward_id.in_(list(history)))
                .order_by(RewardTransition.id)
            ):
                history[row.reward_id].append(row)
            keys = [f"reward:{reference}" for reference in rewards]
            resends = [
                f"reward:{r.reference_id}:resend:{n}"
                for r in rewards.values()
                for n in range(1, r.resend_count + 2)
            ]
            outbox = {
                row.idempotency_key: row
                for row in session.scalars(
                    select(OutboxEmail).where(OutboxEmail.idempotency_key.in_(keys + resends))
                )
            }
            return Books(incentives, rewards, codes, history, outbox)

    def messages(self) -> Counter[str]:
        """Message-IDs of the messages the SMTP server accepted for this example."""
        received = self.sink.messages
        for message in received[self.messages_read :]:
            if all(to.lower().endswith("@" + self.domain) for to in message["to"]):
                self.message_ids[parsed(message)["Message-ID"]] += 1
        self.messages_read = len(received)
        return self.message_ids

    def sent_with(self, key: str) -> int:
        return self.messages()[message_id_for(key, SENDER)]

    # -- requests ----------------------------------------------------------------------------

    @rule(**REQUEST_STRATEGIES)
    def request_and_pay(
        self, incentive: str, person: int, spelling: str, response: int | None, fresh_key: bool,
        bot: bool,
    ) -> None:  # fmt: skip
        """A workflow step: the request, then paying at once under the lease it took."""
        self.submit(incentive, person, spelling, response, fresh_key, bot, pay_now=True)

    @rule(**REQUEST_STRATEGIES)
    def request_for_the_fulfiller(
        self, incentive: str, person: int, spelling: str, response: int | None, fresh_key: bool,
        bot: bool,
    ) -> None:  # fmt: skip
        """A platform API request: approved rewards wait for the background fulfiller."""
        self.submit(incentive, person, spelling, response, fresh_key, bot, pay_now=False)

    @rule(incentive=INCENTIVES, response=RESPONSES, address=st.sampled_from([None, "", "a@b"]))
    def request_anonymously(
        self, incentive: str, response: int | None, address: str | None
    ) -> None:
        response_id = None if response is None else f"R_{response}"
        recorded = self.requests.get((incentive, f"req:{response_id or address}"))
        submission = self.submit_request(incentive, address, response, fresh_key=False)
        if recorded is not None and recorded[0] != "rejected":
            # A retry of a request that had its email: answered with what that one did.
            outcome, reference = recorded
            assert submission.outcome == ("existing" if outcome == "created" else outcome)
            assert submission.reward is not None
            assert submission.reward.reference_id == reference
            return
        assert submission.outcome == "rejected"
        assert submission.reward is None

    def submit_request(
        self, incentive: str, email: str | None, response: int | None, *, fresh_key: bool,
        bot: bool = False, pay_now: bool = False,
    ) -> Submission:  # fmt: skip
        target = self.books().incentives[incentive]
        response_id = None if response is None else f"R_{response}"
        key = f"fresh:{uuid.uuid4().hex}" if fresh_key else f"req:{response_id or email}"
        submission = self.service.submit(
            request(target, email, response_id=response_id, values=BOT if bot else CLEAN, key=key),
            lease_owner="tests" if pay_now else None,
        )
        assert submission.message
        if normalize_email(email) is None:
            self.requests.setdefault((incentive, key), ("rejected", None))
        self.last_key = key
        return submission

    def submit(
        self,
        incentive: str,
        person: int,
        spelling: str,
        response: int | None,
        fresh_key: bool,
        bot: bool,
        *,
        pay_now: bool,
    ) -> None:
        before = self.books()
        email = SPELLINGS[spelling](f"person{person}@{self.domain}")
        response_id = None if response is None else f"R_{response}"
        refusing = bool(self.sink.refuse_next)
        submission = self.submit_request(
            incentive, email, response, fresh_key=fresh_key, bot=bot, pay_now=pay_now
        )
        key = self.last_key
        if pay_now:
            self.pay_submitted(submission)
        reference = submission.reward.reference_id if submission.reward else None

        normalized = normalize_email(email)
        recorded = self.requests.get((incentive, key))
        if recorded is not None and recorded[0] != "rejected":
            outcome, reward = recorded
            assert submission.outcome == ("existing" if outcome == "created" else outcome)
            assert reference == reward
            return
        earlier = {
            r.reference_id
            for r in before.of(incentive)
            if r.email_normalized == normalized
            or (response_id is not None and r.response_id == response_id)
        }
        if earlier:
            assert submission.outcome == "duplicate", submission.message
            assert reference in earlier
            assert submission.message == f"already rewarded as {reference}"
            self.requests[(incentive, key)] = ("duplicate", reference)
            return
        assert submission.outcome == "created", submission.message
        assert reference is not None
        self.requests[(incentive, key)] = ("created", reference)
        self.references.append(reference)
        self.check_decision(before, incentive, reference, bot=bot, paid=pay_now, refusing=refusing)

    def pay_submitted(self, submission: Submission) -> None:
        reward = submission.reward
        if reward is None or reward.status not in ("approved", "ordered"):
            return
        try:
            asyncio.run(self.service.fulfil(reward.id, owner="tests", submitted=submission))
        except (RewardRetry, RewardFailed) as exc:
            expect_message(exc)

    def check_decision(
        self,
        before: Books,
        incentive: str,
        reference: str,
        *,
        bot: bool,
        paid: bool,
        refusing: bool,
    ) -> None:
        """A new reward's fate, from the incentive as the request found it."""
        target = before.incentives[incentive]
        reward = self.books().rewards[reference]
        if bot or not target.active or target.approval_mode == "review_all":
            assert reward.status == "held"
            assert reward.reasons
        elif not Counters.of(target).room_for(target.amount_minor):
            assert reward.status == "held"
            assert any("limit reached" in r or "budget exhausted" in r for r in reward.reasons)
        elif not paid:
            assert reward.status == "approved"
        elif incentive == "manual":
            assert reward.status == "ordered"
        elif before.unclaimed_codes(target) == 0:
            assert reward.status == "held"
            assert any("out of codes" in r for r in reward.reasons)
        else:
            assert reward.status == ("ordered" if refusing else "sent")

    # -- fulfilment --------------------------------------------------------------------------

    @rule()
    def drain(self) -> None:
        asyncio.run(Fulfiller(self.service).drain())
        # Gift codes and manual rewards pay with database writes alone: nothing due is left,
        # but for an email the server refused.
        for reward in self.books().rewards.values():
            assert reward.status != "approved", (reward.reference_id, reward.last_error)
            if reward.status == "ordered" and (reward.provider != "manual" or reward.paid_at):
                assert reward.last_error is not None
                assert "email" in reward.last_error

    @precondition(lambda self: self.has_rewards)
    @rule(data=st.data())
    def fulfil(self, data: st.DataObject) -> None:
        (reference,) = self.pick(data, lambda r: r.status in ("approved", "ordered"), most=1)
        reward = self.books().rewards[reference]
        try:
            asyncio.run(self.service.fulfil(reward.id, owner="tests"))
        except (RewardRetry, RewardFailed) as exc:
            expect_message(exc)

    # -- reviewers ---------------------------------------------------------------------------

    @property
    def has_rewards(self) -> bool:
        return bool(self.references)

    def pick(
        self, data: st.DataObject, fitting: Callable[[Reward], bool], most: int = 3
    ) -> list[str]:
        """References of this example's rewards, mostly of ones the operation fits (else an
        operation that may succeed would rarely be tried on one)."""
        rewards = self.books().rewards
        known = self.references
        suitable = [r for r in known if fitting(rewards[r])]
        if suitable and data.draw(st.sampled_from([True, True, False]), label="fitting"):
            known = suitable
        return data.draw(
            st.lists(st.sampled_from(known), min_size=1, max_size=most), label="rewards"
        )

    @precondition(lambda self: self.has_rewards)
    @rule(data=st.data(), retyped=st.booleans())
    def release(self, data: st.DataObject, retyped: bool) -> None:
        self.review(self.pick(data, lambda r: r.status == "held"), "release", retyped)

    @precondition(lambda self: self.has_rewards)
    @rule(data=st.data(), retyped=st.booleans())
    def block(self, data: st.DataObject, retyped: bool) -> None:
        self.review(self.pick(data, lambda r: r.status == "held"), "block", retyped)

    @precondition(lambda self: self.has_rewards)
    @rule(data=st.data(), retyped=st.booleans())
    def cancel(self, data: st.DataObject, retyped: bool) -> None:
        references = self.pick(data, lambda r: r.status in ("held", "approved", "ordered"))
        self.review(references, "cancel", retyped)

    @precondition(lambda self: self.has_rewards)
    @rule(data=st.data(), retyped=st.booleans())
    def retry(self, data: st.DataObject, retyped: bool) -> None:
        self.review(self.pick(data, lambda r: r.status == "failed"), "retry", retyped)

    @precondition(lambda self: self.has_rewards)
    @rule(data=st.data(), retyped=st.booleans())
    def mark_paid(self, data: st.DataObject, retyped: bool) -> None:
        references = self.pick(data, lambda r: r.provider == "manual" and r.status == "ordered")
        self.review(references, "mark_paid", retyped)

    def review(self, references: list[str], action: str, retyped: bool) -> None:
        before = self.books()
        given = [f" {r.lower()} " if retyped else r for r in references]
        results = getattr(self.service, action)(given, actor=REVIEWER)
        assert [r.reference_id for r in results] == list(dict.fromkeys(references))
        counters = {name: Counters.of(i) for name, i in before.incentives.items()}
        for result in results:
            self.check_result(before, counters, action, result)

    def check_result(
        self, before: Books, counters: dict[str, Counters], action: str, result: ActionResult
    ) -> None:
        reward = before.rewards[result.reference_id]
        name = next(n for n, i in before.incentives.items() if i.id == reward.incentive_id)
        limits = counters[name]
        status = reward.status
        manual_unpaid = reward.provider == "manual" and status == "ordered" and not reward.paid_at
        target = {
            "release": "approved" if status == "held" else None,
            "retry": "approved" if status == "failed" else None,
            "block": "blocked" if status in ("pending", "held") else None,
            "cancel": (
                "cancelled"
                if status in ("pending", "held", "approved", "failed") or manual_unpaid
                else None
            ),
            "mark_paid": "ordered" if manual_unpaid else None,
        }[action]
        if action in ("release", "retry") and not limits.room_for(reward.amount_minor):
            target = None
        assert result.message.strip()
        if target is None:
            assert not result.ok, (action, status, result.message)
            assert result.status == status
            return
        assert result.ok, (action, status, result.message)
        assert result.status == target
        if target in COUNTING and not reward.counted:
            limits.take(reward.amount_minor)
        elif target not in COUNTING and reward.counted:
            limits.give_back(reward.amount_minor)

    @precondition(lambda self: self.has_rewards)
    @rule(
        data=st.data(),
        to=st.sampled_from(["own address", "new address", "own respelled", "not an address"]),
    )
    def resend(self, data: st.DataObject, to: str) -> None:
        (reference,) = self.pick(data, lambda r: r.status in ("sent", "ordered"), most=1)
        before = self.books().rewards[reference]
        new_email = {
            "own address": None,
            "new address": f"corrected@{self.domain}",
            "own respelled": before.email.upper(),
            "not an address": "nobody",
        }[to]
        refusing = bool(self.sink.refuse_next)
        paid_order = (
            before.status == "ordered"
            and before.delivery is not None
            and (before.provider != "manual" or before.paid_at is not None)
        )
        failure: Exception | None = None
        try:
            resent = asyncio.run(
                self.service.resend(reference, actor=REVIEWER, new_email=new_email)
            )
        except (TransitionError, RewardFailed, ValueError) as exc:
            failure = exc
        if failure is not None:
            expect_message(failure)
            fine = (
                to == "not an address"
                or refusing
                or not (before.status == "sent" or paid_order)
                or (
                    paid_order
                    and before.next_attempt_at is not None
                    and normalize_email(new_email or before.email) != before.email_normalized
                )
            )
            assert fine, f"resending a {before.status} reward failed: {failure}"
            return
        assert to != "not an address"
        assert before.status == "sent" or paid_order
        assert resent.reward.status == "sent"
        assert resent.first == (before.status != "sent")
        if before.status == "sent" or before.next_attempt_at is None:
            number = before.resend_count + 1
            assert self.sent_with(f"reward:{reference}:resend:{number}") == 1
        else:
            assert self.sent_with(f"reward:{reference}") == 1

    @precondition(lambda self: not self.sink.refuse_next)
    @rule(reply=st.sampled_from(["451 4.3.0 try again later", "550 5.1.1 no such mailbox"]))
    def refuse_next_email(self, reply: str) -> None:
        self.sink.refuse_next.append(reply)

    # -- managers ----------------------------------------------------------------------------

    @rule(
        incentive=st.sampled_from(["gift", "manual"]),
        max_rewards=st.just(KEEP) | st.none() | st.integers(1, 4),
        budget=st.just(KEEP) | st.none() | st.sampled_from(["5", "15", "25", "40", "60"]),
        amount=st.just(KEEP) | st.sampled_from(["10", "20", "25"]),
        approval_mode=st.just(KEEP) | st.sampled_from(["automatic", "review_all"]),
        active=st.just(KEEP) | st.booleans(),
    )
    def change_incentive(
        self,
        incentive: str,
        max_rewards: Any,
        budget: Any,
        amount: Any,
        approval_mode: Any,
        active: Any,
    ) -> None:
        current = self.books().incentives[incentive]
        changes: dict[str, Any] = {
            "max_rewards": max_rewards,
            "budget": Decimal(budget) if budget not in (KEEP, None) else budget,
            "amount": Decimal(amount) if amount != KEEP else amount,
            "approval_mode": approval_mode,
            "active": active,
        }
        patch = IncentivePatch(**{k: v for k, v in changes.items() if v != KEEP})
        new_amount = current.amount_minor if amount == KEEP else int(Decimal(amount) * 100)
        new_budget = (
            current.budget_minor if budget == KEEP else budget and int(Decimal(budget) * 100)
        )
        failure: IncentiveError | None = None
        warnings: list[str] = []
        try:
            _saved, warnings = asyncio.run(
                self.manager.update_with_warnings(current.reference_id, patch, actor="tests")
            )
        except IncentiveError as exc:
            failure = exc
        if failure is not None:
            expect_message(failure)
            assert new_budget is not None
            assert new_budget < new_amount, str(failure)
            return
        assert new_budget is None or new_budget >= new_amount
        # A limit set below what is committed is saved, saying so (nothing is taken back).
        count, minor = current.committed_count, current.committed_minor
        below = []
        if max_rewards not in (KEEP, None) and count > max_rewards:
            below.append(f"max rewards {max_rewards} is below the {count} rewards")
        if budget not in (KEEP, None) and new_budget is not None and minor > new_budget:
            below.append(f"budget {Decimal(new_budget) / 100:.2f} ")
        assert len(warnings) == len(below), (warnings, below)
        for warning, start in zip(warnings, below, strict=True):
            assert warning.startswith(start), (warning, start)

    @rule(count=st.integers(1, 3), value=st.sampled_from(["10.00", "20.00"]), again=st.booleans())
    def import_codes(self, count: int, value: str, again: bool) -> None:
        if again and self.imported:
            lines = self.imported[-count:]
            report = self.manager.import_codes(
                self.pool_id, "code,value,currency\n" + "\n".join(lines)
            )
            assert report.imported == 0
            assert report.duplicates == len(lines)
            return
        lines = [f"{self.domain}-{len(self.imported) + n:03d},{value},USD" for n in range(count)]
        report = self.manager.import_codes(self.pool_id, "code,value,currency\n" + "\n".join(lines))
        assert report.imported == count
        assert report.errors == []
        self.imported.extend(lines)

    # -- what must hold after every step -----------------------------------------------------

    @invariant()
    def the_books_tell_one_story(self) -> None:
        # One read of the database per step, checked every way (the steps are many).
        if not self.incentives:
            return
        books = self.books()
        self.check_counters(books)
        self.check_codes(books)
        self.check_emails(books)
        self.check_history(books)
        self.check_nothing_is_stuck(books)

    def check_counters(self, books: Books) -> None:
        for name, incentive in books.incentives.items():
            counted = [r for r in books.of(name) if r.counted]
            assert incentive.committed_count == len(counted), name
            assert incentive.committed_minor == sum(r.amount_minor for r in counted), name
            for reward in books.of(name):
                assert reward.counted == (reward.status in COUNTING), (
                    reward.reference_id, reward.status, reward.counted,
                )  # fmt: skip
            now = Counters.of(incentive)
            then = self.previous.get(name, now)
            if now.max_rewards is not None and now.count > now.max_rewards:
                assert now.count <= then.count, f"{name}: a reward counted past max_rewards"
            if now.budget_minor is not None and now.minor > now.budget_minor:
                assert now.minor <= then.minor, f"{name}: a reward counted past the budget"
            self.previous[name] = now
            emails = Counter(r.email_normalized for r in books.of(name))
            assert max(emails.values(), default=1) == 1
            responses = Counter(r.response_id for r in books.of(name) if r.response_id)
            assert max(responses.values(), default=1) == 1

    def check_codes(self, books: Books) -> None:
        by_id = {r.id: r for r in books.rewards.values()}
        claimed = Counter(c.reward_id for c in books.codes if c.reward_id is not None)
        assert max(claimed.values(), default=1) == 1
        for code in books.codes:
            if code.reward_id is None:
                continue
            reward = by_id[code.reward_id]
            assert reward.provider == "gift_codes"
            assert reward.status in ("ordered", "sent")
            assert code.value_minor == reward.amount_minor
            delivered = json.loads(reward.delivery or "{}")["credentials"][0]["value"]
            assert delivered == code.code
        for reward in books.rewards.values():
            if reward.provider == "gift_codes" and reward.status in ("ordered", "sent"):
                assert claimed[reward.id] == 1, reward.reference_id

    def check_emails(self, books: Books) -> None:
        messages = self.messages()
        expected = 0
        keys_by_id = {row.id: key for key, row in books.outbox.items()}
        for reward in books.rewards.values():
            keys = [f"reward:{reward.reference_id}"] + [
                f"reward:{reward.reference_id}:resend:{n}"
                for n in range(1, reward.resend_count + 2)
            ]
            # A sent reward names the email of its own that delivered it; no other does.
            delivered = keys_by_id.get(reward.email_outbox_id or 0)
            if reward.status == "sent":
                assert delivered in keys, (reward.reference_id, reward.email_outbox_id)
                assert books.outbox[delivered].status == "sent", reward.reference_id
            else:
                assert reward.email_outbox_id is None, reward.reference_id
            emailed = 0
            for key in keys:
                row = books.outbox.get(key)
                sent = row is not None and row.status == "sent"
                assert messages[message_id_for(key, SENDER)] == int(sent), key
                emailed += sent
            expected += emailed
            if reward.status == "sent":
                assert emailed >= 1, f"{reward.reference_id} is sent but nobody was emailed"
            else:
                assert emailed == 0, f"{reward.reference_id} was emailed but is {reward.status}"
        # Nothing else reached this example's respondents.
        assert sum(messages.values()) == expected

    def check_history(self, books: Books) -> None:
        for reward in books.rewards.values():
            steps = [(t.from_status, t.to_status) for t in books.history[reward.id]]
            assert steps[0] == (None, "pending"), (reward.reference_id, steps)
            for (_, reached), (start, end) in pairwise(steps):
                assert start == reached, (reward.reference_id, steps)
                assert start == end or end in ALLOWED[start], (reward.reference_id, steps)
            assert steps[-1][1] == reward.status, (reward.reference_id, steps)

    def check_nothing_is_stuck(self, books: Books) -> None:
        for reward in books.rewards.values():
            # Every operation finished: no lease outlives it.
            assert reward.lease_owner is None, reward.reference_id
            if reward.status == "approved":
                assert reward.next_attempt_at is not None, reward.reference_id
            if reward.status == "held":
                assert reward.reasons, reward.reference_id
        assert self.errors.records == [], [r.getMessage() for r in self.errors.records]


def test_random_reward_operations_keep_the_books_straight(
    db: Db, manager: IncentiveManager, service: RewardService, smtp_sink: QuietSmtpSink
) -> None:
    examples = 30 if db.is_postgres else 50
    run_state_machine_as_test(
        lambda: RewardLifecycle(db, manager, service, smtp_sink),
        settings=settings(
            max_examples=examples,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
