"""The rewards CSV reads only the columns it writes: never the encrypted delivery, which it
does not show and whose decryption made a year's export seconds slower; and its file is byte
for byte the one the export wrote when it loaded whole rewards (that implementation is kept
below as the oracle)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from qualflow.incentives.export import COLUMNS, rewards_csv
from qualflow.incentives.ids import new_incentive_reference, new_reward_reference
from qualflow.incentives.models import Incentive, Reward
from qualflow.incentives.money import from_minor
from qualflow.store.secrets import SecretBox
from tests.incentives.support import Db

# --- the export as it was (loading every reward whole), only as an oracle ----------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _oracle_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _oracle_csv(
    session: Session, incentive: Incentive, statuses: Sequence[str] | None = None
) -> tuple[str, int]:
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
            _oracle_cell(text)
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


# --- data: every kind of value a cell can hold ----------------------------------------------------

_AT = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def _incentive(currency: str = "USD") -> Incentive:
    return Incentive(
        reference_id=new_incentive_reference(), name="Study", provider="manual",
        amount_minor=1000, currency=currency, email_subject="s", email_body="b", fraud_rules={},
    )  # fmt: skip


def _reward(incentive: Incentive, n: int, **values: Any) -> Reward:
    email = values.pop("email", f"person{n}@example.org")
    fields: dict[str, Any] = {
        "reference_id": new_reward_reference(), "incentive_id": incentive.id, "email": email,
        "email_normalized": email.lower(), "source": "automation", "requested_by": "test",
        "amount_minor": 1000, "currency": "USD", "provider": "manual",
        "created_at": _AT + timedelta(minutes=n),
    }  # fmt: skip
    fields.update(values)
    return Reward(**fields)


def _every_kind(incentive: Incentive) -> list[Reward]:
    later = _AT + timedelta(days=2)
    # fmt: off
    return [
        # everything present, a secret delivery, several reasons
        _reward(
            incentive,
            1,
            status="sent",
            first_name="Ada",
            response_id="R_1",
            survey_id="SV_1",
            amount_minor=1050,
            ordered_at=later,
            paid_at=later + timedelta(hours=1),
            sent_at=later + timedelta(hours=2),
            reasons=["too fast", "same IP"],
            delivery='{"code": "SECRET-1"}',
            delivery_hint="code ending 1",
        ),
        # everything optional missing; reasons JSON null, then an empty list
        _reward(incentive, 2, status="pending", first_name=None, reasons=None),
        _reward(incentive, 3, status="held", first_name="", reasons=[], delivery=None),
        # cells a spreadsheet would run as formulas, from respondents and from the code
        _reward(
            incentive,
            4,
            status="held",
            email="+1@example.org",
            first_name="=HYPERLINK(1)",
            response_id="-R_4",
            survey_id="@SV_4",
            reasons=["=cmd", "ok"],
            delivery="secret 4",
        ),
        _reward(incentive, 5, status="approved", first_name="\tTab", reasons=["\rreturn"]),
        _reward(incentive, 6, status="ordered", first_name="-minus", ordered_at=later),
        # what CSV quotes: commas, quotes, new lines, and text beyond ASCII
        _reward(
            incentive,
            7,
            status="failed",
            first_name='Zoë "Z", jr.\nsecond line',
            reasons=["a; b", 'quote "x"', "line\nbreak"],
            delivery="secret 7",
        ),
        # amounts in currencies with 0 and 3 decimals, and a large one
        _reward(incentive, 8, status="sent", amount_minor=500, currency="JPY", sent_at=later),
        _reward(incentive, 9, status="blocked", amount_minor=12345, currency="KWD"),
        _reward(incentive, 10, status="cancelled", amount_minor=2_000_000_001, paid_at=later),
    ]
    # fmt: on


@pytest.fixture
def rewarded(db: Db) -> Iterator[tuple[Db, int]]:
    with db.sessionmaker() as session:
        incentive, other = _incentive(), _incentive()
        session.add_all([incentive, other])
        session.flush()
        session.add_all(_every_kind(incentive))
        session.add(_reward(other, 1, status="sent", delivery="another incentive's"))
        session.commit()
        yield db, incentive.id


#: A status filter, and how many of the rewards above it keeps.
_FILTERS: list[tuple[list[str] | None, int]] = [
    (None, 10),
    ([], 10),
    (["held"], 2),
    (["sent", "cancelled", "pending"], 4),
]


@pytest.mark.parametrize(("statuses", "kept"), _FILTERS)
def test_the_csv_is_byte_for_byte_the_one_whole_rewards_gave(
    rewarded: tuple[Db, int], statuses: list[str] | None, kept: int
) -> None:
    db, incentive_id = rewarded
    with db.sessionmaker() as session:
        incentive = session.get_one(Incentive, incentive_id)
        expected = _oracle_csv(session, incentive, statuses)
    with db.sessionmaker() as session:
        got = rewards_csv(session, session.get_one(Incentive, incentive_id), statuses)
    assert got == expected
    assert expected[1] == kept


def test_the_data_covers_every_kind_of_cell(rewarded: tuple[Db, int]) -> None:
    """The comparison above means something: formulas escaped, empty dates, joined reasons."""
    db, incentive_id = rewarded
    with db.sessionmaker() as session:
        text, count = rewards_csv(session, session.get_one(Incentive, incentive_id))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert count == len(rows) == 10
    assert rows[0]["amount"] == "10.50"
    assert rows[0]["reasons"] == "too fast; same IP"
    assert rows[1]["first_name"] == ""
    assert rows[1]["paid_at"] == ""
    assert rows[1]["reasons"] == ""
    assert rows[3]["first_name"] == "'=HYPERLINK(1)"
    assert rows[3]["email"] == "'+1@example.org"
    assert rows[3]["reasons"] == "'=cmd; ok"
    assert rows[7]["amount"] == "500"
    assert rows[8]["amount"] == "12.345"
    assert rows[0]["created_at"] == (_AT + timedelta(minutes=1)).isoformat()
    assert rows[0]["sent_at"]
    assert rows[1]["ordered_at"] == rows[1]["sent_at"] == ""


def test_the_export_never_reads_the_encrypted_delivery(
    rewarded: tuple[Db, int], secret_box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, incentive_id = rewarded
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def poisoned(*_args: Any, **_kwargs: Any) -> str:
        raise AssertionError("the export decrypted an encrypted column")

    with db.sessionmaker() as session:
        incentive = session.get_one(Incentive, incentive_id)
        expected = _oracle_csv(session, incentive)
    # The box the encrypted columns decrypt with, looked up on every value read.
    monkeypatch.setattr(secret_box, "decrypt", poisoned)
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.sessionmaker() as session:
            got = rewards_csv(session, session.get_one(Incentive, incentive_id))
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert got == expected
    reward_reads = [s for s in statements if re.search(r"\bFROM rewards\b", s)]
    assert reward_reads, statements
    for statement in reward_reads:
        assert not re.search(r"\brewards\.delivery\b", statement), statement
