"""Email the people who manage incentives (or those an incentive names in ``alert_emails``)
when an incentive cannot pay: a gift-code incentive runs low on codes or out of them, a Tango
incentive holds rewards because its account's balance is too low, or an incentive holds
rewards because its max rewards or budget is used up.

Stock and funds: each incentive remembers the alert last sent (``stock_alert``: ``low``,
``out``, ``funds`` or None). A check sends one email when an incentive falls below its
threshold and another when it runs out, and one when a Tango incentive first holds rewards for
funds; the mark moves in the same transaction as the email's outbox row, with a conditional
UPDATE, so processes checking at the same time send it once, and a crash cannot lose it. The
mark clears at the first check that finds the incentive fine again (codes imported; the
rewards held for funds released), so the next shortage is emailed again.

Limits: one email per incentive and limit values (the outbox key names them, so a second
process finds it taken), when the limit is reached and rewards wait for it; a raised limit
that is reached again is news again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from qualflow.accounts.models import User
from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.users import grants_for
from qualflow.engine.dispatch_sql import dialect_insert
from qualflow.incentives.lifecycle import BUDGET_EXHAUSTED, LIMIT_REACHED
from qualflow.incentives.manage import LowStock, low_stock
from qualflow.incentives.models import Incentive, Reward, TangoAccount
from qualflow.incentives.money import format_money
from qualflow.incentives.providers.tango import INSUFFICIENT_BALANCE
from qualflow.notify.email import Email, SmtpSettings, drain_outbox, outbox_values
from qualflow.notify.models import OutboxEmail
from qualflow.store.base import utcnow
from qualflow.store.db import session_scope

log = logging.getLogger(__name__)

KEY_PREFIX = "stock-alert:"


@dataclass(frozen=True)
class HeldForFunds:
    """A Tango incentive with rewards held because its account's balance cannot pay them."""

    reference_id: str
    incentive_name: str
    account_name: str
    held: int

    @property
    def message(self) -> str:
        return (
            f"{self.held} reward(s) of {self.incentive_name} ({self.reference_id}) are held: "
            f"the Tango account “{self.account_name}” has too little balance to pay them"
        )


@dataclass(frozen=True)
class HeldByLimits:
    """An incentive with rewards held because its max rewards or budget is used up."""

    reference_id: str
    incentive_name: str
    max_rewards: int | None
    budget: str | None
    held: int

    @property
    def limits(self) -> str:
        parts = [f"{self.max_rewards} rewards" if self.max_rewards is not None else "",
                 f"a budget of {self.budget}" if self.budget is not None else ""]  # fmt: skip
        return " and ".join(p for p in parts if p) or "its limits"

    @property
    def message(self) -> str:
        return (
            f"{self.incentive_name} ({self.reference_id}) reached {self.limits}: "
            f"{self.held} more reward(s) are held"
        )


Shortage = LowStock | HeldForFunds | HeldByLimits
T = TypeVar("T", HeldForFunds, HeldByLimits)


@dataclass(frozen=True)
class Alert:
    shortage: Shortage
    level: str  # "low" or "out" (gift codes), "funds" (Tango), "limit" (max rewards, budget)
    email_id: int


def _held_for(
    session: Session, reasons: tuple[str, ...], columns: tuple[Any, ...], *filters: Any
) -> Counter[tuple[Any, ...]]:
    """Held rewards with a reason starting with one of ``reasons``, counted per value of
    ``columns`` (the incentive's, and what else the query joins; ``filters`` narrow it)."""
    rows = session.execute(
        select(*columns, Reward.reasons)
        .select_from(Incentive)
        .join(Reward, Reward.incentive_id == Incentive.id)
        .where(Reward.status == "held", *filters)
    )
    held: Counter[tuple[Any, ...]] = Counter()
    for *key, why in rows:
        if any(str(reason).startswith(reasons) for reason in why or []):
            held[tuple(key)] += 1
    return held


def _most_held(found: list[T]) -> list[T]:
    return sorted(found, key=lambda f: (-f.held, f.incentive_name, f.reference_id))


def held_for_funds(session: Session) -> list[HeldForFunds]:
    """Tango incentives with rewards held for insufficient balance (a top-up, then a release
    in the review queue, pays them), most held first."""
    held = _held_for(
        session,
        (INSUFFICIENT_BALANCE,),
        (Incentive.reference_id, Incentive.name, TangoAccount.name),
        Incentive.provider == "tango",
        TangoAccount.id == Incentive.tango_account_id,
    )
    return _most_held(
        [
            HeldForFunds(reference_id=reference, incentive_name=name, account_name=account,
                         held=count)
            for (reference, name, account), count in held.items()
        ]
    )  # fmt: skip


def held_by_limits(session: Session) -> list[HeldByLimits]:
    """Incentives whose max rewards or budget is used up now, with rewards held for it
    (raising the limit, then releasing them, pays them), most held first. Rewards held by a
    limit since raised do not count: they wait for a release, not for news."""
    reached = or_(
        and_(
            Incentive.max_rewards.is_not(None),
            Incentive.committed_count >= Incentive.max_rewards,
        ),
        and_(
            Incentive.budget_minor.is_not(None),
            Incentive.committed_minor + Incentive.amount_minor > Incentive.budget_minor,
        ),
    )
    held = _held_for(
        session,
        (LIMIT_REACHED, BUDGET_EXHAUSTED),
        (Incentive.reference_id, Incentive.name, Incentive.max_rewards,
         Incentive.budget_minor, Incentive.currency),
        reached,
    )  # fmt: skip
    return _most_held(
        [
            HeldByLimits(
                reference_id=reference,
                incentive_name=name,
                max_rewards=max_rewards,
                budget=format_money(budget, currency) if budget is not None else None,
                held=count,
            )
            for (reference, name, max_rewards, budget, currency), count in held.items()
        ]
    )


def _managers(session: Session) -> list[str]:
    """Active people allowed to import codes: those who can act on the alert."""
    people = session.scalars(select(User).where(User.active.is_(True)).order_by(User.id))
    return [p.email for p in people if grants_for(p).get(Area.INCENTIVES, 0) >= Level.MANAGE]


def _email(shortage: LowStock, level: str, to: list[str], providers_url: str) -> Email:
    if level == "out":
        subject = f"Out of gift codes: {shortage.incentive_name} ({shortage.reference_id})"
    else:
        subject = (
            f"Low on gift codes: {shortage.incentive_name} ({shortage.reference_id}), "
            f"{shortage.unused} left"
        )
    text = (
        f"{shortage.message}.\n\n"
        f"Import more {shortage.value} codes into the pool “{shortage.pool_name}” "
        f"(qualflow incentives pools import {shortage.pool_id} FILE.csv), or in the web UI:\n"
        f"{providers_url}\n"
    )
    return Email(to=to, subject=subject, text=text)


def _funds_email(need: HeldForFunds, to: list[str], queue_url: str) -> Email:
    subject = (
        f"Rewards held for Tango funds: {need.incentive_name} ({need.reference_id}), "
        f"{need.held} held"
    )
    text = (
        f"{need.message}.\n\n"
        f"Add funds to the Tango account, then release the held rewards in the review queue "
        f"(qualflow incentives rewards release REFERENCE…, or in the web UI):\n{queue_url}\n"
    )
    return Email(to=to, subject=subject, text=text)


def _limit_email(need: HeldByLimits, to: list[str], detail_url: str) -> Email:
    subject = (
        f"Limit reached: {need.incentive_name} ({need.reference_id}), {need.held} reward(s) held"
    )
    text = (
        f"{need.message}.\n\n"
        f"To pay them, raise the incentive's limits and release the held rewards; to refuse "
        f"them, block them. The incentive:\n{detail_url}\n"
    )
    return Email(to=to, subject=subject, text=text)


class _Alerting:
    """One check's transaction: whom to email (the incentive's ``alert_emails``, else every
    active manager), and the email queued with the incentive's mark."""

    def __init__(self, session: Session, sender: str, references: list[str]) -> None:
        self.session = session
        self.sender = sender
        self.chosen: dict[str, list[str] | None] = {
            reference: emails
            for reference, emails in session.execute(
                select(Incentive.reference_id, Incentive.alert_emails).where(
                    Incentive.reference_id.in_(references)
                )
            )
        }
        self._managers: list[str] | None = None

    def _recipients(self, reference: str) -> list[str]:
        chosen = self.chosen.get(reference)
        if chosen:
            return chosen
        if self._managers is None:
            self._managers = _managers(self.session)
        return self._managers

    def mark(self, reference: str, level: str, when: ColumnElement[bool]) -> bool:
        """Move the incentive's mark to ``level`` if ``when`` holds (once, across processes)."""
        return bool(
            self.session.execute(
                update(Incentive)
                .where(and_(Incentive.reference_id == reference, when))
                .values(stock_alert=level)
            ).rowcount  # type: ignore[attr-defined]
        )

    def queue(
        self,
        shortage: Shortage,
        level: str,
        compose: Callable[[list[str]], Email],
        *,
        once_as: str | None = None,
    ) -> list[Alert]:
        """Queue the email ``compose`` writes to the incentive's recipients; with ``once_as``,
        only if no alert was ever queued under that name. The alert queued, if any."""
        recipients = self._recipients(shortage.reference_id)
        if not recipients:
            log.warning("no one to email about: %s", shortage.message)
            return []
        key = f"{KEY_PREFIX}{shortage.reference_id}:{level}:{once_as or utcnow().isoformat()}"
        values = outbox_values(key, compose(recipients), sender=self.sender, run_id=None)
        statement = dialect_insert(self.session, OutboxEmail.__table__).values(**values)
        email_id = self.session.execute(
            statement.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(
                OutboxEmail.id
            )
        ).scalar()
        return [Alert(shortage, level, int(email_id))] if email_id is not None else []


def record_alerts(
    factory: sessionmaker[Session],
    *,
    sender: str,
    providers_url: str,
    queue_url: str | None = None,
) -> list[Alert]:
    """Mark the incentives whose stock got worse since their last alert, and the Tango ones
    that newly hold rewards for want of funds, and queue one email for each, and one for each
    limit newly reached while rewards wait for it (to the incentive's ``alert_emails``, or
    without them to every active person with Manage on incentives); clear the marks of those
    that are fine again. Returns the alerts queued.
    ``queue_url`` (the review queue's page) defaults to a sibling of ``providers_url``."""
    alerts: list[Alert] = []
    base_url = providers_url.rsplit("/", 1)[0]  # the incentives pages
    queue_url = queue_url or base_url + "/review-queue"
    with session_scope(factory) as session:
        shortages = low_stock(session)
        needs = held_for_funds(session)
        limits = held_by_limits(session)
        short = [s.reference_id for s in shortages] + [n.reference_id for n in needs]
        session.execute(
            update(Incentive)
            .where(Incentive.stock_alert.is_not(None), Incentive.reference_id.not_in(short))
            .values(stock_alert=None)
        )
        alerting = _Alerting(session, sender, short + [n.reference_id for n in limits])
        for shortage in shortages:
            level = "low" if shortage.unused else "out"
            worse = (
                Incentive.stock_alert.is_(None)
                if level == "low"
                else or_(Incentive.stock_alert.is_(None), Incentive.stock_alert == "low")
            )
            if not alerting.mark(shortage.reference_id, level, worse):
                if level == "low":
                    # Out before, some codes imported since: low again, which was emailed.
                    alerting.mark(shortage.reference_id, "low", Incentive.stock_alert == "out")
                continue
            compose = functools.partial(_email, shortage, level, providers_url=providers_url)
            alerts += alerting.queue(shortage, level, compose)
        for need in needs:
            if not alerting.mark(need.reference_id, "funds", Incentive.stock_alert.is_(None)):
                continue  # emailed already; again once nothing is held for funds any more
            compose = functools.partial(_funds_email, need, queue_url=queue_url)
            alerts += alerting.queue(need, "funds", compose)
        for limited in limits:
            # Once per incentive and limits: raising a limit makes the next time news again.
            detail_url = f"{base_url}/{limited.reference_id}"
            compose = functools.partial(_limit_email, limited, detail_url=detail_url)
            once_as = f"{limited.max_rewards}:{limited.budget}"
            alerts += alerting.queue(limited, "limit", compose, once_as=once_as)
    return alerts


async def send_due_alerts(
    factory: sessionmaker[Session],
    smtp: SmtpSettings | None,
    *,
    providers_url: str,
    queue_url: str | None = None,
) -> list[Alert]:
    """One check: queue the alerts due, then send every alert still pending (these and any an
    earlier check could not send)."""
    sender = smtp.sender if smtp is not None else SmtpSettings.sender
    alerts = await asyncio.to_thread(
        record_alerts, factory, sender=sender, providers_url=providers_url, queue_url=queue_url
    )
    for alert in alerts:
        log.warning("incentive alert queued: %s", alert.shortage.message)
    if smtp is not None:
        await drain_outbox(factory, smtp, key_prefix=KEY_PREFIX)
    return alerts


async def watch_alerts(
    factory: sessionmaker[Session],
    smtp: SmtpSettings | None,
    stop: asyncio.Event,
    *,
    providers_url: str,
    queue_url: str | None = None,
    interval: float = 60.0,
) -> None:
    """Check every ``interval`` seconds until ``stop`` is set (a failed check is logged)."""
    while not stop.is_set():
        try:
            await send_due_alerts(factory, smtp, providers_url=providers_url, queue_url=queue_url)
        except Exception:
            log.exception("the incentive alerts check failed; trying again in %.0f s", interval)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
