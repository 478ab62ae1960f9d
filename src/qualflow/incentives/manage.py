"""Managing incentives, Tango accounts and gift-code pools (what REST, CLI and UI call).

Saving an incentive resolves its value with its provider: a Tango item's face value or range is
checked against the live catalog, so a misconfigured incentive is refused on save rather than
failing on the first respondent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qualflow.incentives.ids import new_incentive_reference
from qualflow.incentives.models import (
    GiftCode,
    GiftCodePool,
    Incentive,
    Reward,
    TangoAccount,
)
from qualflow.incentives.money import MoneyError, check_stored, format_money, from_minor, to_minor
from qualflow.incentives.providers import ProviderContext, ProviderHealth, provider_named
from qualflow.incentives.providers.base import ProviderUnavailable
from qualflow.incentives.providers.gift_codes import ImportReport, available, import_codes
from qualflow.incentives.providers.tango import CatalogItem, TangoProvider
from qualflow.incentives.schemas import FraudRules, IncentivePatch, IncentiveSpec
from qualflow.incentives.service import get_incentive
from qualflow.store.base import utcnow
from qualflow.store.db import session_scope
from qualflow.validation import MAX_ID, describe_errors, refuse_credentials_in_url


class IncentiveError(ValueError):
    """An incentive (or account, pool) cannot be saved as given; the message says why, and
    ``field`` names the one field refused (None: a rule over several fields, or not known)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InUse(IncentiveError):
    """Deleting something still used (an incentive with rewards, a pool with incentives)."""


class NameTaken(IncentiveError):
    """Creating something under a name another of its kind has already (a conflict, not a
    field refused as such)."""


class IncentiveUnchecked(IncentiveError):
    """The provider could not be asked to check the incentive's value (Tango did not answer or
    refused the account's key): the fault is upstream, not in what was given."""


@dataclass
class IncentiveCounts:
    total: int = 0
    held: int = 0
    sent: int = 0
    awaiting: int = 0


def stored_settings(incentive: Incentive) -> dict[str, Any]:
    """The settings people edit, as stored (amounts in the currency's units): what the spec
    they edit and the API's view of an incentive both show."""
    return {
        "name": incentive.name,
        "description": incentive.description,
        "active": incentive.active,
        "provider": incentive.provider,
        "tango_account_id": incentive.tango_account_id,
        "utid": incentive.utid,
        "gift_code_pool_id": incentive.gift_code_pool_id,
        "amount": from_minor(incentive.amount_minor, incentive.currency),
        "currency": incentive.currency,
        "reward_name": incentive.reward_name,
        "email_subject": incentive.email_subject,
        "email_body": incentive.email_body,
        "redemption_instructions": incentive.redemption_instructions,
        "max_rewards": incentive.max_rewards,
        "budget": (
            from_minor(incentive.budget_minor, incentive.currency)
            if incentive.budget_minor is not None
            else None
        ),
        "opens_at": incentive.opens_at,
        "closes_at": incentive.closes_at,
        "approval_mode": incentive.approval_mode,
        "fraud_rules": FraudRules.model_validate(incentive.fraud_rules or {}),
        "low_stock_threshold": incentive.low_stock_threshold,
        "alert_emails": list(incentive.alert_emails or []),
    }


def spec_of(incentive: Incentive) -> IncentiveSpec:
    """The stored incentive as the spec people edit."""
    # An empty reward name means "the catalog item's or pool's name" in the spec.
    return IncentiveSpec(
        **{**stored_settings(incentive), "reward_name": incentive.reward_name or None}
    )


#: The longest platform key accepted (stored encrypted, so its column has no size of its own).
MAX_PLATFORM_KEY_LENGTH = 4096


def _column_length(model: type[Any], key: str) -> int | None:
    """The size of ``model``'s string column ``key`` (None: unbounded, or not a column)."""
    column = model.__table__.c.get(key)
    return getattr(column.type, "length", None) if column is not None else None


def check_tango_field(key: str, value: str) -> str:
    """A Tango account field as stored (trimmed; the base URL checked; the account id in lower
    case, Tango's own form of it), or :class:`IncentiveError` saying why not."""
    if not value.strip():
        raise IncentiveError(f"{key} must not be empty", field=key)
    limit = MAX_PLATFORM_KEY_LENGTH if key == "platform_key" else _column_length(TangoAccount, key)
    if limit is not None and len(value.strip()) > limit:
        raise IncentiveError(f"{key} is longer than {limit} characters", field=key)
    if key == "base_url":
        return check_base_url(value)
    return value.strip().lower() if key == "account_id" else value.strip()


def check_base_url(url: str) -> str:
    """A Tango API base URL as stored (no trailing slash), or :class:`IncentiveError`."""
    text = url.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (reading it refuses a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise IncentiveError(
            f"base_url must be an http:// or https:// URL with a host, "
            f"e.g. https://api.tangocard.com; not {shown_base_url(url)!r}",
            field="base_url",
        )
    if any(ch.isspace() for ch in text) or parts.query or parts.fragment:
        raise IncentiveError(
            "base_url must not hold spaces, a query (?…) or a fragment (#…)", field="base_url"
        )
    try:
        return refuse_credentials_in_url(text)
    except ValueError as exc:
        raise IncentiveError(f"base_url {exc}", field="base_url") from None


def shown_base_url(url: str) -> str:
    """A Tango base URL as shown to people: a password in it (user:password@), which only an
    account stored before such URLs were refused can hold, is masked."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
        parts = None
    if parts is None or password is None:
        if "@" in url and "://" in url:  # unparsable: hide whatever credentials there may be
            scheme, _, rest = url.partition("://")
            return f"{scheme}://***@{rest.rpartition('@')[2]}"
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


#: As long as an incentive's description may be (the column has no limit of its own).
MAX_POOL_DESCRIPTION = 5000
Row = TypeVar("Row")


def _incentives_matching(query: Select[Any], *, active: bool | None, q: str | None) -> Select[Any]:
    """``query`` narrowed to the incentives a list shows: active (or not) and whose name or
    reference contains ``q``."""
    if active is not None:
        query = query.where(Incentive.active == active)
    if q:
        pattern = f"%{q.strip().lower()}%"
        query = query.where(
            func.lower(Incentive.name).like(pattern)
            | func.lower(Incentive.reference_id).like(pattern)
        )
    return query


def _row(session: Session, model: type[Row], row_id: int) -> Row | None:
    """The row with this id, or None; also None for an id no row can have, which the database
    would refuse with an error instead (a UI or CLI id is not range-checked by the API)."""
    if not 1 <= row_id <= MAX_ID:
        return None
    return session.get(model, row_id)


class IncentiveManager:
    """CRUD for incentives and their providers' accounts and pools."""

    def __init__(self, factory: sessionmaker[Session], providers: ProviderContext | None = None):
        self.factory = factory
        self.providers = providers or ProviderContext(sessionmaker=factory)

    # -- incentives ------------------------------------------------------------------------------

    async def _resolve(self, spec: IncentiveSpec) -> dict[str, Any]:
        provider = provider_named(spec.provider, self.providers)
        try:
            value = await provider.resolve_value(
                amount=spec.amount,
                currency=spec.currency,
                utid=spec.utid,
                tango_account_id=spec.tango_account_id,
                gift_code_pool_id=spec.gift_code_pool_id,
            )
        except ValueError as exc:
            # The provider names the field it refuses (amount, utid, pool…) when it is one.
            raise IncentiveError(str(exc), field=getattr(exc, "field", None)) from None
        except ProviderUnavailable as exc:
            raise IncentiveUnchecked(str(exc)) from None
        try:
            check_stored(value.amount_minor, value.currency)
        except MoneyError as exc:
            raise IncentiveError(f"amount: {exc}", field="amount") from None
        budget_minor = None
        if spec.budget is not None:
            try:
                budget_minor = check_stored(to_minor(spec.budget, value.currency), value.currency)
            except ValueError as exc:
                raise IncentiveError(f"budget: {exc}", field="budget") from None
            if budget_minor < value.amount_minor:
                # A rule over budget and amount: no one field is named (no details).
                raise IncentiveError("the budget does not cover a single reward")
        return {
            "name": spec.name,
            "description": spec.description,
            "active": spec.active,
            "provider": spec.provider,
            "tango_account_id": spec.tango_account_id if spec.provider == "tango" else None,
            "utid": spec.utid if spec.provider == "tango" else None,
            "gift_code_pool_id": spec.gift_code_pool_id if spec.provider == "gift_codes" else None,
            "amount_minor": value.amount_minor,
            "currency": value.currency,
            "reward_name": spec.reward_name or value.reward_name,
            "email_subject": spec.email_subject,
            "email_body": spec.email_body,
            "redemption_instructions": spec.redemption_instructions
            or value.redemption_instructions,
            "max_rewards": spec.max_rewards,
            "budget_minor": budget_minor,
            "opens_at": spec.opens_at,
            "closes_at": spec.closes_at,
            "approval_mode": spec.approval_mode,
            "fraud_rules": spec.fraud_rules.model_dump(mode="json"),
            "low_stock_threshold": spec.low_stock_threshold,
            "alert_emails": spec.alert_emails,
        }

    async def create(self, spec: IncentiveSpec, *, actor: str) -> Incentive:
        """Validate against the provider and store; the reference id is generated."""
        values = await self._resolve(spec)

        def store() -> Incentive:
            for _ in range(10):
                try:
                    with session_scope(self.factory) as session:
                        incentive = Incentive(
                            reference_id=new_incentive_reference(),
                            created_by=actor,
                            committed_count=0,
                            committed_minor=0,
                            **values,
                        )
                        session.add(incentive)
                        session.flush()
                        return incentive
                except IntegrityError as exc:
                    if "reference_id" not in str(exc.orig):
                        raise IncentiveError(f"cannot save the incentive: {exc.orig}") from None
            raise IncentiveError("could not draw a unique reference id; try again")

        return await asyncio.to_thread(store)

    async def update(self, reference: str, patch: IncentivePatch, *, actor: str) -> Incentive:
        """Change the fields given; the result is validated like a new incentive."""
        incentive, _warnings = await self.update_with_warnings(reference, patch, actor=actor)
        return incentive

    async def update_with_warnings(
        self, reference: str, patch: IncentivePatch, *, actor: str
    ) -> tuple[Incentive, list[str]]:
        """:meth:`update`, and what the change means that the person making it should know
        (see :func:`limit_warnings`): the change is saved all the same."""

        def load() -> Incentive:
            with self.factory() as session:
                return get_incentive(session, reference)

        current = await asyncio.to_thread(load)
        merged = spec_of(current).model_dump()
        changes = patch.model_dump(exclude_unset=True)
        if "fraud_rules" in changes and changes["fraud_rules"] is None:
            changes["fraud_rules"] = FraudRules().model_dump()
        if "alert_emails" in changes and changes["alert_emails"] is None:
            changes["alert_emails"] = []  # the managers get the alerts again
        merged.update(changes)
        if (
            "amount" not in changes
            and current.provider == "tango"
            and ("utid" in changes or "tango_account_id" in changes)
        ):
            merged["amount"] = None  # a new item decides its own value unless one is given
        if current.provider == "tango" and (
            changes.get("utid", current.utid) != current.utid
            or changes.get("tango_account_id", current.tango_account_id) != current.tango_account_id
        ):
            await self._forget_catalog_texts(current, merged, changes)
        try:
            spec = IncentiveSpec.model_validate(merged)
        except ValidationError as exc:
            # One field refused is named; a rule over several (e.g. closes before it opens) not.
            locations = {error["loc"][:1] for error in exc.errors()}
            field = (
                str(next(iter(locations))[0])
                if len(locations) == 1 and () not in locations
                else None
            )
            raise IncentiveError(describe_errors(exc), field=field) from None
        values = await self._resolve(spec)

        def store() -> tuple[Incentive, list[str]]:
            with session_scope(self.factory) as session:
                incentive = get_incentive(session, reference)
                # Rewards keep the amount they were created with; limits count those amounts.
                for key, value in values.items():
                    setattr(incentive, key, value)
                incentive.updated_at = utcnow()
                # Judged against the counters as they are now: once the row is written (and
                # locked, on PostgreSQL, until the commit), they are read again.
                session.flush()
                session.refresh(incentive)
                warnings = limit_warnings(
                    incentive, max_rewards="max_rewards" in changes, budget="budget" in changes
                )
                return incentive, warnings

        return await asyncio.to_thread(store)

    async def _forget_catalog_texts(
        self, current: Incentive, merged: dict[str, Any], changes: dict[str, Any]
    ) -> None:
        """Clear the reward name and redemption instructions that came from the Tango item an
        incentive leaves (so the new item's are taken); ones a person wrote stay, as do both
        when the old item can no longer be read (nothing tells them apart then)."""
        try:
            old = await provider_named("tango", self.providers).resolve_value(
                amount=from_minor(current.amount_minor, current.currency),
                currency=current.currency,
                utid=current.utid,
                tango_account_id=current.tango_account_id,
                gift_code_pool_id=None,
            )
        except (ValueError, ProviderUnavailable):
            return
        if "reward_name" not in changes and current.reward_name == old.reward_name:
            merged["reward_name"] = None
        if (
            "redemption_instructions" not in changes
            and current.redemption_instructions == old.redemption_instructions
        ):
            merged["redemption_instructions"] = ""

    def get(self, reference: str) -> Incentive:
        with self.factory() as session:
            return get_incentive(session, reference)

    def list_incentives(
        self,
        *,
        active: bool | None = None,
        q: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Incentive]:
        """Incentives newest first (by creation, then id), all of them or the page of ``limit``
        at ``offset``."""
        query = (
            _incentives_matching(select(Incentive), active=active, q=q)
            .order_by(Incentive.created_at.desc(), Incentive.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.factory() as session:
            return list(session.scalars(query))

    def count_incentives(self, *, active: bool | None = None, q: str | None = None) -> int:
        query = select(func.count()).select_from(Incentive)
        with self.factory() as session:
            return session.scalar(_incentives_matching(query, active=active, q=q)) or 0

    def counts(self, incentive_ids: list[int]) -> dict[int, IncentiveCounts]:
        result = {incentive_id: IncentiveCounts() for incentive_id in incentive_ids}
        if not incentive_ids:
            return result
        with self.factory() as session:
            rows = session.execute(
                select(Reward.incentive_id, Reward.status, func.count())
                .where(Reward.incentive_id.in_(incentive_ids))
                .group_by(Reward.incentive_id, Reward.status)
            ).all()
        for incentive_id, status, count in rows:
            counts = result[int(incentive_id)]
            counts.total += int(count)
            if status == "held":
                counts.held += int(count)
            elif status == "sent":
                counts.sent += int(count)
            elif status in ("approved", "ordered"):
                counts.awaiting += int(count)
        return result

    def delete(self, reference: str) -> None:
        """Delete an incentive that has no rewards (pause it otherwise)."""
        with session_scope(self.factory) as session:
            incentive = get_incentive(session, reference)
            rewards = session.scalar(
                select(func.count()).select_from(Reward).where(Reward.incentive_id == incentive.id)
            )
            if rewards:
                raise InUse(
                    f"{incentive.reference_id} has {rewards} reward(s) and cannot be deleted; "
                    "pause it instead (CLI: update --paused; REST: active false)"
                )
            session.delete(incentive)

    async def health(self, incentive: Incentive) -> ProviderHealth:
        provider = provider_named(incentive.provider, self.providers)
        return await provider.health(
            amount_minor=incentive.amount_minor,
            currency=incentive.currency,
            utid=incentive.utid,
            tango_account_id=incentive.tango_account_id,
            gift_code_pool_id=incentive.gift_code_pool_id,
            low_stock_threshold=incentive.low_stock_threshold,
        )

    def low_stock(self) -> list[LowStock]:
        """See :func:`low_stock`."""
        with self.factory() as session:
            return low_stock(session)

    # -- Tango accounts --------------------------------------------------------------------------

    async def tango_catalog(self, account_id: int) -> list[CatalogItem]:
        """The items a Tango account can order. ``LookupError`` for an unknown account,
        ``TangoError`` when Tango refuses or cannot be reached."""
        try:
            return await TangoProvider(self.providers).catalog(account_id)
        except ValueError as exc:
            raise LookupError(str(exc)) from None

    def create_tango_account(
        self,
        *,
        name: str,
        base_url: str,
        platform_name: str,
        platform_key: str,
        customer_id: str,
        account_id: str,
    ) -> TangoAccount:
        given = {
            "base_url": base_url,
            "name": name,
            "platform_name": platform_name,
            "platform_key": platform_key,
            "customer_id": customer_id,
            "account_id": account_id,
        }
        fields = {key: check_tango_field(key, value) for key, value in given.items()}
        try:
            with session_scope(self.factory) as session:
                account = TangoAccount(**fields)
                session.add(account)
                session.flush()
                return account
        except IntegrityError:
            raise IncentiveError(
                f"a Tango account named {name!r} exists already", field="name"
            ) from None

    def update_tango_account(self, row_id: int, /, **changes: str | None) -> TangoAccount:
        """``changes`` may include ``account_id`` (Tango's own account identifier), hence the
        positional-only row id."""
        try:
            with session_scope(self.factory) as session:
                account = _row(session, TangoAccount, row_id)
                if account is None:
                    raise LookupError(f"Tango account {row_id} does not exist")
                for key, value in changes.items():
                    if value is None:
                        continue
                    setattr(account, key, check_tango_field(key, value))
                return account
        except IntegrityError:
            raise IncentiveError(
                f"a Tango account named {(changes.get('name') or '').strip()!r} exists already",
                field="name",
            ) from None

    def tango_accounts(self) -> list[TangoAccount]:
        with self.factory() as session:
            return list(session.scalars(select(TangoAccount).order_by(TangoAccount.name)))

    def delete_tango_account(self, account_id: int) -> None:
        with session_scope(self.factory) as session:
            account = _row(session, TangoAccount, account_id)
            if account is None:
                raise LookupError(f"Tango account {account_id} does not exist")
            users = session.scalar(
                select(func.count())
                .select_from(Incentive)
                .where(Incentive.tango_account_id == account_id)
            )
            if users:
                raise InUse(f"{users} incentive(s) use the Tango account {account.name!r}")
            session.delete(account)

    # -- gift-code pools -------------------------------------------------------------------------

    def create_pool(self, name: str, description: str = "") -> GiftCodePool:
        if not name.strip():
            raise IncentiveError("the pool needs a name", field="name")
        for field, text in (("name", name), ("description", description)):
            if "\x00" in text:  # PostgreSQL cannot store it
                raise IncentiveError(
                    f"the pool's {field} must not contain a NUL character", field=field
                )
        limit = _column_length(GiftCodePool, "name")
        if limit is not None and len(name.strip()) > limit:
            raise IncentiveError(f"the pool's name is longer than {limit} characters", field="name")
        if len(description) > MAX_POOL_DESCRIPTION:
            raise IncentiveError(
                f"the pool's description is longer than {MAX_POOL_DESCRIPTION} characters",
                field="description",
            )
        try:
            with session_scope(self.factory) as session:
                pool = GiftCodePool(name=name.strip(), description=description)
                session.add(pool)
                session.flush()
                return pool
        except IntegrityError:
            raise NameTaken(f"a gift-code pool named {name!r} exists already") from None

    def pools(self, *, limit: int | None = None, offset: int = 0) -> list[GiftCodePool]:
        """Gift-code pools by name (unique, so the order is the same on every page), all of them
        or the page of ``limit`` at ``offset``."""
        query = select(GiftCodePool).order_by(GiftCodePool.name).limit(limit).offset(offset)
        with self.factory() as session:
            return list(session.scalars(query))

    def count_pools(self) -> int:
        with self.factory() as session:
            return session.scalar(select(func.count()).select_from(GiftCodePool)) or 0

    def pool(self, pool_id: int) -> GiftCodePool:
        with self.factory() as session:
            pool = _row(session, GiftCodePool, pool_id)
            if pool is None:
                raise LookupError(f"gift-code pool {pool_id} does not exist")
            return pool

    def pool_stock(self, pool_id: int) -> list[dict[str, Any]]:
        """Per value and currency: unused, used and expired codes."""
        today = utcnow().date()
        with self.factory() as session:
            unused_column = GiftCode.reward_id.is_(None)
            rows = session.execute(
                select(
                    GiftCode.value_minor,
                    GiftCode.currency,
                    unused_column,
                    GiftCode.expires_on,
                    func.count(),
                )
                .where(GiftCode.pool_id == pool_id)
                .group_by(
                    GiftCode.value_minor, GiftCode.currency, unused_column, GiftCode.expires_on
                )
            ).all()
        summary: dict[tuple[int, str], dict[str, Any]] = {}
        for value_minor, currency, unused, expires_on, count in rows:
            expired = expires_on is not None and expires_on < today
            entry = summary.setdefault(
                (int(value_minor), str(currency)),
                {
                    "value": str(from_minor(int(value_minor), str(currency))),
                    "currency": currency,
                    "unused": 0,
                    "used": 0,
                    "expired": 0,
                },
            )
            if not unused:
                entry["used"] += int(count)
            elif expired:
                entry["expired"] += int(count)
            else:
                entry["unused"] += int(count)
        return sorted(summary.values(), key=lambda e: (e["currency"], Decimal(e["value"])))

    def import_codes(self, pool_id: int, csv_text: str) -> ImportReport:
        """Import a CSV into the pool; a code another import committed meanwhile (the same file
        sent twice at once) makes this one start over, and count it as a duplicate."""
        conflicts = 0
        while True:
            try:
                return self._import_once(pool_id, csv_text)
            except IntegrityError:
                conflicts += 1
                if conflicts == 3:
                    raise IncentiveError(
                        "other imports into this pool kept adding the same codes meanwhile; "
                        "import the file again"
                    ) from None

    def _import_once(self, pool_id: int, csv_text: str) -> ImportReport:
        with session_scope(self.factory) as session:
            pool = _row(session, GiftCodePool, pool_id)
            if pool is None:
                raise LookupError(f"gift-code pool {pool_id} does not exist")
            try:
                return import_codes(session, pool, csv_text)
            except ValueError as exc:
                raise IncentiveError(str(exc)) from None

    def delete_pool(self, pool_id: int) -> None:
        with session_scope(self.factory) as session:
            pool = _row(session, GiftCodePool, pool_id)
            if pool is None:
                raise LookupError(f"gift-code pool {pool_id} does not exist")
            users = session.scalar(
                select(func.count())
                .select_from(Incentive)
                .where(Incentive.gift_code_pool_id == pool_id)
            )
            if users:
                raise InUse(f"{users} incentive(s) use the pool {pool.name!r}")
            used = session.scalar(
                select(func.count())
                .select_from(GiftCode)
                .where(GiftCode.pool_id == pool_id, GiftCode.reward_id.is_not(None))
            )
            if used:
                raise InUse(f"{used} code(s) of {pool.name!r} were given to respondents")
            session.delete(pool)


@dataclass(frozen=True)
class LowStock:
    """An open gift-code incentive whose pool is running out of codes of its value."""

    reference_id: str
    incentive_name: str
    pool_id: int
    pool_name: str
    value: str
    unused: int
    threshold: int

    @property
    def message(self) -> str:
        if not self.unused:
            return (
                f"{self.incentive_name} ({self.reference_id}) is out of {self.value} codes in "
                f"pool “{self.pool_name}”: its rewards are held until codes are imported"
            )
        return (
            f"{self.incentive_name} ({self.reference_id}) has {self.unused} unused {self.value} "
            f"code(s) left in pool “{self.pool_name}” (warning below {self.threshold})"
        )


def low_stock(session: Session) -> list[LowStock]:
    """Open gift-code incentives with fewer usable codes of their value than their threshold,
    emptiest first: what the overview and the incentives page warn about."""
    now = utcnow()
    usable = and_(
        *available(
            Incentive.gift_code_pool_id, Incentive.amount_minor, Incentive.currency, now.date()
        )
    )
    unused = func.count(GiftCode.id)
    rows = session.execute(
        select(
            Incentive.reference_id,
            Incentive.name,
            Incentive.amount_minor,
            Incentive.currency,
            Incentive.low_stock_threshold,
            GiftCodePool.id,
            GiftCodePool.name,
            unused,
        )
        .join(GiftCodePool, GiftCodePool.id == Incentive.gift_code_pool_id)
        .outerjoin(GiftCode, usable)
        .where(
            Incentive.provider == "gift_codes",
            Incentive.active.is_(True),
            or_(Incentive.closes_at.is_(None), Incentive.closes_at > now),
        )
        .group_by(Incentive.id, GiftCodePool.id)
        .having(unused < Incentive.low_stock_threshold)
        .order_by(unused, Incentive.name, Incentive.reference_id)
    ).all()
    return [
        LowStock(
            reference_id=reference,
            incentive_name=name,
            value=format_money(int(amount_minor), currency),
            threshold=int(threshold),
            pool_id=pool_id,
            pool_name=pool_name,
            unused=int(count),
        )
        for reference, name, amount_minor, currency, threshold, pool_id, pool_name, count in rows
    ]


def limit_warnings(incentive: Incentive, *, max_rewards: bool, budget: bool) -> list[str]:
    """What a limit just set (``max_rewards``, ``budget``: the ones set) means when it is below
    what the incentive already committed: such a limit is allowed (committed rewards are not
    taken back: they are paid), but no new reward is until the committed fall under it again
    (rewards cancelled, blocked or failed) or it is raised."""
    warnings: list[str] = []
    count, limit = incentive.committed_count, incentive.max_rewards
    if max_rewards and limit is not None and count > limit:
        warnings.append(
            f"max rewards {limit} is below the {count} rewards already committed: no new "
            f"reward will be paid until fewer than {limit} are committed or max rewards is "
            f"above {count} (rewards already committed are not taken back)"
        )
    committed, most = incentive.committed_minor, incentive.budget_minor
    if budget and most is not None and committed > most:
        amount, currency = incentive.amount_minor, incentive.currency
        warnings.append(
            f"budget {format_money(most, currency)} is below the "
            f"{format_money(committed, currency)} already committed: no new reward of "
            f"{format_money(amount, currency)} will be paid until at most "
            f"{format_money(max(most - amount, 0), currency)} is committed or the budget is at "
            f"least {format_money(committed + amount, currency)} (rewards already committed "
            "are not taken back)"
        )
    return warnings


def window_state(incentive: Incentive, now: datetime | None = None) -> str:
    """``open``, ``not yet open``, ``closed`` or ``paused``."""
    now = now or utcnow()
    if not incentive.active:
        return "paused"
    if incentive.opens_at is not None and now < incentive.opens_at:
        return "not yet open"
    if incentive.closes_at is not None and now >= incentive.closes_at:
        return "closed"
    return "open"
