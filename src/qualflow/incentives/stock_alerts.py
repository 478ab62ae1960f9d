"""Email the people who manage incentives (or those an incentive names in ``alert_emails``)
when an open gift-code incentive runs low on codes.

Each incentive remembers the alert last sent (``stock_alert``: ``low``, ``out`` or None). A check
sends one email when an incentive falls below its threshold and another when it runs out; the
mark moves in the same transaction as the email's outbox row, with a conditional UPDATE, so
processes checking at the same time send it once, and a crash cannot lose it. Importing codes
clears the mark at the next check, so the next shortage is emailed again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from qualflow.accounts.models import User
from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.users import grants_for
from qualflow.incentives.manage import LowStock, low_stock
from qualflow.incentives.models import Incentive
from qualflow.notify.email import Email, SmtpSettings, drain_outbox, outbox_values
from qualflow.notify.models import OutboxEmail
from qualflow.store.base import utcnow
from qualflow.store.db import session_scope

log = logging.getLogger(__name__)

KEY_PREFIX = "stock-alert:"


@dataclass(frozen=True)
class StockAlert:
    shortage: LowStock
    level: str  # "low" or "out"
    email_id: int


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


def record_alerts(
    factory: sessionmaker[Session], *, sender: str, providers_url: str
) -> list[StockAlert]:
    """Mark the incentives whose stock got worse since their last alert and queue one email
    for each (to the incentive's ``alert_emails``, or without them to every active person with
    Manage on incentives); clear the marks of those whose stock is fine again. Returns the
    alerts queued."""
    alerts: list[StockAlert] = []
    with session_scope(factory) as session:
        shortages = low_stock(session)
        short = [s.reference_id for s in shortages]
        session.execute(
            update(Incentive)
            .where(Incentive.stock_alert.is_not(None), Incentive.reference_id.not_in(short))
            .values(stock_alert=None)
        )
        chosen: dict[str, list[str] | None] = {
            reference: emails
            for reference, emails in session.execute(
                select(Incentive.reference_id, Incentive.alert_emails).where(
                    Incentive.reference_id.in_(short)
                )
            )
        }
        managers: list[str] | None = None
        for shortage in shortages:
            level = "low" if shortage.unused else "out"
            worse = (
                Incentive.stock_alert.is_(None)
                if level == "low"
                else or_(Incentive.stock_alert.is_(None), Incentive.stock_alert == "low")
            )
            claimed = session.execute(
                update(Incentive)
                .where(and_(Incentive.reference_id == shortage.reference_id, worse))
                .values(stock_alert=level)
            ).rowcount  # type: ignore[attr-defined]
            if not claimed:
                if level == "low":
                    # Out before, some codes imported since: low again, which was emailed.
                    session.execute(
                        update(Incentive)
                        .where(
                            Incentive.reference_id == shortage.reference_id,
                            Incentive.stock_alert == "out",
                        )
                        .values(stock_alert="low")
                    )
                continue
            recipients = chosen.get(shortage.reference_id)
            if not recipients:
                if managers is None:
                    managers = _managers(session)
                recipients = managers
            if not recipients:
                log.warning("no one to email about: %s", shortage.message)
                continue
            key = f"{KEY_PREFIX}{shortage.reference_id}:{level}:{utcnow().isoformat()}"
            email = _email(shortage, level, recipients, providers_url)
            email_id = session.execute(
                insert(OutboxEmail)
                .values(**outbox_values(key, email, sender=sender, run_id=None))
                .returning(OutboxEmail.id)
            ).scalar_one()
            alerts.append(StockAlert(shortage, level, int(email_id)))
    return alerts


async def alert_low_stock(
    factory: sessionmaker[Session], smtp: SmtpSettings | None, *, providers_url: str
) -> list[StockAlert]:
    """One check: queue the alerts due, then send every stock alert still pending (these and
    any an earlier check could not send)."""
    sender = smtp.sender if smtp is not None else SmtpSettings.sender
    alerts = await asyncio.to_thread(
        record_alerts, factory, sender=sender, providers_url=providers_url
    )
    for alert in alerts:
        log.warning("stock alert queued: %s", alert.shortage.message)
    if smtp is not None:
        await drain_outbox(factory, smtp, key_prefix=KEY_PREFIX)
    return alerts


async def watch_stock(
    factory: sessionmaker[Session],
    smtp: SmtpSettings | None,
    stop: asyncio.Event,
    *,
    providers_url: str,
    interval: float = 60.0,
) -> None:
    """Check every ``interval`` seconds until ``stop`` is set (a failed check is logged)."""
    while not stop.is_set():
        try:
            await alert_low_stock(factory, smtp, providers_url=providers_url)
        except Exception:
            log.exception("the stock check failed; trying again in %.0f s", interval)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
