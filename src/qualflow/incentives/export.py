"""Rewards as CSV: what finance needs to pay manual rewards by hand, or to reconcile."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime

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


#: What each column shows, read as these columns only: a reward's other columns (the encrypted
#: delivery above all, whose decryption cost more than the rest of a large export) are never
#: loaded.
_SELECTED = (
    Reward.reference_id, Reward.status, Reward.email, Reward.first_name, Reward.amount_minor,
    Reward.currency, Reward.response_id, Reward.survey_id, Reward.created_at, Reward.ordered_at,
    Reward.paid_at, Reward.sent_at, Reward.reasons,
)  # fmt: skip
#: Rows fetched from the database at a time, so a year's rewards are never all held at once.
_CHUNK = 2000


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def rewards_csv(
    session: Session, incentive: Incentive, statuses: Sequence[str] | None = None
) -> tuple[str, int]:
    """The incentive's rewards (optionally only some statuses) as CSV text, and their count."""
    query = select(*_SELECTED).where(Reward.incentive_id == incentive.id).order_by(Reward.id)
    if statuses:
        query = query.where(Reward.status.in_(list(statuses)))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    count = 0
    rows = session.execute(query.execution_options(yield_per=_CHUNK))
    for chunk in rows.partitions():
        count += len(chunk)
        writer.writerows(
            [
                _cell(text)
                for text in (
                    reference_id, status, email, first_name or "",
                    str(from_minor(amount_minor, currency)), currency, response_id or "",
                    survey_id or "", created_at.isoformat(), _when(ordered_at), _when(paid_at),
                    _when(sent_at), "; ".join(reasons or []),
                )
            ]
            for (
                reference_id, status, email, first_name, amount_minor, currency, response_id,
                survey_id, created_at, ordered_at, paid_at, sent_at, reasons,
            ) in chunk
        )  # fmt: skip
    return buffer.getvalue(), count
