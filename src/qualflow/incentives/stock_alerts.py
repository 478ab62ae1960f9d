"""Email the people who manage incentives (or those an incentive names in ``alert_emails``)
when an incentive cannot pay: a gift-code incentive runs low on codes or out of them, or a
Tango incentive holds rewards because its account's balance is too low.

Each incentive remembers the alert last sent (``stock_alert``: ``low``, ``out``, ``funds`` or
None). A check sends one email when an incentive falls below its threshold and another when it
runs out, and one when a Tango incentive first holds rewards for funds; the mark moves in the
same transaction as the email's outbox row, with a conditional UPDATE, so processes checking at
the same time send it once, and a crash cannot lose it. The mark clears at the first check that
finds the incentive fine again (codes imported; the rewards held for funds released), so the
next shortage is emailed again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from qualflow.accounts.models import User
from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.users import grants_for
from qualflow.incentives.manage import LowStock, low_stock
from qualflow.incentives.models import Incentive, Reward, TangoAccount
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
class StockAlert:
    shortage: LowStock | HeldForFunds
    level: str  # "low" or "out" (gift codes), "funds" (Tango)
    email_id: int


def held_for_funds(session: Session) -> list[HeldForFunds]:
    """Tango incentives with rewards held for insufficient balance (a top-up, then a release
    in the review queue, pays them), most held first."""
    rows = session.execute(
        select(Incentive.reference_id, Incentive.name, TangoAccount.name, Reward.reasons)
        .join(Reward, Reward.incentive_id == Incentive.id)
        .join(TangoAccount, TangoAccount.id == Incentive.tango_account_id)
        .where(Incentive.provider == "tango", Reward.status == "held")
    )
    held: dict[tuple[str, str, str], int] = {}
    for reference, name, account, reasons in rows:
        if any(str(reason).startswith(INSUFFICIENT_BALANCE) for reason in reasons or []):
            held[(reference, name, account)] = held.get((reference, name, account), 0) + 1
    found = [HeldForFunds(*key, held=count) for key, count in held.items()]
    return sorted(found, key=lambda f: (-f.held, f.incentive_name, f.reference_id))


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

    def recipients(self, reference: str) -> list[str]:
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

    def queue(self, shortage: LowStock | HeldForFunds, level: str, email: Email) -> StockAlert:
        key = f"{KEY_PREFIX}{shortage.reference_id}:{level}:{utcnow().isoformat()}"
        email_id = self.session.execute(
            insert(OutboxEmail)
            .values(**outbox_values(key, email, sender=self.sender, run_id=None))
            .returning(OutboxEmail.id)
        ).scalar_one()
        return StockAlert(shortage, level, int(email_id))


def record_alerts(
    factory: sessionmaker[Session],
    *,
    sender: str,
    providers_url: str,
    queue_url: str | None = None,
) -> list[StockAlert]:
    """Mark the incentives whose stock got worse since their last alert, and the Tango ones
    that newly hold rewards for want of funds, and queue one email for each (to the
    incentive's ``alert_emails``, or without them to every active person with Manage on
    incentives); clear the marks of those that are fine again. Returns the alerts queued.
    ``queue_url`` (the review queue's page) defaults to a sibling of ``providers_url``."""
    alerts: list[StockAlert] = []
    queue_url = queue_url or providers_url.rsplit("/", 1)[0] + "/review-queue"
    with session_scope(factory) as session:
        shortages = low_stock(session)
        needs = held_for_funds(session)
        short = [s.reference_id for s in shortages] + [n.reference_id for n in needs]
        session.execute(
            update(Incentive)
            .where(Incentive.stock_alert.is_not(None), Incentive.reference_id.not_in(short))
            .values(stock_alert=None)
        )
        alerting = _Alerting(session, sender, short)
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
            recipients = alerting.recipients(shortage.reference_id)
            if not recipients:
                log.warning("no one to email about: %s", shortage.message)
                continue
            email = _email(shortage, level, recipients, providers_url)
            alerts.append(alerting.queue(shortage, level, email))
        for need in needs:
            if not alerting.mark(need.reference_id, "funds", Incentive.stock_alert.is_(None)):
                continue  # emailed already; again once nothing is held for funds any more
            recipients = alerting.recipients(need.reference_id)
            if not recipients:
                log.warning("no one to email about: %s", need.message)
                continue
            alerts.append(alerting.queue(need, "funds", _funds_email(need, recipients, queue_url)))
    return alerts


async def alert_low_stock(
    factory: sessionmaker[Session],
    smtp: SmtpSettings | None,
    *,
    providers_url: str,
    queue_url: str | None = None,
) -> list[StockAlert]:
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


async def watch_stock(
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
            await alert_low_stock(
                factory, smtp, providers_url=providers_url, queue_url=queue_url
            )
        except Exception:
            log.exception("the stock check failed; trying again in %.0f s", interval)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
