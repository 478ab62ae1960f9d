"""Gift codes: pools of pre-bought codes imported from CSV, each claimed by exactly one reward.

A claim is one statement: ``UPDATE gift_codes SET reward_id = … WHERE id = (SELECT … LIMIT 1
FOR UPDATE SKIP LOCKED) RETURNING …``, its SELECT reading the partial index of unclaimed codes.
On PostgreSQL, workers claiming at once skip each other's locked rows instead of queueing behind
them; SQLite runs writers one at a time, so the same statement (without the lock clause, which
it does not support) is atomic there too. The unique ``reward_id`` column makes a second claim
by the same reward impossible.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qualflow.incentives.models import GiftCode, GiftCodePool
from qualflow.incentives.money import (
    MoneyError,
    check_currency,
    check_stored,
    format_money,
    to_minor,
)
from qualflow.incentives.providers.base import (
    Credential,
    Delivery,
    OrderRequest,
    ProviderError,
    ProviderHealth,
    ProviderHold,
    ResolvedValue,
    RewardProvider,
    ValueRefused,
)
from qualflow.store.base import utcnow
from qualflow.store.secrets import mask

CSV_COLUMNS = ("code", "value", "currency", "expiry")
#: Header names that mean an expiry by another name ("expiration", "valid until", "end date").
_EXPIRY_LIKE = re.compile(r"expir|valid|(?<![a-z])date(?![a-z])")
MAX_CODE_LENGTH = 500
#: The largest CSV the API and the pages import: bigger ones outlast a request (split them).
MAX_IMPORT_MB = 20
MAX_IMPORT_BYTES = MAX_IMPORT_MB * 1024 * 1024


def code_hash(pool_id: int, code: str) -> str:
    return hashlib.sha256(f"{pool_id}:{code}".encode()).hexdigest()


# --- import ---------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did: codes added, duplicates skipped, and every rejected line with why."""

    imported: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    line: int
    code: str
    value_minor: int
    currency: str
    expires_on: date | None


def parse_codes_csv(text: str) -> tuple[list[_Row], list[str]]:
    """Parse ``code,value,currency,expiry`` (header required; expiry optional, YYYY-MM-DD, not
    in the past).

    Raises ``ValueError`` for a file that is not such a CSV; returns the rejected lines' reasons.
    """
    # newline="": the csv module reads line ends itself (a lone \r is one, as spreadsheets write).
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        return _parse_rows(reader)
    except csv.Error as exc:
        raise ValueError(f"the CSV cannot be read after line {reader.line_num}: {exc}") from None


def _parse_rows(reader: csv.DictReader[str]) -> tuple[list[_Row], list[str]]:
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if not header:
        raise ValueError("the CSV is empty: it needs a header row code,value,currency[,expiry]")
    missing = [name for name in ("code", "value", "currency") if name not in header]
    if missing:
        for separator, called in ((";", "semicolons"), ("\t", "tabs")):
            # One column whose name holds them all: a spreadsheet saved in its locale's format.
            if {"code", "value", "currency"} <= {
                name.strip() for cell in header for name in cell.split(separator)
            }:
                raise ValueError(
                    f"the CSV's columns are separated by {called}, not commas: save it as "
                    "comma-separated (code,value,currency[,expiry])"
                )
        raise ValueError(
            "the CSV needs a header row with code,value,currency[,expiry]; missing: "
            + ", ".join(missing)
        )
    if "expiry" not in header:
        dated = next((name for name in header if _EXPIRY_LIKE.search(name)), None)
        if dated is not None:
            # Ignored, its dates would be lost: codes given out after they lapse.
            raise ValueError(
                f"the column {dated!r} is not read: name the column of expiry dates 'expiry' "
                "(YYYY-MM-DD), or remove it"
            )
    # csv.DictReader keeps a repeated column's last cell: the other would be dropped unseen.
    repeated = next((name for name in CSV_COLUMNS if header.count(name) > 1), None)
    if repeated is not None:
        raise ValueError(f"the header names the column {repeated} twice; keep one")
    reader.fieldnames = header
    rows: list[_Row] = []
    errors: list[str] = []
    today = utcnow().date()
    required = [name for name in header if name in ("code", "value", "currency")]
    while True:
        number = reader.line_num + 1  # where the record starts (a quoted cell may span lines)
        try:
            record = next(reader)
        except StopIteration:
            break
        code = (record.get("code") or "").strip()
        # Cells past the header's columns come as one list (under the key None).
        cells = [c for v in record.values() for c in (v if isinstance(v, list) else [v or ""])]
        if not code and not any(cell.strip() for cell in cells):
            continue  # blank line
        try:
            if reader.line_num > number:
                raise ValueError(
                    f"a quoted cell runs over lines {number}-{reader.line_num}: "
                    'is a closing quote (") missing?'
                )
            short = [name for name in required if record.get(name) is None]
            if short:
                given = sum(1 for k, v in record.items() if k is not None and v is not None)
                raise ValueError(
                    f"the row has {given} cell(s), too few for the header's "
                    f"{', '.join(header)} (missing: {', '.join(short)})"
                )
            if not code:
                raise ValueError("the code is empty")
            if len(code) > MAX_CODE_LENGTH:
                raise ValueError(f"the code is longer than {MAX_CODE_LENGTH} characters")
            control = next((char for char in code if unicodedata.category(char) == "Cc"), None)
            if control is not None:
                # PostgreSQL refuses NUL in text, and no respondent could type the others.
                raise ValueError(
                    f"the code contains a control character (U+{ord(control):04X}); "
                    "codes are printable text"
                )
            currency = check_currency(record.get("currency") or "")
            value_minor = check_stored(
                to_minor((record.get("value") or "").strip(), currency), currency
            )
            if value_minor <= 0:
                raise ValueError("the value must be positive")
            expiry_text = (record.get("expiry") or "").strip()
            expires_on = _expiry(expiry_text) if expiry_text else None
            if expires_on is not None and expires_on < today:
                # It could never be given out: stored, it would only pad the stock's figures.
                raise ValueError(f"the code expired on {expires_on.isoformat()}")
        except (ValueError, MoneyError) as exc:
            errors.append(f"line {number}: {exc}")
            continue
        rows.append(_Row(number, code, value_minor, currency, expires_on))
    return rows, errors


def _expiry(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"the expiry {text!r} is not a date as YYYY-MM-DD") from None


def import_codes(session: Session, pool: GiftCodePool, text: str) -> ImportReport:
    """Add the codes of a CSV to ``pool`` (caller commits).

    A code already in the pool, or earlier in the file, is skipped as a duplicate when its
    value, currency and expiry are the same; when they differ the line is rejected, naming
    both, so that a corrected value is never dropped unseen."""
    rows, errors = parse_codes_csv(text)
    report = ImportReport(errors=errors)
    stored = {
        digest: _terms(value_minor, currency, expires_on)
        for digest, value_minor, currency, expires_on in session.execute(
            select(
                GiftCode.code_hash, GiftCode.value_minor, GiftCode.currency, GiftCode.expires_on
            ).where(GiftCode.pool_id == pool.id)
        )
    }
    in_file: dict[str, _Row] = {}
    now = utcnow()
    batch: list[dict[str, Any]] = []
    for row in rows:
        digest = code_hash(pool.id, row.code)
        terms = _terms(row.value_minor, row.currency, row.expires_on)
        earlier = in_file.get(digest)
        known = stored.get(digest)
        if earlier is not None:
            known = _terms(earlier.value_minor, earlier.currency, earlier.expires_on)
        if known is not None:
            if known == terms:
                report.duplicates += 1
            else:
                where = "already in the pool" if earlier is None else f"on line {earlier.line}"
                report.errors.append(
                    f"line {row.line}: the code is {where} as {known}; this line says {terms}"
                )
            continue
        in_file[digest] = row
        batch.append(
            {"pool_id": pool.id, "code": row.code, "code_hash": digest, "last4": row.code[-4:],
             "value_minor": row.value_minor, "currency": row.currency,
             "expires_on": row.expires_on, "imported_at": now}
        )  # fmt: skip
        if len(batch) == _INSERT_BATCH:
            _insert(session, batch)
        report.imported += 1
    _insert(session, batch)
    report.errors.sort(key=_line_number)
    return report


#: Codes per INSERT statement batch: one ORM object per code cost ~10x the time of the rows.
_INSERT_BATCH = 5_000


def _insert(session: Session, batch: list[dict[str, Any]]) -> None:
    """Insert the batch's codes (encrypted by the column type, as ORM objects would be)."""
    if batch:
        session.execute(insert(GiftCode), batch)
        batch.clear()


def _terms(value_minor: int, currency: str, expires_on: date | None) -> str:
    """A code's value and expiry as a person compares them."""
    expiry = "never expiring" if expires_on is None else f"expiring {expires_on.isoformat()}"
    return f"{format_money(value_minor, currency)}, {expiry}"


def _line_number(error: str) -> int:
    """The line an import error names (each starts "line N: "), to list them in file order."""
    return int(error.split(":", 1)[0].removeprefix("line "))


# --- stock and claims -----------------------------------------------------------------------------


def available(pool_id: Any, value_minor: Any, currency: Any, today: date) -> list[Any]:
    """The conditions on a usable code: in the pool, of this value and currency, unused and
    unexpired. Each of the first three may be a value or a column (e.g. the incentive's, to
    count every incentive's stock in one query)."""
    return [
        GiftCode.pool_id == pool_id,
        GiftCode.currency == currency,
        GiftCode.value_minor == value_minor,
        GiftCode.reward_id.is_(None),
        (GiftCode.expires_on.is_(None)) | (GiftCode.expires_on >= today),
    ]


def stock(session: Session, pool_id: int, value_minor: int, currency: str) -> int:
    """Unused, unexpired codes of this value in the pool."""
    today = utcnow().date()
    count = session.scalar(
        select(func.count())
        .select_from(GiftCode)
        .where(*available(pool_id, value_minor, currency, today))
    )
    return int(count or 0)


def claim_code(
    session: Session,
    pool_id: int,
    value_minor: int,
    currency: str,
    reward_id: int,
    *,
    new_reward: bool = False,
) -> GiftCode | None:
    """Give ``reward_id`` one unused code (its own if it already has one); caller commits.

    ``new_reward``: the reward was created in this transaction, so it has no code yet."""
    if not new_reward:
        own = session.scalar(select(GiftCode).where(GiftCode.reward_id == reward_id))
        if own is not None:
            return own
    now = utcnow()
    row = session.execute(
        _CLAIM,
        {
            "c_pool": pool_id, "c_value": value_minor, "c_currency": currency,
            "c_today": now.date(), "c_reward": reward_id, "c_now": now,
        },
    ).first()  # fmt: skip
    # A plain object: the caller reads it, nothing writes through it.
    return GiftCode(**row._mapping) if row is not None else None


_CODES: Table = GiftCode.__table__  # type: ignore[assignment]


def _first_unclaimed(*conditions: Any, order_by: Sequence[Any]) -> Any:
    """The id of the first unclaimed code of the pool, value and currency that meets
    ``conditions``, locked; rows other claims have locked are skipped, not waited for."""
    return (
        select(_CODES.c.id)
        .where(
            _CODES.c.pool_id == bindparam("c_pool"),
            _CODES.c.currency == bindparam("c_currency"),
            _CODES.c.value_minor == bindparam("c_value"),
            # Word for word the predicate of ix_gift_codes_unclaimed, so that index serves.
            _CODES.c.reward_id.is_(None),
            *conditions,
        )
        .order_by(*order_by)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )


# Built once: the claim runs for every reward, and building it cost more CPU than running it.
# Codes that expire are used first, soonest first, then those that never expire. Each probe is
# a range of ix_gift_codes_unclaimed read in index order, so a claim reads one entry (plus any
# locked by concurrent claims) whatever the size of the pool; expired codes sort before today
# and are never read. (One ORDER BY expires_on NULLS LAST with an OR would sort the pool.)
_CANDIDATE = func.coalesce(
    _first_unclaimed(
        _CODES.c.expires_on >= bindparam("c_today"),
        order_by=(_CODES.c.expires_on, _CODES.c.id),
    ),
    _first_unclaimed(_CODES.c.expires_on.is_(None), order_by=(_CODES.c.id,)),
)
_CLAIM = (
    update(_CODES)
    .where(_CODES.c.id == _CANDIDATE, _CODES.c.reward_id.is_(None))
    .values(reward_id=bindparam("c_reward"), claimed_at=bindparam("c_now"))
    .returning(*_CODES.c)
)
_POOLS: Table = GiftCodePool.__table__  # type: ignore[assignment]
# The claim of a new reward returns its pool's name too (for the email): no read of the pool.
_CLAIM_NAMED = (
    update(_CODES)
    .where(_CODES.c.id == _CANDIDATE, _CODES.c.reward_id.is_(None))
    .values(reward_id=bindparam("c_reward"), claimed_at=bindparam("c_now"))
    .returning(
        _CODES.c.id,
        _CODES.c.code,
        _CODES.c.expires_on,
        select(_POOLS.c.name)
        .where(_POOLS.c.id == _CODES.c.pool_id)
        .scalar_subquery()
        .label("pool"),
    )
)
_POOL_NAME = select(_POOLS.c.name).where(_POOLS.c.id == bindparam("c_pool"))


def _delivery(code: Any, pool_name: str, instructions: str) -> Delivery:
    """What the respondent gets for ``code`` (a claimed code: a GiftCode or its row)."""
    credentials = [Credential("Gift code", code.code)]
    if code.expires_on is not None:
        credentials.append(Credential("Expires", code.expires_on.isoformat(), "date"))
    return Delivery(
        credentials=tuple(credentials),
        redemption_instructions=instructions,
        reward_name=pool_name,
        provider_order_id=f"code-{code.id}",
        hint=f"code {mask(code.code) if len(code.code) >= 8 else '••••'}",
    )


class GiftCodeProvider(RewardProvider):
    """Rewards paid with codes from a pool, matched on value and currency."""

    name = "gift_codes"

    async def resolve_value(
        self,
        *,
        amount: Decimal | None,
        currency: str | None,
        utid: str | None,
        tango_account_id: int | None,
        gift_code_pool_id: int | None,
    ) -> ResolvedValue:
        if gift_code_pool_id is None:
            raise ValueRefused(
                "a gift-code incentive needs gift_code_pool_id", field="gift_code_pool_id"
            )
        if amount is None or currency is None:
            raise ValueError("a gift-code incentive needs amount and currency")

        def load() -> GiftCodePool | None:
            with self.context.sessionmaker() as session:
                return session.get(GiftCodePool, gift_code_pool_id)

        pool = await asyncio.to_thread(load)
        if pool is None:
            raise ValueRefused(
                f"gift-code pool {gift_code_pool_id} does not exist", field="gift_code_pool_id"
            )
        try:
            code = check_currency(currency)
            return ResolvedValue(to_minor(amount, code), code, "gift code")
        except MoneyError as exc:
            raise ValueError(str(exc)) from None

    async def health(
        self,
        *,
        amount_minor: int,
        currency: str,
        utid: str | None,
        tango_account_id: int | None,
        gift_code_pool_id: int | None,
        low_stock_threshold: int,
    ) -> ProviderHealth:
        def measure() -> tuple[str | None, int, int]:
            with self.context.sessionmaker() as session:
                pool = session.get(GiftCodePool, gift_code_pool_id)
                if pool is None:
                    return None, 0, 0
                left = stock(session, pool.id, amount_minor, currency)
                soon = utcnow().date() + timedelta(days=30)
                expiring = session.scalar(
                    select(func.count())
                    .select_from(GiftCode)
                    .where(
                        GiftCode.pool_id == pool.id,
                        GiftCode.reward_id.is_(None),
                        GiftCode.expires_on.is_not(None),
                        GiftCode.expires_on >= utcnow().date(),
                        GiftCode.expires_on <= soon,
                    )
                )
                return pool.name, left, int(expiring or 0)

        name, left, expiring = await asyncio.to_thread(measure)
        if name is None:
            return ProviderHealth(ok=False, summary=f"gift-code pool {gift_code_pool_id} is gone")
        value = format_money(amount_minor, currency)
        health = ProviderHealth(
            ok=left > 0,
            summary=f"{left} unused {value} code(s) in pool {name!r}",
            stock=left,
            details={"pool": name, "expiring_within_30_days": expiring},
        )
        if left == 0:
            health.warnings.append(
                f"out of codes: pool {name!r} has no unused {value} code; rewards will be held"
            )
        elif left < low_stock_threshold:
            health.warnings.append(
                f"low stock: only {left} unused {value} code(s) left in pool {name!r} "
                f"(warning below {low_stock_threshold})"
            )
        if expiring:
            health.warnings.append(f"{expiring} unused code(s) expire within 30 days")
        return health

    def _claim(self, request: OrderRequest) -> tuple[GiftCode | None, str]:
        assert request.gift_code_pool_id is not None
        for _ in range(3):
            try:
                with self.context.sessionmaker() as session:
                    pool = session.get(GiftCodePool, request.gift_code_pool_id)
                    if pool is None:
                        raise ProviderError(
                            f"gift-code pool {request.gift_code_pool_id} no longer exists",
                            retriable=False,
                        )
                    code = claim_code(
                        session, pool.id, request.amount_minor, request.currency, request.reward_id
                    )
                    session.commit()
                    return code, pool.name
            except IntegrityError:
                # The same reward claimed concurrently elsewhere: read the code it got.
                continue
        raise ProviderError("could not claim a gift code (concurrent claims)", retriable=True)

    orders_in_session = True

    def order_in_session(self, session: Session | Connection, request: OrderRequest) -> Delivery:
        assert request.gift_code_pool_id is not None
        if request.new:
            return self._order_new(session, request)
        assert isinstance(session, Session), "a reward paid before needs a session"
        pool = session.get(GiftCodePool, request.gift_code_pool_id)
        if pool is None:
            raise ProviderError(
                f"gift-code pool {request.gift_code_pool_id} no longer exists", retriable=False
            )
        code = claim_code(
            session, pool.id, request.amount_minor, request.currency, request.reward_id,
            new_reward=request.new,
        )  # fmt: skip
        if code is None:
            raise ProviderHold(
                f"out of codes: pool {pool.name!r} has no unused "
                f"{format_money(request.amount_minor, request.currency)} code left"
            )
        return _delivery(code, pool.name, "")

    def _order_new(self, session: Session | Connection, request: OrderRequest) -> Delivery:
        """A reward created in this transaction (it has no code yet): one statement claims a
        code and names its pool; the pool is read only when no code was left."""
        now = utcnow()
        row = session.execute(
            _CLAIM_NAMED,
            {
                "c_pool": request.gift_code_pool_id, "c_value": request.amount_minor,
                "c_currency": request.currency, "c_today": now.date(),
                "c_reward": request.reward_id, "c_now": now,
            },
        ).first()  # fmt: skip
        if row is not None:
            return _delivery(row, row.pool, "")
        name = session.scalar(_POOL_NAME, {"c_pool": request.gift_code_pool_id})
        if name is None:
            raise ProviderError(
                f"gift-code pool {request.gift_code_pool_id} no longer exists", retriable=False
            )
        raise ProviderHold(
            f"out of codes: pool {name!r} has no unused "
            f"{format_money(request.amount_minor, request.currency)} code left"
        )

    async def order(self, request: OrderRequest) -> Delivery:
        code, pool_name = await asyncio.to_thread(self._claim, request)
        if code is None:
            raise ProviderHold(
                f"out of codes: pool {pool_name!r} has no unused "
                f"{format_money(request.amount_minor, request.currency)} code left"
            )
        return _delivery(code, pool_name, "")

    async def preview(self, request: OrderRequest) -> Delivery:
        def left() -> int:
            with self.context.sessionmaker() as session:
                assert request.gift_code_pool_id is not None
                return stock(
                    session, request.gift_code_pool_id, request.amount_minor, request.currency
                )

        if await asyncio.to_thread(left) == 0:
            raise ProviderHold(
                f"out of codes: no unused {format_money(request.amount_minor, request.currency)}"
                " code left"
            )
        return Delivery(
            credentials=(Credential("Gift code", "TEST-CODE-NOT-CLAIMED"),),
            hint="test reward: no code was claimed",
        )


def pools_with_stock(session: Session, pool_ids: Iterable[int]) -> dict[int, int]:
    """Unused, unexpired codes per pool (any value)."""
    today = utcnow().date()
    rows = session.execute(
        select(GiftCode.pool_id, func.count())
        .where(
            GiftCode.pool_id.in_(list(pool_ids)),
            GiftCode.reward_id.is_(None),
            (GiftCode.expires_on.is_(None)) | (GiftCode.expires_on >= today),
        )
        .group_by(GiftCode.pool_id)
    ).all()
    return {int(pool_id): int(count) for pool_id, count in rows}
