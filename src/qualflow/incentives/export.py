"""Rewards as CSV: what finance needs to pay manual rewards by hand, or to reconcile."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from qualflow.incentives.models import Incentive, Reward
from qualflow.incentives.money import from_minor

COLUMNS = (
    "reward", "status", "email", "first_name", "amount", "currency", "response_id", "survey_id",
    "created_at", "ordered_at", "paid_at", "sent_at", "reasons",
)  # fmt: skip


#: A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """Text as a spreadsheet shows it, never runs it: names and emails come from respondents,
    and a first name of ``=HYPERLINK(...)`` would otherwise be a live formula in finance's
    sheet. A leading apostrophe makes the cell literal text (OWASP's advice)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def rewards_csv(
    session: Session, incentive: Incentive, statuses: Sequence[str] | None = None
) -> tuple[str, int]:
    """The incentive's rewards (optionally only some statuses) as CSV text, and their count."""
    query = select(Reward).where(Reward.incentive_id == incentive.id).order_by(Reward.id)
    if statuses:
        query = query.where(Reward.status.in_(list(statuses)))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    count = 0
    for reward in session.scalars(query):
        count += 1
        writer.writerow(
            _cell(text)
            for text in (
                reward.reference_id,
                reward.status,
                reward.email,
                reward.first_name or "",
                str(from_minor(reward.amount_minor, reward.currency)),
                reward.currency,
                reward.response_id or "",
                reward.survey_id or "",
                reward.created_at.isoformat(),
                reward.ordered_at.isoformat() if reward.ordered_at else "",
                reward.paid_at.isoformat() if reward.paid_at else "",
                reward.sent_at.isoformat() if reward.sent_at else "",
                "; ".join(reward.reasons or []),
            )
        )
    return buffer.getvalue(), count
