"""Rewards from request to inbox: one lifecycle for automations, the platform API and reviewers.

:meth:`RewardService.submit` records a request and, in the same transaction, creates the reward
(or finds why it must not: no email, a duplicate) and decides its fate: held for review with the
reasons, or approved with its place counted against the incentive's limits.
:meth:`RewardService.fulfil` pays an approved reward through its provider and emails it.

Fulfilment is at-least-once and therefore idempotent: a reward is fulfilled under a lease
(``lease_owner``/``lease_until``), each provider keys its side effect on the reward, and the
email is keyed in the outbox. A process dying mid-way leaves a lease that expires; whoever
claims the reward next (the same run recovered, or the :class:`Fulfiller`) resumes where it
stopped.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, Engine, Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from qualflow.incentives.delivery import (
    EmailTemplate,
    TemplateRenderError,
    record_outbox_failure,
    render_email,
    send_email,
    template_namespace,
)
from qualflow.incentives.emails import NO_EMAIL_MESSAGE, normalize_email
from qualflow.incentives.fraud import count_findings, pending_request_counts, response_findings
from qualflow.incentives.ids import (
    INCENTIVE_ID_PATTERN,
    new_reward_reference,
    normalize_reference,
)
from qualflow.incentives.lifecycle import (
    SYSTEM,
    Db,
    Deferred,
    TransitionError,
    check_move,
    move,
    reserve,
    reserve_and_commit,
    transition,
    unreserve,
    write_transitions,
)
from qualflow.incentives.models import (
    Incentive,
    Reward,
    RewardRequest,
    RewardTransition,
)
from qualflow.incentives.money import format_money
from qualflow.incentives.providers import (
    Delivery,
    OrderRequest,
    ProviderContext,
    ProviderError,
    ProviderHold,
    RewardProvider,
    provider_named,
)
from qualflow.incentives.providers.tango import external_ref_id
from qualflow.incentives.schemas import FraudRules
from qualflow.notify.email import (
    Email,
    EmailError,
    SmtpSettings,
    in_smtp_thread,
    outbox_values,
    send_blocking,
)
from qualflow.notify.models import OutboxEmail
from qualflow.store.base import utcnow
from qualflow.store.db import autocommit, session_scope

log = logging.getLogger(__name__)

RULES_TTL = 5.0
_SQLITE_WRITES = threading.Lock()
T = TypeVar("T")

# Reward work is short blocking database calls, kept off the loop's default pool (the
# engine's). Few threads: dozens of them (one per reward in flight) handed the GIL to each
# other more than they hid waits (see EngineConfig.executor_threads). Sending the email is
# the SMTP threads' work (notify.email.in_smtp_thread).
_EXECUTOR = ThreadPoolExecutor(max_workers=8, thread_name_prefix="qualflow-rewards")


async def in_db_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking database call on the rewards' thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, functools.partial(function, *args, **kwargs))


Outcome = Literal["created", "existing", "duplicate", "rejected"]

EMAIL_NOT_CONFIGURED = "email is not configured (set QUALFLOW_SMTP_HOST)"
#: A paid reward's ``last_error`` while its process has no email settings. A fulfiller with
#: them finds such rewards by it and sends them at once, not after the backoff.
EMAIL_AWAITS_SETTINGS = (
    "paid, but its email waits for email settings (set QUALFLOW_SMTP_HOST); it goes out "
    "automatically once qualflow runs with them"
)


class IncentiveNotFound(LookupError):
    """No incentive has this reference id."""


class RewardNotFound(LookupError):
    """No reward has this reference id."""


class RewardRetry(Exception):
    """Fulfilment hit a transient problem; the same attempt may succeed later."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _LimitsChanged(Exception):
    """The limits refused a reward's place taken last (e.g. a limit was set meanwhile)."""


class RewardFailed(Exception):
    """Fulfilment failed for good (the reward is ``failed``, or its email was refused)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class RewardRequestIn:
    """A request for a reward, from an automation run or a platform API call."""

    incentive_reference: str
    email: str | None
    source: Literal["automation", "api", "manual"]
    requested_by: str
    #: Stable per request, so retries of the same request resume instead of duplicating.
    request_key: str
    first_name: str | None = None
    response_id: str | None = None
    survey_id: str | None = None
    participant_id: str | None = None
    ip_address: str | None = None
    run_id: str | None = None
    #: The values the fraud rules read: the response's, or the fields of the platform request
    #: or JSON event (``values_origin``); None when nothing could carry them (checks skipped).
    response_values: dict[str, Any] | None = None
    values_origin: Literal["response", "request", "event"] = "response"


@dataclass
class Submission:
    outcome: Outcome
    message: str
    reward: Reward | None = None
    #: Set with a newly created reward (saves the fulfilment a read).
    incentive: Incentive | None = None
    #: The reward email queued in the same transaction (a reward ordered at submission).
    outbox: OutboxEmail | None = None


@dataclass
class Resent:
    """What :meth:`RewardService.resend` did."""

    #: The reward as the resend left it (``sent``).
    reward: Reward
    #: Whether the email was the reward's first to reach the respondent (the first one waited
    #: for a worker, or the mail server refused it), rather than a copy of one they had.
    first: bool


@dataclass
class ActionResult:
    """What one reward-changing operation did, per reward (bulk operations return many)."""

    reference_id: str
    ok: bool
    status: str
    message: str = ""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _fmt(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


_INCENTIVE_BY_REFERENCE = select(Incentive).where(Incentive.reference_id == bindparam("ref"))
_OUTBOX: Table = OutboxEmail.__table__  # type: ignore[assignment]
_OUTBOX_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("o_id"))
    .values(
        status="sent", sent_at=bindparam("o_now"), last_error=None,
        attempts=_OUTBOX.c.attempts + 1,
    )
)  # fmt: skip


_INCENTIVES: Table = Incentive.__table__  # type: ignore[assignment]
_REWARDS: Table = Reward.__table__  # type: ignore[assignment]
_INSERT_REWARD = insert(_REWARDS).returning(_REWARDS.c.id)
#: Columns a new reward leaves NULL (not sent with its INSERT; set on the object).
_UNSET_AT_CREATION: dict[str, Any] = dict.fromkeys(
    ("provider_order_id", "delivery", "delivery_hint", "email_outbox_id", "last_error",
     "ordered_at", "sent_at", "paid_at")
)  # fmt: skip
_REQUESTS: Table = RewardRequest.__table__  # type: ignore[assignment]
_INSERT_REQUEST = insert(_REQUESTS)
_INSERT_OUTBOX = insert(_OUTBOX).returning(_OUTBOX.c.id)
# An outbox row goes in a pipeline (compiled for the values given) only when they are every
# column's: none is left to a default only SQLAlchemy's own execution would fill in.
_OUTBOX_VALUES = frozenset(_OUTBOX.c.keys()) - {"id"}
_CONTEXTS: dict[tuple[bool, bool], Any] = {}


def _context(participant: bool, ip_address: bool) -> Any:
    """The first read of a reward's transaction: the incentive, with the cross-request counts
    of the request about to be recorded (built once per shape of request)."""
    statement = _CONTEXTS.get((participant, ip_address))
    if statement is None:
        participants, emails = pending_request_counts(
            participant=participant, ip_address=ip_address
        )
        statement = select(
            *_INCENTIVES.c, participants.label("f_participants"), emails.label("f_emails")
        ).where(_INCENTIVES.c.reference_id == bindparam("ref"))
        _CONTEXTS[(participant, ip_address)] = statement
    return statement


# PostgreSQL's record of a reward emailed, for one pipeline (see _record_sent_pipelined).
_PG_OUTBOX_SENT = """UPDATE email_outbox
SET status = 'sent', sent_at = %(now)s, last_error = NULL, attempts = attempts + 1
WHERE id = %(outbox)s"""
_PG_MOVED_TO_SENT = """WITH moved AS (
    UPDATE rewards
    SET status = 'sent', updated_at = %(now)s, email_outbox_id = %(outbox)s, sent_at = %(now)s,
        next_attempt_at = NULL, last_error = NULL, lease_owner = NULL, lease_until = NULL
    WHERE id = %(reward)s AND status = %(from)s
    RETURNING id
)
INSERT INTO reward_transitions (reward_id, from_status, to_status, actor, reason, at)
SELECT id, %(from)s, 'sent', %(actor)s, %(reason)s, %(now)s FROM moved
RETURNING reward_id"""


_REQUESTED_THROUGH = {
    "automation": "requested by an automation run",
    "api": "requested through the platform API",
    "manual": "requested by hand",
}


def requested_reason(request: RewardRequestIn) -> str:
    """Why a reward exists, as its first transition records it: how it was requested, and for
    which survey response when known (the actor says who)."""
    reason = _REQUESTED_THROUGH.get(request.source, f"requested ({request.source})")
    if request.response_id:
        reason += f" for response {request.response_id}"
    return storable(reason)


def storable(text: str) -> str:
    """Free text people write (a reason, a note) without NUL characters, which PostgreSQL
    cannot store; the character shows nowhere, so nothing a reader could see is lost."""
    return text.replace("\x00", "")


def _queryable(reference: str) -> str | None:
    """The reference normalized, or None when no row can have it: PostgreSQL refuses a query
    holding a NUL character (a 500) rather than finding nothing."""
    normalized = normalize_reference(reference)
    return None if "\x00" in normalized else normalized


def incentive_reference(reference_id: str) -> str:
    """``reference_id`` normalized, or :class:`IncentiveNotFound` saying it is not one at all
    (rather than that no incentive has it)."""
    value = normalize_reference(reference_id)
    if not INCENTIVE_ID_PATTERN.match(value):
        raise IncentiveNotFound(
            f"{reference_id!r} is not an incentive reference id (like INC-7F3K2Q)"
        )
    return value


def get_incentive(session: Session, reference: str) -> Incentive:
    found = _queryable(reference)
    incentive = None if found is None else session.scalar(_INCENTIVE_BY_REFERENCE, {"ref": found})
    if incentive is None:
        raise IncentiveNotFound(f"incentive {normalize_reference(reference)} does not exist")
    return incentive


def get_reward(session: Session, reference: str) -> Reward:
    found = _queryable(reference)
    reward = (
        None
        if found is None
        else session.scalar(select(Reward).where(Reward.reference_id == found))
    )
    if reward is None:
        raise RewardNotFound(f"reward {normalize_reference(reference)} does not exist")
    return reward


def _order_request(reward: Reward, incentive: Incentive) -> OrderRequest:
    return OrderRequest(
        reward_id=reward.id,
        reward_reference=reward.reference_id,
        incentive_id=incentive.id,
        incentive_reference=incentive.reference_id,
        incentive_name=incentive.name,
        email=reward.email,
        email_normalized=reward.email_normalized,
        first_name=reward.first_name,
        amount_minor=reward.amount_minor,
        currency=reward.currency,
        utid=incentive.utid,
        tango_account_id=incentive.tango_account_id,
        gift_code_pool_id=incentive.gift_code_pool_id,
        external_ref_id=reward.external_ref_id,
    )


def _template(incentive: Incentive) -> EmailTemplate:
    return EmailTemplate(
        subject=incentive.email_subject,
        body=incentive.email_body,
        redemption_instructions=incentive.redemption_instructions,
        incentive_name=incentive.name,
        incentive_reference=incentive.reference_id,
        reward_name=incentive.reward_name,
    )


def _reward_email(
    incentive: Incentive, reward: Reward, delivery: Delivery, to: str | None = None
) -> Email:
    """The incentive's email for this reward, to the respondent or to ``to`` (a resend)."""
    template = _template(incentive)
    recipient = to or reward.email
    namespace = template_namespace(
        template,
        reward_reference=reward.reference_id,
        email=recipient,
        first_name=reward.first_name,
        amount_minor=reward.amount_minor,
        currency=reward.currency,
        delivery=delivery,
    )
    return render_email(template, recipient, namespace)


@dataclass
class _Claim:
    reward: Reward
    incentive: Incentive
    owner: str = ""
    #: Whether the lease was already given back (with the last write).
    released: bool = False


@dataclass
class TestStep:
    name: str
    ok: bool
    detail: str


@dataclass
class TestReport:
    """The outcome of a test reward: every step of the chain, and whether it would pay."""

    steps: list[TestStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.steps.append(TestStep(name, ok, detail))


class RewardService:
    """Creates, decides, pays and emails rewards. Thread-safe; one per process is enough."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        providers: ProviderContext | None = None,
        smtp: SmtpSettings | None = None,
        lease_seconds: float = 120.0,
    ) -> None:
        self.factory = factory
        self.providers = providers or ProviderContext(sessionmaker=factory)
        self.smtp = smtp
        self.lease = timedelta(seconds=lease_seconds)
        self._rules: dict[str, tuple[float, FraudRules]] = {}
        self._parsed_rules: dict[int, tuple[Any, FraudRules]] = {}
        bind = factory.kw.get("bind")
        self._sqlite = bind is not None and bind.dialect.name == "sqlite"
        self._engine = bind if isinstance(bind, Engine) else None

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A write transaction. On SQLite, this process's reward writes queue on a lock first:
        SQLite lets one writer in at a time, and its busy handler (sleeping in growing steps)
        serves dozens of concurrent writers far worse than a queue does."""
        if self._sqlite:
            with _SQLITE_WRITES, session_scope(self.factory) as session:
                yield session
        else:
            with session_scope(self.factory) as session:
                yield session

    @contextmanager
    def _transaction(self) -> Iterator[Db]:
        """A write transaction on a plain connection (the hot path: no ORM session), queued
        like :meth:`_writing` on SQLite."""
        engine = self._engine
        if engine is None:
            with self._writing() as session:
                yield session
        elif self._sqlite:
            with _SQLITE_WRITES, engine.begin() as connection:
                yield connection
        else:
            with engine.begin() as connection:
                yield connection

    # -- requests ---------------------------------------------------------------------------

    def cached_fraud_rules(self, reference: str) -> FraudRules | None:
        """:meth:`fraud_rules` when they are cached (no database read)."""
        cached = self._rules.get(normalize_reference(reference))
        if cached is not None and time.monotonic() - cached[0] < RULES_TTL:
            return cached[1]
        return None

    def fraud_rules(self, reference: str) -> FraudRules:
        """An incentive's fraud rules (cached for a few seconds: read on every request)."""
        cached = self.cached_fraud_rules(reference)
        if cached is not None:
            return cached
        key = normalize_reference(reference)
        now = time.monotonic()
        with self.factory() as session:
            rules = FraudRules.model_validate(get_incentive(session, key).fraud_rules or {})
        self._rules[key] = (now, rules)
        return rules

    def submit(self, request: RewardRequestIn, *, lease_owner: str | None = None) -> Submission:
        """Record a request and create (and decide) its reward, or say why there is none.

        Idempotent per ``request.request_key``: the same request again returns the reward it
        created (outcome ``existing``), or the one it was a duplicate of, even when this copy
        lost the email the first one had. ``lease_owner`` claims an approved reward for the
        caller's immediate :meth:`fulfil`, so the background fulfiller leaves it alone.
        """
        email = normalize_email(request.email)
        if email is None:
            with self.factory() as session:
                incentive_id = get_incentive(session, request.incentive_reference).id
                previous = self._previous(session, incentive_id, request.request_key[:300])
            if previous is not None and previous.outcome != "rejected":
                return previous
            self._record_request(incentive_id, request, "rejected", None, NO_EMAIL_MESSAGE)
            return Submission("rejected", NO_EMAIL_MESSAGE)
        for _ in range(2):
            try:
                return self._create(request, email, lease_owner)
            except IntegrityError:
                pass
            # A unique constraint refused the reward: the same request again (its request key)
            # or another request for the same email or response (a duplicate).
            with self._writing() as session:
                incentive_id = get_incentive(session, request.incentive_reference).id
                previous = self._previous(session, incentive_id, request.request_key[:300])
                if previous is None or previous.outcome != "rejected":
                    break
                # Rejected before for want of an email, which it now has (a corrected request,
                # a replayed run): that answer created nothing, so this one is decided anew.
                session.execute(
                    delete(RewardRequest).where(
                        RewardRequest.incentive_id == incentive_id,
                        RewardRequest.request_key == request.request_key[:300],
                        RewardRequest.outcome == "rejected",
                    )
                )
        with self._writing() as session:
            if previous is not None:
                return previous
            existing = session.scalar(
                select(Reward).where(
                    Reward.incentive_id == incentive_id,
                    or_(
                        Reward.email_normalized == email,
                        Reward.response_id == request.response_id
                        if request.response_id
                        else Reward.id.is_(None),
                    ),
                )
            )
            if existing is None:
                raise RuntimeError("a reward insert conflicted but no conflicting row exists")
        message = f"already rewarded as {existing.reference_id}"
        self._record_request(incentive_id, request, "duplicate", existing, message)
        return Submission("duplicate", message, existing)

    def _previous(self, session: Session, incentive_id: int, key: str) -> Submission | None:
        row = session.scalar(
            select(RewardRequest).where(
                RewardRequest.incentive_id == incentive_id, RewardRequest.request_key == key
            )
        )
        if row is None:
            return None
        reward = session.get(Reward, row.reward_id) if row.reward_id is not None else None
        if row.outcome == "created":
            return Submission(
                "existing",
                f"this request created {reward.reference_id if reward else 'a reward'}",
                reward,
            )
        return Submission(row.outcome, row.message, reward)  # type: ignore[arg-type]

    def _record_request(
        self,
        incentive_id: int,
        request: RewardRequestIn,
        outcome: str,
        reward: Reward | None,
        message: str,
    ) -> None:
        """Record a request that created no reward (in its own transaction)."""
        try:
            with self._writing() as session:
                session.add(
                    RewardRequest(
                        incentive_id=incentive_id,
                        request_key=request.request_key[:300],
                        outcome=outcome,
                        reward_id=reward.id if reward is not None else None,
                        message=message,
                        email_normalized=normalize_email(request.email),
                        response_id=request.response_id,
                        participant_id=request.participant_id,
                        ip_address=request.ip_address,
                        source=request.source,
                    )
                )
        except IntegrityError:
            # Recorded already by a concurrent delivery of the same request.
            pass

    def _create(self, request: RewardRequestIn, email: str, lease_owner: str | None) -> Submission:
        """Create the request's reward and decide it, in one transaction.

        The hot path in statements: one read (the incentive and the cross-request counts), the
        reward inserted in its decided status, the request recorded, (at submission, for
        providers that pay with database writes) the code claimed, the reward ordered and its
        email queued, every transition in one INSERT, and the place against the limits taken
        last. On PostgreSQL the last four leave with the COMMIT in one pipelined round trip;
        on SQLite an incentive with limits has its place taken first."""
        reserve_first = False
        for _ in range(5):
            try:
                with self._transaction() as db:
                    return self._create_in(
                        db, request, email, lease_owner, reserve_first=reserve_first
                    )
            except IntegrityError as exc:
                if "reference_id" in str(exc.orig) and "rewards" in str(exc.orig):
                    continue  # a reference id collision: draw another
                raise
            except _LimitsChanged:
                if reserve_first:
                    raise RuntimeError("an incentive's limits kept changing") from None
                # Refused at the end: decide again, reserving first (a refusal then holds the
                # reward, with the reason).
                reserve_first = True
        raise RuntimeError("could not draw a unique reward reference id")

    def _create_in(
        self,
        session: Db,
        request: RewardRequestIn,
        email: str,
        lease_owner: str | None,
        *,
        reserve_first: bool,
    ) -> Submission:
        ip_address = request.ip_address
        params: dict[str, Any] = {"ref": normalize_reference(request.incentive_reference)}
        params["f_email"] = email
        if request.participant_id is not None:
            params["f_participant"] = request.participant_id
        if ip_address:
            params["f_ip"] = ip_address
        statement = _context(request.participant_id is not None, bool(ip_address))
        row = session.execute(statement, params).first()
        if row is None:
            raise IncentiveNotFound(f"incentive {params['ref']} does not exist")
        values = row._asdict()
        participants, emails = values.pop("f_participants"), values.pop("f_emails")
        incentive = Incentive(**values)
        rules = self._rules_of(incentive)

        # Decide before inserting: the reward is created in its decided status.
        now = utcnow()
        reasons: list[str] = []
        warnings: list[str] = []
        if not incentive.active:
            reasons.append(f"incentive {incentive.reference_id} is paused")
        if incentive.opens_at is not None and now < incentive.opens_at:
            reasons.append(
                f"incentive {incentive.reference_id} opens at {_fmt(incentive.opens_at)}"
            )
        if incentive.closes_at is not None and now >= incentive.closes_at:
            reasons.append(
                f"incentive {incentive.reference_id} closed at {_fmt(incentive.closes_at)}"
            )
        if request.response_values is not None:
            reasons.extend(response_findings(request.response_values, rules, request.values_origin))
        else:
            warnings.append("fraud-detection fields not checked: no survey response came with it")
        signals = count_findings(
            rules, email_normalized=email, ip_address=ip_address,
            participants=participants, emails=emails,
        )  # fmt: skip
        if incentive.approval_mode == "automatic":
            warnings.extend(signals)
        else:
            reasons.extend(f"suspicious: {signal}" for signal in signals)
        if incentive.approval_mode == "review_all" and not reasons:
            reasons.append("this incentive reviews every reward before paying it")
        # The place against the limits is taken last, so that its row lock on the incentive
        # (which every reward of it waits for) is held only for the commit; on PostgreSQL it
        # goes with the COMMIT. A refusal there rolls everything back, and the reward is decided
        # again reserving first. On SQLite, an incentive with limits reserves first at once.
        pipelined = not self._sqlite and isinstance(session, Connection)
        limited = incentive.max_rewards is not None or incentive.budget_minor is not None
        reserved = False
        if not reasons and (reserve_first or (limited and not pipelined)):
            limit = reserve(session, incentive, incentive.amount_minor)
            if limit is not None:
                reasons.append(limit)
            else:
                reserved = True
        approved = not reasons
        leased = approved and lease_owner is not None
        columns: dict[str, Any] = {
            "reference_id": new_reward_reference(),
            "incentive_id": incentive.id,
            "status": "approved" if approved else "held",
            "email": (request.email or "").strip()[:320],
            "email_normalized": email,
            "first_name": (request.first_name or "").strip()[:100] or None,
            "response_id": request.response_id,
            "survey_id": request.survey_id,
            "participant_id": request.participant_id or None,
            "ip_address": ip_address,
            "source": request.source,
            "requested_by": request.requested_by[:300],
            "run_id": request.run_id,
            "amount_minor": incentive.amount_minor,
            "currency": incentive.currency,
            "provider": incentive.provider,
            "reasons": reasons,
            "warnings": warnings,
            "counted": approved,
            "external_ref_id": (
                external_ref_id(incentive.reference_id, email)
                if incentive.provider == "tango"
                else None
            ),
            "resend_count": 0,
            "attempts": 0,
            "next_attempt_at": now if approved else None,
            "lease_owner": lease_owner if leased else None,
            "lease_until": now + self.lease if leased else None,
            "created_at": now,
            "updated_at": now,
        }
        reward_id = session.execute(_INSERT_REWARD, columns).scalar_one()
        reward = Reward(id=reward_id, **columns, **_UNSET_AT_CREATION)
        session.execute(
            _INSERT_REQUEST,
            {
                "incentive_id": incentive.id, "request_key": request.request_key[:300],
                "outcome": "created", "reward_id": reward_id, "message": "",
                "email_normalized": email, "response_id": request.response_id,
                "participant_id": request.participant_id, "ip_address": ip_address,
                "source": request.source, "created_at": now,
            },
        )  # fmt: skip
        # The history reads as before: created pending, then decided.
        journal = [
            transition(
                reward_id, None, "pending", actor=request.requested_by, at=now,
                reason=requested_reason(request),
            ),
            transition(
                reward_id, "pending", reward.status, actor=SYSTEM, at=now,
                reason="approved automatically" if approved else "; ".join(reasons),
            ),
        ]  # fmt: skip
        # On PostgreSQL, the writes whose results nothing reads before the end go in one
        # pipeline with the reservation and the COMMIT.
        deferred = Deferred() if pipelined and approved and not reserved else None
        outbox = None
        if leased:
            outbox = self._order_at_submission(
                session, reward, incentive, reserved=reserved, journal=journal, deferred=deferred
            )
        write_transitions(session, journal, deferred)
        if reward.counted and not reserved:
            if pipelined:
                assert isinstance(session, Connection)
                if not reserve_and_commit(session, incentive.id, reward.amount_minor, deferred):
                    raise _LimitsChanged
            elif reserve(session, incentive, reward.amount_minor) is not None:
                raise _LimitsChanged  # a limit was set meanwhile: decide again
        elif deferred is not None:
            deferred.run(session)
        return Submission("created", f"created {reward.reference_id}", reward, incentive, outbox)

    def _rules_of(self, incentive: Incentive) -> FraudRules:
        """The incentive's fraud rules, parsed once per version of them."""
        raw = incentive.fraud_rules or {}
        cached = self._parsed_rules.get(incentive.id)
        if cached is not None and cached[0] == raw:
            return cached[1]
        rules = FraudRules.model_validate(raw)
        self._parsed_rules[incentive.id] = (raw, rules)
        return rules

    def _order_at_submission(
        self,
        session: Db,
        reward: Reward,
        incentive: Incentive,
        *,
        reserved: bool,
        journal: list[dict[str, Any]] | None = None,
        deferred: Deferred | None = None,
    ) -> OutboxEmail | None:
        """Pay a just-approved reward in its creation transaction, when the provider pays with
        database writes alone (gift codes, manual): one commit instead of two on the hot path.

        A provider that cannot pay now leaves the reward approved; :meth:`fulfil` tries again
        and records why (a hold is recorded right here, with its place given back)."""
        provider = provider_named(reward.provider, self.providers)
        if not provider.orders_in_session:
            return None
        try:
            delivery = provider.order_in_session(
                session, replace(_order_request(reward, incentive), new=True)
            )
        except ProviderHold as hold:
            if move(
                session, reward, "held", actor=SYSTEM, reason=hold.reason, reasons=[hold.reason],
                counted=False, next_attempt_at=None, lease_owner=None, lease_until=None,
                journal=journal,
            ) and reserved:  # fmt: skip
                unreserve(session, incentive.id, reward.amount_minor)
            return None
        except ProviderError:
            return None
        return self._record_order(session, reward, incentive, delivery, journal, deferred)

    def _record_order(
        self,
        session: Db,
        reward: Reward,
        incentive: Incentive,
        delivery: Delivery,
        journal: list[dict[str, Any]] | None = None,
        deferred: Deferred | None = None,
    ) -> OutboxEmail | None:
        """approved → ordered with the delivery, and the reward email queued (when it can go
        now), in the caller's transaction. Returns the queued email. ``deferred``: the reward
        was created in this transaction; both writes wait for its end (the email's id is set
        once they ran)."""
        now = utcnow()
        awaiting = not delivery.complete
        moved = move(
            session,
            reward,
            "ordered",
            actor=SYSTEM,
            reason="to be paid by hand" if awaiting else (delivery.hint or "ordered"),
            provider_order_id=delivery.provider_order_id,
            delivery=json.dumps(delivery.as_dict()),
            delivery_hint=delivery.hint[:200] or None,
            ordered_at=now,
            next_attempt_at=None if awaiting else now,
            last_error=None,
            journal=journal,
            deferred=deferred,
        )
        if not moved:
            raise RewardFailed(
                f"{reward.reference_id} changed to {reward.status} while it was being ordered"
            )
        if awaiting or self.smtp is None:
            return None
        try:
            return self._queue_email(session, reward, incentive, delivery, deferred)
        except TemplateRenderError:
            # The payment is recorded all the same; _email meets the error again and records
            # it on the reward.
            return None

    # -- fulfilment ------------------------------------------------------------------------

    def _claim(self, reward_id: int, owner: str) -> _Claim | None:
        now = utcnow()
        with self._writing() as session:
            result = session.execute(
                update(Reward)
                .where(
                    Reward.id == reward_id,
                    Reward.status.in_(("approved", "ordered")),
                    or_(
                        Reward.lease_owner.is_(None),
                        Reward.lease_until < now,
                        Reward.lease_owner == owner,
                    ),
                )
                .values(lease_owner=owner, lease_until=now + self.lease)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) != 1:
                return None
            reward = session.get(Reward, reward_id)
            assert reward is not None
            incentive = session.get(Incentive, reward.incentive_id)
            assert incentive is not None
            return _Claim(reward, incentive, owner)

    def _unlease(self, reward_id: int, owner: str) -> None:
        with self._writing() as session:
            session.execute(
                update(Reward)
                .where(Reward.id == reward_id, Reward.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def _queue_email(
        self,
        session: Db,
        reward: Reward,
        incentive: Incentive,
        delivery: Delivery,
        deferred: Deferred | None = None,
    ) -> OutboxEmail:
        """Insert the reward email into the outbox (in the caller's transaction, or with its
        ``deferred`` writes); returns the row as a plain object (no session tracks it)."""
        assert self.smtp is not None
        email = _reward_email(incentive, reward, delivery)
        key = f"reward:{reward.reference_id}"
        values = outbox_values(key, email, sender=self.smtp.sender, run_id=reward.run_id)
        row = OutboxEmail(**values)
        if deferred is not None and set(values) == _OUTBOX_VALUES:

            def inserted(cursor: Any) -> None:
                row.id = cursor.fetchone()[0]

            deferred.add(_INSERT_OUTBOX, values, inserted)
        else:
            row.id = session.execute(_INSERT_OUTBOX, values).scalar_one()
        return row

    def _after_order(
        self,
        claim: _Claim,
        delivery: Delivery | None,
        provider: RewardProvider | None = None,
    ) -> tuple[Reward, OutboxEmail | None]:
        """ordered (and the email queued) in one transaction; with ``provider``, its
        :meth:`~RewardProvider.order_in_session` pays in that same transaction."""
        with self._writing() as session:
            reward = session.get(Reward, claim.reward.id)
            assert reward is not None
            if reward.status in ("ordered", "sent"):
                return reward, None  # a concurrent attempt of the same claim recorded it first
            if provider is not None:
                delivery = provider.order_in_session(
                    session, _order_request(reward, claim.incentive)
                )
            assert delivery is not None
            return reward, self._record_order(session, reward, claim.incentive, delivery)

    def _hold(self, claim: _Claim, reason: str) -> Reward:
        with self._writing() as session:
            reward = session.get(Reward, claim.reward.id)
            assert reward is not None
            counted = reward.counted
            if move(
                session, reward, "held", actor=SYSTEM, reason=reason,
                reasons=[reason], counted=False, next_attempt_at=None, last_error=None,
            ) and counted:  # fmt: skip
                unreserve(session, reward.incentive_id, reward.amount_minor)
            return reward

    def _fail(self, claim: _Claim, reason: str) -> Reward:
        with self._writing() as session:
            reward = session.get(Reward, claim.reward.id)
            assert reward is not None
            counted = reward.counted
            if move(
                session, reward, "failed", actor=SYSTEM, reason=reason,
                reasons=[reason], counted=False, next_attempt_at=None, last_error=reason,
            ) and counted:  # fmt: skip
                unreserve(session, reward.incentive_id, reward.amount_minor)
            return reward

    def _retry_later(
        self,
        reward_id: int,
        reason: str,
        *,
        final: bool = False,
        in_history: bool = False,
        retry_after: float | None = None,
    ) -> Reward:
        """Record why this attempt stopped and when the next one is due (never, if ``final``).

        ``in_history``: the reason is also a transition of the history, written when it first
        becomes the reason (a fulfiller meets the same one again at every retry).
        ``retry_after``: the provider asked for at least that many seconds before trying again
        (a 429's Retry-After), which may outlast the backoff."""
        with self._writing() as session:
            reward = session.get(Reward, reward_id)
            assert reward is not None
            reason = reason[:4000]
            if in_history and reward.last_error != reason:
                session.add(
                    RewardTransition(
                        reward_id=reward.id, from_status=reward.status, to_status=reward.status,
                        actor=SYSTEM, reason=reason,
                    )
                )  # fmt: skip
            reward.attempts += 1
            reward.last_error = reason
            delay = max(min(30 * 2 ** min(reward.attempts, 7), 3600), retry_after or 0)
            reward.next_attempt_at = None if final else utcnow() + timedelta(seconds=delay)
            return reward

    def _after_email(
        self, reward_id: int, outbox_id: int, *, paid: bool, owner: str | None = None
    ) -> Reward:
        now = utcnow()
        with self._writing() as session:
            reward = session.get(Reward, reward_id)
            assert reward is not None
            mine = owner is not None and reward.lease_owner == owner
            if reward.status == "sent":
                # A concurrent attempt of the same claim recorded it first.
                if mine:
                    reward.lease_owner = reward.lease_until = None
                return reward
            release: dict[str, Any] = {"lease_owner": None, "lease_until": None} if mine else {}
            move(
                session,
                reward,
                "sent",
                actor=SYSTEM,
                reason="reward emailed" + (" after payment by hand" if paid else ""),
                email_outbox_id=outbox_id,
                sent_at=now,
                next_attempt_at=None,
                last_error=None,
                **release,
            )
            return reward

    async def fulfil(
        self, reward_id: int, *, owner: str, submitted: Submission | None = None
    ) -> Reward | None:
        """Pay and email an approved (or ordered) reward; returns it as it ends up.

        Returns None when someone else holds it right now (it is theirs to finish). Raises
        :class:`RewardRetry` for transient problems (the reward is scheduled for a retry) and
        :class:`RewardFailed` when the respondent cannot be paid or mailed. Without email
        settings, a paid reward is returned ``ordered`` with :data:`EMAIL_AWAITS_SETTINGS`: its
        email stays due, for a fulfiller with them. ``submitted`` is the :meth:`submit` that
        just approved it under ``owner``'s lease (no claim needed).
        """
        claim: _Claim | None = None
        if (
            submitted is not None
            and submitted.reward is not None
            and submitted.incentive is not None
            and submitted.reward.id == reward_id
            and submitted.reward.status in ("approved", "ordered")
            and submitted.reward.lease_owner == owner
        ):
            claim = _Claim(submitted.reward, submitted.incentive, owner)
        else:
            claim = await in_db_thread(self._claim, reward_id, owner)
            submitted = None
        if claim is None:
            return None
        try:
            return await self._fulfil_claimed(
                claim, submitted.outbox if submitted is not None else None
            )
        finally:
            if not claim.released:
                await in_db_thread(self._unlease, reward_id, owner)

    async def _fulfil_claimed(self, claim: _Claim, outbox: OutboxEmail | None = None) -> Reward:
        reward, incentive = claim.reward, claim.incentive
        if reward.status == "approved":
            provider = provider_named(reward.provider, self.providers)
            try:
                if provider.orders_in_session:
                    reward, outbox = await in_db_thread(self._after_order, claim, None, provider)
                else:
                    delivery = await provider.order(_order_request(reward, incentive))
                    reward, outbox = await in_db_thread(self._after_order, claim, delivery)
            except IntegrityError:
                # Another attempt of this very claim took the gift code at the same moment.
                raise RewardRetry("a concurrent attempt is paying this reward") from None
            except ProviderHold as hold:
                return await in_db_thread(self._hold, claim, hold.reason)
            except ProviderError as exc:
                if exc.retriable:
                    await in_db_thread(
                        self._retry_later, reward.id, exc.reason, retry_after=exc.retry_after
                    )
                    raise RewardRetry(exc.reason, exc.retry_after) from None
                failed = await in_db_thread(self._fail, claim, exc.reason)
                raise RewardFailed(f"{failed.reference_id} failed: {exc.reason}") from None
        if reward.status != "ordered":
            return reward
        if reward.provider == "manual" and reward.paid_at is None:
            return reward  # waits for a person to pay it and mark it paid
        if outbox is not None and outbox.status == "pending":
            return await self._email_queued(reward, claim, outbox)
        return await self._email(reward, incentive, claim=claim)

    async def _email(
        self,
        reward: Reward,
        incentive: Incentive,
        *,
        claim: _Claim | None = None,
    ) -> Reward:
        if self.smtp is None:
            # Not a failure of this reward: it stays due, for this process to look again later
            # and for any fulfiller with email settings to send at once (Fulfiller.due).
            waiting = await in_db_thread(
                self._retry_later, reward.id, EMAIL_AWAITS_SETTINGS, in_history=True
            )
            # In the same shape as Fulfiller.drain's warnings (the CLI names the reward by it).
            log.warning(
                "reward %s: %s", reward.id, f"{reward.reference_id} was {EMAIL_AWAITS_SETTINGS}"
            )
            return waiting
        delivery = Delivery.from_dict(json.loads(reward.delivery or "{}"))
        try:
            email = _reward_email(incentive, reward, delivery)
        except TemplateRenderError as exc:
            # Trying again cannot help until a person fixes the template.
            reason = (
                f"its email could not be written: {exc}; fix the incentive's email template, "
                "then resend it"
            )
            await in_db_thread(self._retry_later, reward.id, reason, final=True, in_history=True)
            raise RewardFailed(f"{reward.reference_id} was paid but {reason}") from None
        try:
            key = f"reward:{reward.reference_id}"
            sent = await send_email(self.factory, self.smtp, key, email)
        except EmailError as exc:
            reason = f"email to {reward.email} failed: {exc}"
            await in_db_thread(self._retry_later, reward.id, reason, final=not exc.retriable)
            if exc.retriable:
                raise RewardRetry(reason) from None
            raise RewardFailed(f"{reward.reference_id} was ordered but {reason}") from None
        owner = claim.owner if claim is not None else None
        done = await in_db_thread(
            self._after_email, reward.id, sent.id, paid=reward.paid_at is not None, owner=owner
        )
        if claim is not None:
            claim.released = True
        return done

    async def _email_queued(self, reward: Reward, claim: _Claim, outbox: OutboxEmail) -> Reward:
        """Send the email queued with the order, then record it sent and the reward sent in one
        transaction (the hot path: the message is in hand, no outbox read needed)."""
        smtp = self.smtp
        assert smtp is not None

        def send_and_record() -> Reward | EmailError:
            # One trip to the thread pool for both: the message, then its record.
            try:
                send_blocking(smtp, outbox)
            except EmailError as exc:
                return exc
            return self._record_sent(reward, outbox.id, claim.owner)

        done = await in_smtp_thread(send_and_record)
        if isinstance(done, EmailError):
            exc = done
            await in_db_thread(
                record_outbox_failure, self.factory, outbox.id, error=str(exc),
                retriable=exc.retriable,
            )  # fmt: skip
            reason = f"email to {reward.email} failed: {exc}"
            await in_db_thread(self._retry_later, reward.id, reason, final=not exc.retriable)
            if exc.retriable:
                raise RewardRetry(reason) from None
            raise RewardFailed(f"{reward.reference_id} was ordered but {reason}") from None
        claim.released = True
        return done

    def _record_sent(self, reward: Reward, outbox_id: int, owner: str) -> Reward:
        now = utcnow()
        if self._engine is not None and not self._sqlite:
            if self._record_sent_pipelined(reward, outbox_id, now):
                return reward
        else:
            with self._transaction() as session:
                session.execute(_OUTBOX_SENT, {"o_id": outbox_id, "o_now": now})
                if move(
                    session, reward, "sent", actor=SYSTEM, reason="reward emailed",
                    email_outbox_id=outbox_id, sent_at=now, next_attempt_at=None,
                    last_error=None, lease_owner=None, lease_until=None,
                ):  # fmt: skip
                    return reward
        # A concurrent attempt of the same claim recorded it first.
        return self._after_email(reward.id, outbox_id, paid=False, owner=owner)

    def _record_sent_pipelined(self, reward: Reward, outbox_id: int, now: datetime) -> bool:
        """PostgreSQL: the email and the reward recorded sent (with the transition, written only
        if the reward moved) in one round trip: both statements go in one pipeline, which the
        server runs as one implicit transaction (no BEGIN/COMMIT of their own). Returns whether
        the reward moved; a move is the same conditional UPDATE as :func:`move`'s."""
        assert self._engine is not None
        check_move(reward.status, "sent")
        params = {
            "now": now, "outbox": outbox_id, "reward": reward.id, "from": reward.status,
            "actor": SYSTEM, "reason": "reward emailed",
        }  # fmt: skip
        with autocommit(self._engine) as db:
            raw = db.connection.driver_connection
            assert raw is not None
            with raw.pipeline():
                raw.execute(_PG_OUTBOX_SENT, params)
                moved = raw.execute(_PG_MOVED_TO_SENT, params)
            if moved.fetchone() is None:
                return False
        values = {
            "status": "sent", "updated_at": now, "email_outbox_id": outbox_id, "sent_at": now,
            "next_attempt_at": None, "last_error": None, "lease_owner": None, "lease_until": None,
        }  # fmt: skip
        for key, value in values.items():
            set_committed_value(reward, key, value)
        return True

    # -- reviewers' operations ---------------------------------------------------------------

    def _each(
        self,
        references: Sequence[str],
        operation: Any,
    ) -> list[ActionResult]:
        """``operation`` on each reward named, in its own transaction; a reward named again
        (in any case or spacing) is acted on once: a second block or release would be refused
        and read as a failure."""
        results: list[ActionResult] = []
        for reference in dict.fromkeys(normalize_reference(r) for r in references):
            try:
                with self._writing() as session:
                    reward = get_reward(session, reference)
                    message = operation(session, reward)
                    results.append(ActionResult(reward.reference_id, True, reward.status, message))
            except (RewardNotFound, TransitionError, ValueError) as exc:
                status = ""
                queryable = _queryable(reference)
                with self.factory() as session:
                    found = queryable and session.scalar(
                        select(Reward.status).where(Reward.reference_id == queryable)
                    )
                    status = found or ""
                results.append(ActionResult(reference, False, status, str(exc)))
        return results

    def release(
        self,
        references: Sequence[str],
        *,
        actor: str,
        note: str = "",
        lease_owner: str | None = None,
    ) -> list[ActionResult]:
        """Held → approved (counted against the limits; refused if a limit is reached).

        ``lease_owner`` reserves the released reward for the caller's immediate :meth:`fulfil`,
        so the background fulfiller does not take it first and the caller can say how it ended.
        """
        note = storable(note)

        def operation(session: Session, reward: Reward) -> str:
            if reward.status != "held":
                raise TransitionError(
                    f"only held rewards can be released; this one is {reward.status}"
                )
            incentive = session.get(Incentive, reward.incentive_id)
            assert incentive is not None
            limit = reserve(session, incentive, reward.amount_minor)
            if limit is not None:
                raise ValueError(f"cannot release {reward.reference_id}: {limit}")
            reason = f"released by {actor}" + (f": {note}" if note else "")
            now = utcnow()
            if not move(
                session, reward, "approved", actor=actor, reason=reason, counted=True,
                next_attempt_at=now, lease_owner=lease_owner,
                lease_until=now + self.lease if lease_owner is not None else None, attempts=0,
            ):  # fmt: skip
                raise TransitionError(f"{reward.reference_id} changed meanwhile; reload it")
            return reason

        return self._each(references, operation)

    def block(
        self, references: Sequence[str], *, actor: str, reason: str = ""
    ) -> list[ActionResult]:
        """Held (or pending) → blocked: this respondent is not paid."""
        reason = storable(reason)

        def operation(session: Session, reward: Reward) -> str:
            check_move(reward.status, "blocked")
            why = f"blocked by {actor}" + (f": {reason}" if reason else "")
            counted = reward.counted
            if not move(session, reward, "blocked", actor=actor, reason=why, counted=False):
                raise TransitionError(f"{reward.reference_id} changed meanwhile; reload it")
            if counted:
                unreserve(session, reward.incentive_id, reward.amount_minor)
            return why

        return self._each(references, operation)

    def cancel(
        self, references: Sequence[str], *, actor: str, reason: str = ""
    ) -> list[ActionResult]:
        """Cancel a reward nobody was paid for yet (a manual one not yet paid included)."""
        reason = storable(reason)

        def operation(session: Session, reward: Reward) -> str:
            check_move(reward.status, "cancelled")
            if reward.status == "ordered" and (reward.provider != "manual" or reward.paid_at):
                raise TransitionError(
                    f"{reward.reference_id} was already paid through {reward.provider}; "
                    "it cannot be cancelled"
                )
            now = utcnow()
            if reward.status == "approved" and reward.lease_until and reward.lease_until > now:
                raise TransitionError(
                    f"{reward.reference_id} is being paid right now; look again in a minute"
                )
            why = f"cancelled by {actor}" + (f": {reason}" if reason else "")
            counted = reward.counted
            if not move(
                session, reward, "cancelled", actor=actor, reason=why, counted=False,
                next_attempt_at=None,
            ):  # fmt: skip
                raise TransitionError(f"{reward.reference_id} changed meanwhile; reload it")
            if counted:
                unreserve(session, reward.incentive_id, reward.amount_minor)
            return why

        return self._each(references, operation)

    def retry(self, references: Sequence[str], *, actor: str) -> list[ActionResult]:
        """Failed → approved: try paying again (counted against the limits again)."""

        def operation(session: Session, reward: Reward) -> str:
            if reward.status != "failed":
                raise TransitionError(
                    f"only failed rewards can be retried; this one is {reward.status}"
                )
            incentive = session.get(Incentive, reward.incentive_id)
            assert incentive is not None
            limit = reserve(session, incentive, reward.amount_minor)
            if limit is not None:
                raise ValueError(f"cannot retry {reward.reference_id}: {limit}")
            why = f"retried by {actor}"
            if not move(
                session, reward, "approved", actor=actor, reason=why, counted=True,
                next_attempt_at=utcnow(), attempts=0, last_error=None,
            ):  # fmt: skip
                raise TransitionError(f"{reward.reference_id} changed meanwhile; reload it")
            return why

        return self._each(references, operation)

    def mark_paid(
        self, references: Sequence[str], *, actor: str, lease_owner: str | None = None
    ) -> list[ActionResult]:
        """Manual rewards paid by hand: record the payment; the email goes out next.

        ``lease_owner`` reserves the email for the caller's immediate :meth:`fulfil`.
        """

        def operation(session: Session, reward: Reward) -> str:
            if reward.provider == "manual" and reward.paid_at is not None:
                raise TransitionError(_paid_already(session, reward))
            if reward.provider == "manual" and reward.status == "held":
                why = "; ".join(reward.reasons or []) or "see its transitions"
                raise TransitionError(
                    f"{reward.reference_id} is held for review ({why}): release it first, then "
                    "mark it paid"
                )
            if reward.provider == "manual" and reward.status == "approved":
                # Approved, not yet recorded as to be paid by hand (no worker ran since): it
                # awaits payment all the same, so it is recorded so now, then marked paid.
                if reward.lease_until and reward.lease_until > utcnow():
                    raise TransitionError(
                        f"{reward.reference_id} is being recorded for payment by hand right "
                        "now; mark it paid again in a minute"
                    )
                incentive = session.get(Incentive, reward.incentive_id)
                assert incentive is not None
                try:
                    self._record_order(
                        session,
                        reward,
                        incentive,
                        Delivery(complete=False, hint="to be paid by hand"),
                    )
                except RewardFailed:
                    # A worker recorded it between this read and this write.
                    raise TransitionError(
                        f"{reward.reference_id} was just recorded for payment by hand by a "
                        "worker; mark it paid again"
                    ) from None
            if reward.provider != "manual" or reward.status != "ordered":
                raise TransitionError(
                    f"only manual rewards awaiting payment can be marked paid; "
                    f"{reward.reference_id} is a {reward.provider} reward that is {reward.status}"
                )
            reward.paid_at = utcnow()
            reward.next_attempt_at = utcnow()
            if lease_owner is not None:
                reward.lease_owner = lease_owner
                reward.lease_until = utcnow() + self.lease
            session.add(
                RewardTransition(
                    reward_id=reward.id, from_status="ordered", to_status="ordered",
                    actor=actor[:320], reason=f"marked paid by {actor}",
                )
            )  # fmt: skip
            return f"marked paid by {actor}"

        return self._each(references, operation)

    async def resend(self, reference: str, *, actor: str, new_email: str | None = None) -> Resent:
        """Email a paid reward again (optionally to a corrected address), or for the first time
        when its first email waits for a worker or was refused."""
        target: str | None = None
        if new_email is not None:
            target = normalize_email(new_email)
            if target is None:
                raise ValueError(f"{new_email!r} is not an email address")

        def prepare() -> tuple[Reward, Incentive | None, int | None]:
            """The reward, its incentive and the resend's number; no number (nor incentive)
            when its first email is still due to a worker."""
            with self._writing() as session:
                reward = get_reward(session, reference)
                paid_order = (
                    reward.status == "ordered"
                    and reward.delivery is not None
                    and (reward.provider != "manual" or reward.paid_at is not None)
                )
                if paid_order and reward.next_attempt_at is not None:
                    return reward, None, None
                if reward.status != "sent" and not paid_order:
                    raise TransitionError(
                        f"only rewards that were paid can be resent; {reward.reference_id} is "
                        f"{reward.status}"
                    )
                incentive = session.get(Incentive, reward.incentive_id)
                assert incentive is not None
                # Numbers the resend's email (its idempotency key), sent or not.
                reward.resend_count += 1
                return reward, incentive, reward.resend_count

        reward, incentive, count = await in_db_thread(prepare)
        if self.smtp is None:
            raise RewardFailed(EMAIL_NOT_CONFIGURED)
        if count is None:
            return Resent(await self._email_due_now(reward, actor=actor, target=target), True)
        assert incentive is not None
        delivery = Delivery.from_dict(json.loads(reward.delivery or "{}"))
        try:
            email = _reward_email(incentive, reward, delivery, to=target)
        except TemplateRenderError as exc:
            raise RewardFailed(
                f"resending {reward.reference_id} failed: its email could not be written: {exc}"
            ) from None
        try:
            sent = await send_email(
                self.factory, self.smtp, f"reward:{reward.reference_id}:resend:{count}", email
            )
        except EmailError as exc:
            raise RewardFailed(f"resending {reward.reference_id} failed: {exc}") from None

        def record() -> Resent:
            # Only an email that went out is in the history.
            with self._writing() as session:
                fresh = session.get(Reward, reward.id)
                assert fresh is not None
                session.add(
                    RewardTransition(
                        reward_id=fresh.id, from_status=fresh.status, to_status=fresh.status,
                        actor=actor[:320],
                        reason=f"email resent to {target or fresh.email} by {actor}",
                    )
                )  # fmt: skip
                # Its first email had failed: the resend delivered it, and is the email the
                # reward records (as the first one would have been).
                first = fresh.status == "ordered" and move(
                    session, fresh, "sent", actor=actor, reason="emailed by a resend",
                    email_outbox_id=sent.id, sent_at=utcnow(), next_attempt_at=None,
                    last_error=None,
                )  # fmt: skip
                return Resent(fresh, first)

        return await in_db_thread(record)

    async def _email_due_now(self, reward: Reward, *, actor: str, target: str | None) -> Reward:
        """A paid reward's first email, which a worker was to send (e.g. it waits for email
        settings), sent now at ``actor``'s request. It goes the worker's way (under a lease,
        keyed ``reward:…`` in the outbox) so that the worker cannot send it a second time."""
        reference = reward.reference_id
        if target is not None and target != reward.email_normalized:
            raise TransitionError(
                f"{reference} was not emailed yet: resend it without another address to email "
                f"it to {reward.email} now"
            )
        try:
            done = await self.fulfil(reward.id, owner=f"resend:{uuid.uuid4().hex[:8]}")
        except RewardRetry as exc:
            raise RewardFailed(
                f"emailing {reference} failed: {exc.reason}; a worker tries again later"
            ) from None
        if done is None:
            raise TransitionError(
                f"{reference} is being emailed by a worker right now; look again in a minute"
            )
        if done.status != "sent":
            raise TransitionError(f"{reference} is {done.status} now; it was not emailed")

        def record() -> None:
            with self._writing() as session:
                session.add(
                    RewardTransition(
                        reward_id=done.id, from_status="sent", to_status="sent",
                        actor=actor[:320],
                        reason=f"emailed to {done.email} at once at the request of {actor}",
                    )
                )  # fmt: skip

        await in_db_thread(record)
        return done

    # -- test rewards ------------------------------------------------------------------------

    async def test_reward(
        self,
        incentive_reference: str,
        *,
        email: str | None,
        first_name: str | None,
        response_id: str | None,
        response_values: dict[str, Any] | None,
        send_to: str | None,
        ip_address: str | None = None,
    ) -> TestReport:
        """Run the whole chain for one response without creating a reward or paying anyone.

        The email is rendered as the respondent would get it and sent to ``send_to`` (the
        person testing), marked as a test.
        """
        report = TestReport()
        signals: list[str] = []

        def inspect() -> tuple[Incentive, str | None, list[str]]:
            with self.factory() as session:
                incentive = get_incentive(session, incentive_reference)
                normalized = normalize_email(email)
                notes: list[str] = []
                if normalized:
                    rules = self._rules_of(incentive)
                    # What a real request's first read counts (it would be recorded too).
                    row = session.execute(
                        _context(False, bool(ip_address)),
                        {"ref": incentive.reference_id, "f_email": normalized, "f_ip": ip_address},
                    ).one()
                    found = count_findings(
                        rules, email_normalized=normalized,
                        ip_address=ip_address, participants=row.f_participants,
                        emails=row.f_emails,
                    )  # fmt: skip
                    signals.extend(found)
                    existing = session.scalar(
                        select(Reward.reference_id).where(
                            Reward.incentive_id == incentive.id,
                            or_(
                                Reward.email_normalized == normalized,
                                Reward.response_id == response_id
                                if response_id
                                else Reward.id.is_(None),
                            ),
                        )
                    )
                    if existing:
                        notes.append(
                            f"a real request would be skipped: already rewarded as {existing}"
                        )
                    findings = (
                        response_findings(response_values or {}, rules)
                        if response_values is not None
                        else []
                    )
                    notes.extend(f"would hold: {finding}" for finding in findings)
                return incentive, normalized, notes

        incentive, normalized, notes = await in_db_thread(inspect)
        if normalized is None:
            report.add("respondent email", False, NO_EMAIL_MESSAGE)
            return report
        report.add("respondent email", True, f"found {normalized}")
        duplicate = [n for n in notes if n.startswith("a real request")]
        report.add(
            "one reward per respondent",
            not duplicate,
            duplicate[0] if duplicate else "no earlier reward for this email or response",
        )
        holds = [n for n in notes if n.startswith("would hold")]
        if response_values is None:
            report.add("fraud rules", True, "no response values given: fraud fields not checked")
        else:
            report.add(
                "fraud rules",
                not holds,
                "; ".join(holds) if holds else "no fraud rule would hold it",
            )
        report.add(*_approval_step(incentive.approval_mode, signals))
        now = utcnow()
        window: list[str] = []
        if not incentive.active:
            window.append("the incentive is paused")
        if incentive.opens_at and now < incentive.opens_at:
            window.append(f"opens at {_fmt(incentive.opens_at)}")
        if incentive.closes_at and now >= incentive.closes_at:
            window.append(f"closed at {_fmt(incentive.closes_at)}")
        if incentive.max_rewards is not None and incentive.committed_count >= incentive.max_rewards:
            window.append(f"limit reached ({incentive.committed_count} of {incentive.max_rewards})")
        if incentive.budget_minor is not None and (
            incentive.committed_minor + incentive.amount_minor > incentive.budget_minor
        ):
            window.append(
                "budget exhausted ("
                f"{format_money(incentive.committed_minor, incentive.currency)} of "
                f"{format_money(incentive.budget_minor, incentive.currency)})"
            )
        report.add("limits and dates", not window, "; ".join(window) or "within limits and open")
        fake = Reward(
            id=0, reference_id="RW-TEST0000", incentive_id=incentive.id, email=email or "",
            email_normalized=normalized, first_name=first_name, amount_minor=incentive.amount_minor,
            currency=incentive.currency, provider=incentive.provider,
            external_ref_id=external_ref_id(incentive.reference_id, normalized),
        )  # fmt: skip
        provider = provider_named(incentive.provider, self.providers)
        try:
            delivery = await provider.preview(_order_request(fake, incentive))
            report.add(f"provider ({incentive.provider})", True, delivery.hint or "ready")
        except ProviderHold as hold:
            report.add(f"provider ({incentive.provider})", False, hold.reason)
            delivery = Delivery()
        except ProviderError as exc:
            report.add(f"provider ({incentive.provider})", False, exc.reason)
            delivery = Delivery()
        namespace = template_namespace(
            _template(incentive),
            reward_reference=fake.reference_id,
            email=normalized,
            first_name=first_name,
            amount_minor=incentive.amount_minor,
            currency=incentive.currency,
            delivery=delivery,
        )
        try:
            rendered = render_email(_template(incentive), send_to or normalized, namespace)
        except TemplateRenderError as exc:  # the incentive's to fix: shown, not raised
            report.add("email template", False, str(exc))
            return report
        report.add("email template", True, f"subject: {rendered.subject}")
        if send_to is None:
            report.add("test email", True, "not sent (no address to send the test to)")
        elif self.smtp is None:
            report.add("test email", False, EMAIL_NOT_CONFIGURED)
        else:
            test_email = type(rendered)(
                to=[send_to], subject=f"[TEST] {rendered.subject}",
                text="This is a test of a qualflow incentive; nobody was paid.\n"
                f"The respondent ({normalized}) would receive:\n\n{rendered.text}",
            )  # fmt: skip
            try:
                await send_email(
                    self.factory, self.smtp, f"reward-test:{uuid.uuid4().hex}", test_email
                )
                report.add(
                    "test email",
                    True,
                    f"sent to {send_to} only, marked as a test"
                    if normalize_email(send_to) == normalized
                    else f"sent to {send_to} only: the respondent ({normalized}) was not emailed",
                )
            except EmailError as exc:
                report.add("test email", False, str(exc))
        return report


def _approval_step(approval_mode: str, signals: list[str]) -> tuple[str, bool, str]:
    """The test report's "approval" step: whether a reviewer would have to release the reward
    (for the incentive's approval mode, and the suspicious patterns across requests)."""
    if approval_mode == "review_all":
        return (
            "approval", False,
            "would be held: this incentive reviews every reward before paying it "
            "(release it from the review queue)",
        )  # fmt: skip
    if not signals:
        return "approval", True, "nothing suspicious: it would be paid without review"
    found = "; ".join(signals)
    if approval_mode == "automatic":
        return "approval", True, f"paid automatically, with a warning: {found}"
    return "approval", False, f"would be held as suspicious: {found}"


class Fulfiller:
    """Pays approved rewards nobody is working on: released ones, retries, orphans.

    Runs in the web process (and may run in several: claims are leased). ``drain`` handles what
    is due now; ``run`` loops until stopped.
    """

    def __init__(self, service: RewardService, *, owner: str | None = None, batch: int = 50):
        self.service = service
        # Unique per instance: a lease is re-entrant for its owner, so two fulfillers must
        # never share one.
        self.owner = owner or f"fulfiller:{default_worker_id()}:{uuid.uuid4().hex[:8]}"
        self.batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def due(self) -> list[int]:
        now = utcnow()
        ready = Reward.next_attempt_at <= now
        if self.service.smtp is not None:
            # Paid by a process without email settings, whose backoff may be an hour away.
            ready = or_(ready, Reward.last_error == EMAIL_AWAITS_SETTINGS)
        with self.service.factory() as session:
            return list(
                session.scalars(
                    select(Reward.id)
                    .where(
                        Reward.status.in_(("approved", "ordered")),
                        Reward.next_attempt_at.is_not(None),
                        ready,
                        or_(Reward.lease_until.is_(None), Reward.lease_until < now),
                    )
                    .order_by(Reward.next_attempt_at)
                    .limit(self.batch)
                )
            )

    async def drain(self) -> int:
        """Fulfil every reward due now; returns how many were handled."""
        handled = 0
        tried: set[int] = set()
        while True:
            due = [
                reward_id for reward_id in await in_db_thread(self.due) if reward_id not in tried
            ]
            if not due:
                return handled
            for reward_id in due:
                tried.add(reward_id)
                try:
                    ended = await self.service.fulfil(reward_id, owner=self.owner)
                    if ended is not None and ended.status == "held":
                        # Not paid: a person has to act (fund the account, add codes, release).
                        held = "; ".join(ended.reasons) or "see the review queue"
                        log.warning(
                            "reward %s: %s", reward_id, f"{ended.reference_id} held: {held}"
                        )
                except (RewardRetry, RewardFailed) as exc:
                    log.warning("reward %s: %s", reward_id, exc)
                except Exception as exc:  # one reward must not stall the rest
                    log.exception("reward %s: fulfilling it failed", reward_id)
                    await in_db_thread(
                        self.service._retry_later,
                        reward_id,
                        f"unexpected error: {type(exc).__name__}: {exc}",
                    )
                handled += 1
            if len(due) < self.batch:
                return handled

    async def run(self, stop: asyncio.Event, *, interval: float = 5.0) -> None:
        """Drain whenever woken, and every ``interval`` seconds (first after one interval, so
        a process that starts and stops at once never touches the database from here)."""
        while not stop.is_set():
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            self._wake.clear()
            if stop.is_set():
                return
            try:
                await self.drain()
            except Exception:
                log.exception("fulfilling rewards failed; trying again shortly")


def _paid_already(session: Session, reward: Reward) -> str:
    """Why a manual reward marked paid cannot be marked again: when, by whom, what came next
    (its status alone, "ordered", would read as if it still awaited payment)."""
    assert reward.paid_at is not None
    marker = session.scalar(
        select(RewardTransition.actor)
        .where(
            RewardTransition.reward_id == reward.id,
            RewardTransition.reason.startswith("marked paid by "),
        )
        .order_by(RewardTransition.id.desc())
        .limit(1)
    )
    by = f" by {marker}" if marker else ""
    if reward.status == "sent":
        after = "its email was sent"
    elif reward.status == "ordered":
        after = "its email goes out next"
    else:
        after = f"it is {reward.status} now"
    return (
        f"{reward.reference_id} was marked paid already, on {reward.paid_at:%Y-%m-%d %H:%M} UTC"
        f"{by}; {after}"
    )
