"""Tango RaaS v2: rewards ordered from a catalog item and paid from an account balance.

* The value is checked against the catalog item on save and before ordering: a fixed-value
  item needs exactly its face value, a variable one a value within ``[minValue, maxValue]``
  (whole if the item requires it).
* The account balance is read before ordering; a reward it cannot cover is held with
  "insufficient balance", never failed.
* ``externalRefID`` is derived from the incentive and the normalized email, so a retried or
  recovered order returns Tango's original order instead of paying twice.
* Requests share one rate limit per platform across every process (:mod:`..throttle`).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from qualflow.incentives.models import TangoAccount
from qualflow.incentives.money import exponent, format_money, from_minor, to_minor
from qualflow.incentives.providers.base import (
    Credential,
    Delivery,
    OrderRequest,
    ProviderError,
    ProviderHealth,
    ProviderHold,
    ProviderUnavailable,
    ResolvedValue,
    RewardProvider,
    ValueRefused,
)
from qualflow.incentives.providers.tango_client import TangoClient, TangoError
from qualflow.incentives.throttle import defer_slots, wait_for_slot

CATALOG_TTL = 300.0
BALANCE_TTL = 10.0
_INSUFFICIENT = ("insufficient", "funds", "balance")
#: How a reward held for want of funds states its reason (the funds alert looks for it).
INSUFFICIENT_BALANCE = "insufficient balance"


def external_ref_id(incentive_reference: str, email_normalized: str) -> str:
    """Tango's idempotency key for one respondent's reward: 64 hex characters (≤ 100, alnum)."""
    return hashlib.sha256(f"{incentive_reference}|{email_normalized}".encode()).hexdigest()


@dataclass(frozen=True)
class AccountSnapshot:
    id: int
    name: str
    base_url: str
    platform_name: str
    platform_key: str
    customer_id: str
    account_id: str

    @property
    def platform_identity(self) -> tuple[str, str, str]:
        """Who Tango answers: the API and the credentials, the key only as a digest. What it
        said to one key is never reused for another (a changed or wrong key is found out)."""
        digest = hashlib.sha256(self.platform_key.encode()).hexdigest()[:16]
        return (self.base_url, self.platform_name, digest)

    @property
    def balance_key(self) -> tuple[str, str, str, str]:
        """Where this account's balance is cached: its platform identity and account id."""
        return (*self.platform_identity, self.account_id)


# Per-process caches: the catalog changes rarely; the balance is re-read often and tracked
# locally between reads (Tango still refuses an order it cannot cover, which we also hold).
_cache_lock = threading.Lock()
_catalogs: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
_balances: dict[tuple[str, str, str, str], tuple[float, int, str]] = {}


def clear_caches() -> None:
    with _cache_lock:
        _catalogs.clear()
        _balances.clear()


@dataclass(frozen=True)
class CatalogItem:
    """One orderable item of a Tango catalog, flattened for listing and choosing."""

    brand: str
    utid: str
    reward_name: str
    currency: str
    #: ``FIXED_VALUE`` (only ``face_value``) or ``VARIABLE_VALUE`` (``min_value``..``max_value``).
    value_type: str
    face_value: Decimal | None
    min_value: Decimal | None
    max_value: Decimal | None
    whole_amount_required: bool
    status: str

    @property
    def fixed(self) -> bool:
        return _fixed_value(self.value_type, self.face_value, self.min_value, self.max_value)

    @property
    def value(self) -> str:
        """The amounts an incentive may give, e.g. ``10.00 USD`` or ``5.00-500.00 USD``."""
        if self.fixed:
            return f"{_show(self.face_value, self.currency)} {self.currency}"
        low, high = _show(self.min_value, self.currency), _show(self.max_value, self.currency)
        return f"{low}-{high} {self.currency}"


def catalog_items(catalog: dict[str, Any]) -> list[CatalogItem]:
    """Every item of a ``GET /catalogs`` answer, brand by brand, in Tango's order."""
    return [
        CatalogItem(
            brand=str(brand.get("brandName") or brand.get("brandKey") or ""),
            utid=str(item.get("utid") or ""),
            reward_name=str(item.get("rewardName") or item.get("utid") or ""),
            currency=str(item.get("currencyCode") or ""),
            value_type=str(item.get("valueType") or ""),
            face_value=_in_currency(item.get("faceValue"), item.get("currencyCode")),
            min_value=_in_currency(item.get("minValue"), item.get("currencyCode")),
            max_value=_in_currency(item.get("maxValue"), item.get("currencyCode")),
            whole_amount_required=bool(item.get("isWholeAmountValueRequired")),
            status=str(item.get("status") or "active").lower(),
        )
        for brand in catalog.get("brands") or []
        for item in brand.get("items") or []
        if item.get("utid")
    ]


def find_item(catalog: dict[str, Any], utid: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    for brand in catalog.get("brands") or []:
        for item in brand.get("items") or []:
            if str(item.get("utid")) == utid:
                return brand, item
    return None


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _in_currency(value: Any, currency: Any) -> Decimal | None:
    """A catalog amount (a JSON number such as ``10.0``) with its currency's decimals,
    ``10.00``; as Tango gave it when that would round it."""
    amount = _decimal(value)
    if amount is None or not amount.is_finite():
        return amount
    try:
        shown = amount.quantize(Decimal(1).scaleb(-exponent(str(currency or "USD"))))
    except InvalidOperation:
        return amount
    return shown if shown == amount else amount


def _show(value: Decimal | None, currency: str) -> str:
    if value is None:
        return "?"
    return str(value.quantize(Decimal(1).scaleb(-exponent(currency or "USD"))))


def _fixed_value(
    value_type: str, face: Decimal | None, low: Decimal | None, high: Decimal | None
) -> bool:
    """Whether an item pays exactly its face value (else any amount in its range)."""
    return value_type.upper().startswith("FIXED") or (
        face is not None and low is None and high is None
    )


def check_amount(item: dict[str, Any], amount: Decimal | None) -> Decimal:
    """The amount to order for ``item``; ``ValueError`` explains a mismatch."""
    face = _decimal(item.get("faceValue"))
    low, high = _decimal(item.get("minValue")), _decimal(item.get("maxValue"))
    currency = item.get("currencyCode", "")
    name = item.get("rewardName") or item.get("utid")
    if _fixed_value(str(item.get("valueType") or ""), face, low, high):
        if face is None:
            raise ValueRefused(f"catalog item {name} has no face value", field="utid")
        if amount is None:
            return face
        if amount != face:
            raise ValueRefused(
                f"{name} is a fixed-value item: the amount must be {_show(face, currency)} "
                f"{currency}, not {amount}",
                field="amount",
            )
        return face
    if amount is None:
        raise ValueRefused(f"{name} is a variable-value item: give an amount", field="amount")
    if (low is not None and amount < low) or (high is not None and amount > high):
        raise ValueRefused(
            f"{name} accepts amounts from {_show(low, currency)} to {_show(high, currency)} "
            f"{currency}; {amount} is outside",
            field="amount",
        )
    if item.get("isWholeAmountValueRequired") and amount != amount.to_integral_value():
        raise ValueRefused(f"{name} requires a whole amount; {amount} is not", field="amount")
    return amount


def check_value(item: dict[str, Any], amount_minor: int, currency: str) -> Decimal:
    """The amount to order for a reward of ``amount_minor`` ``currency`` from ``item`` as the
    catalog lists it now; ``ValueError`` when the item changed under the incentive (another
    currency, another face value or range): Tango would read the amount in the item's currency."""
    item_currency = str(item.get("currencyCode") or "USD").upper()
    if item_currency != currency.upper():
        name = item.get("rewardName") or item.get("utid")
        raise ValueError(
            f"{name} ({item.get('utid')}) is now in {item_currency}, but the reward is "
            f"{format_money(amount_minor, currency)}: choose an item in {currency.upper()} for "
            "the incentive, then retry the reward"
        )
    return check_amount(item, from_minor(amount_minor, currency))


def _credentials(order: dict[str, Any]) -> tuple[Credential, ...]:
    reward = order.get("reward") or {}
    listed = reward.get("credentialList") or []
    if listed:
        return tuple(
            Credential(
                str(item.get("label") or "Code"),
                str(item.get("value") or ""),
                str(item.get("credentialType") or item.get("type") or "text"),
            )
            for item in listed
            if isinstance(item, dict)
        )
    plain = reward.get("credentials") or {}
    return tuple(Credential(str(label), str(value)) for label, value in plain.items())


def _is_insufficient_funds(error: TangoError) -> bool:
    text = " ".join([*error.messages, *error.constraints]).lower()
    return error.status_code in (400, 402, 409, 422) and any(w in text for w in _INSUFFICIENT)


def _refuses_credentials(error: TangoError) -> bool:
    return error.status_code in (401, 403)


def _hold_if_credentials_refused(account: AccountSnapshot, error: TangoError) -> None:
    """A refused key is not the reward's fault: it waits (held) for a person to fix the key."""
    if _refuses_credentials(error):
        refused = _credentials_refused(account, error, ", then release the reward")
        raise ProviderHold(refused) from None


def _credentials_refused(account: AccountSnapshot, error: TangoError, then: str) -> str:
    """Tango refused the account's platform credentials (deactivated or changed), and what to
    do: every reward of the account meets the same refusal until a person corrects them."""
    return (
        f"Tango refused the platform credentials of Tango account {account.name!r} "
        f"({error}): correct its platform name and key{then}"
    )


class TangoProvider(RewardProvider):
    """Orders catalog items from one Tango account per incentive."""

    name = "tango"

    def _account(self, account_id: int | None) -> AccountSnapshot:
        if account_id is None:
            raise ValueRefused("a Tango incentive needs tango_account_id", field="tango_account_id")
        with self.context.sessionmaker() as session:
            row = session.get(TangoAccount, account_id)
            if row is None:
                raise ValueRefused(
                    f"Tango account {account_id} does not exist", field="tango_account_id"
                )
            return AccountSnapshot(
                id=row.id,
                name=row.name,
                base_url=row.base_url,
                platform_name=row.platform_name,
                platform_key=row.platform_key,
                customer_id=row.customer_id,
                account_id=row.account_id,
            )

    def client(self, account: AccountSnapshot) -> TangoClient:
        key = f"tango:{account.base_url}:{account.platform_name}"
        interval = self.context.tango_interval

        async def throttle() -> None:
            if interval > 0:
                await wait_for_slot(self.context.sessionmaker, key, interval)

        async def rate_limited(seconds: float) -> None:
            if interval > 0:
                await asyncio.to_thread(defer_slots, self.context.sessionmaker, key, seconds)

        return TangoClient(
            account.base_url,
            account.platform_name,
            account.platform_key,
            transport=self.context.tango_transport,
            throttle=throttle,
            on_rate_limited=rate_limited,
            backoff=self.context.tango_backoff,
        )

    async def _catalog(
        self, account: AccountSnapshot, client: TangoClient, *, fresh: bool = False
    ) -> dict[str, Any]:
        key = account.platform_identity
        with _cache_lock:
            cached = _catalogs.get(key)
        if not fresh and cached and time.monotonic() - cached[0] < CATALOG_TTL:
            return cached[1]
        catalog = await client.get_catalog()
        with _cache_lock:
            _catalogs[key] = (time.monotonic(), catalog)
        return catalog

    async def _item(
        self, account: AccountSnapshot, client: TangoClient, utid: str | None
    ) -> dict[str, Any]:
        if not utid:
            raise ValueRefused("a Tango incentive needs a catalog item (utid)", field="utid")
        found = find_item(await self._catalog(account, client), utid)
        if found is None or str(found[1].get("status") or "active").lower() != "active":
            # The cached catalog may predate the item (or its coming back): ask Tango again.
            found = find_item(await self._catalog(account, client, fresh=True), utid)
        if found is None:
            raise ValueRefused(
                f"catalog item {utid} is not in the catalog of {account.name}", field="utid"
            )
        brand, item = found
        status = str(item.get("status") or "active").lower()
        if status != "active":
            raise ValueRefused(f"catalog item {utid} is {status}", field="utid")
        return {**item, "_brand": brand}

    async def _balance(
        self, account: AccountSnapshot, client: TangoClient, currency: str, *, fresh: bool
    ) -> int | None:
        """The account's balance in minor units of ``currency``, or None when the account is
        in another currency: Tango then charges each order at its own exchange rate, so only
        Tango can tell whether the balance covers it (and refuses the order if not)."""
        key = account.balance_key
        with _cache_lock:
            cached = _balances.get(key)
        if fresh or not cached or time.monotonic() - cached[0] >= BALANCE_TTL:
            data = await client.get_account(account.account_id)
            held_in = str(data.get("currencyCode") or currency).upper()
            balance = to_minor(Decimal(str(data.get("currentBalance", 0))), held_in)
            cached = (time.monotonic(), balance, held_in)
            with _cache_lock:
                _balances[key] = cached
        return cached[1] if cached[2] == currency.upper() else None

    def _forget_catalog(self, account: AccountSnapshot) -> None:
        with _cache_lock:
            _catalogs.pop(account.platform_identity, None)

    def _forget_balance(self, account: AccountSnapshot) -> None:
        with _cache_lock:
            _balances.pop(account.balance_key, None)

    def _spend(self, account: AccountSnapshot, amount_minor: int, currency: str) -> None:
        key = account.balance_key
        with _cache_lock:
            cached = _balances.get(key)
            if cached and cached[2] == currency.upper():
                _balances[key] = (cached[0], cached[1] - amount_minor, cached[2])
            elif cached:
                del _balances[key]  # charged at an exchange rate only Tango knows

    async def resolve_value(
        self,
        *,
        amount: Decimal | None,
        currency: str | None,
        utid: str | None,
        tango_account_id: int | None,
        gift_code_pool_id: int | None,
    ) -> ResolvedValue:
        account = await asyncio.to_thread(self._account, tango_account_id)
        async with self.client(account) as client:
            try:
                item = await self._item(account, client, utid)
            except TangoError as exc:
                raise ProviderUnavailable(f"could not read the Tango catalog: {exc}") from None
        item_currency = str(item.get("currencyCode") or "USD").upper()
        if currency is not None and currency.upper() != item_currency:
            raise ValueRefused(
                f"catalog item {utid} is in {item_currency}, not {currency}", field="currency"
            )
        value = check_amount(item, amount)
        return ResolvedValue(
            amount_minor=to_minor(value, item_currency),
            currency=item_currency,
            reward_name=str(item.get("rewardName") or item["_brand"].get("brandName") or ""),
            redemption_instructions=str(item.get("redemptionInstructions") or ""),
        )

    async def catalog(self, tango_account_id: int) -> list[CatalogItem]:
        """The catalog the account's platform may order from (cached for CATALOG_TTL).

        ``ValueError`` for an unknown account, :class:`TangoError` when Tango refuses."""
        account = await asyncio.to_thread(self._account, tango_account_id)
        async with self.client(account) as client:
            return catalog_items(await self._catalog(account, client))

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
        try:
            account = await asyncio.to_thread(self._account, tango_account_id)
        except ValueError as exc:
            return ProviderHealth(ok=False, summary=str(exc), key_status="unknown")
        health = ProviderHealth(ok=True, summary="", key_status="accepted")
        async with self.client(account) as client:
            try:
                data = await client.get_account(account.account_id)
            except TangoError as exc:
                health.ok = False
                health.key_status = "refused" if _refuses_credentials(exc) else "unknown"
                health.summary = f"account {account.account_id}: {exc}"
                if health.key_status == "refused":
                    health.warnings.append(
                        _credentials_refused(account, exc, "; until then every reward is held")
                    )
                return health
            balance = Decimal(str(data.get("currentBalance", 0)))
            health.currency = str(data.get("currencyCode") or currency)
            # Tango's JSON number (1000.0) as money of the account's currency (1000.00).
            health.balance = from_minor(to_minor(balance, health.currency), health.currency)
            health.details["account_status"] = data.get("status")
            shown = format_money(to_minor(balance, health.currency), health.currency)
            health.summary = f"Tango account {account.account_id}: balance {shown}"
            if str(data.get("status") or "active").lower() != "active":
                health.ok = False
                health.warnings.append(f"the Tango account is {data.get('status')}")
            if health.currency.upper() != currency.upper():
                health.warnings.append(
                    f"the account is in {health.currency} and the rewards in {currency}: Tango "
                    "charges each order at its exchange rate, so the balance is checked by "
                    "Tango when ordering (a refusal holds the reward)"
                )
            elif to_minor(balance, health.currency) < amount_minor:
                health.ok = False
                health.warnings.append(
                    f"insufficient balance: {shown} does not cover one "
                    f"reward of {format_money(amount_minor, currency)}; rewards will be held"
                )
            else:
                health.details["rewards_covered"] = int(
                    to_minor(balance, health.currency) // amount_minor
                )
            try:
                item = await self._item(account, client, utid)
                check_value(item, amount_minor, currency)
                health.details["item"] = item.get("rewardName")
            except (ValueError, TangoError) as exc:
                health.ok = False
                health.warnings.append(f"catalog: {exc}")
        return health

    def _order_body(self, request: OrderRequest, account: AccountSnapshot) -> dict[str, Any]:
        return {
            "customerIdentifier": account.customer_id,
            "accountIdentifier": account.account_id,
            "amount": float(from_minor(request.amount_minor, request.currency)),
            "utid": request.utid,
            # qualflow emails the reward itself, with the incentive's template.
            "sendEmail": False,
            "recipient": {
                "email": request.email,
                "firstName": (request.first_name or "")[:100],
                "lastName": "",
            },
            "externalRefID": request.external_ref_id
            or external_ref_id(request.incentive_reference, request.email_normalized),
            "notes": f"qualflow {request.reward_reference} ({request.incentive_reference})"[:150],
        }

    async def order(self, request: OrderRequest) -> Delivery:
        try:
            account = await asyncio.to_thread(self._account, request.tango_account_id)
        except ValueError as exc:
            raise ProviderError(str(exc), retriable=False) from None
        needed = format_money(request.amount_minor, request.currency)
        async with self.client(account) as client:
            try:
                item = await self._item(account, client, request.utid)
                check_value(item, request.amount_minor, request.currency)
                balance = await self._balance(account, client, request.currency, fresh=False)
                if balance is not None and balance < request.amount_minor:
                    balance = await self._balance(account, client, request.currency, fresh=True)
                if balance is not None and balance < request.amount_minor:
                    raise ProviderHold(
                        f"{INSUFFICIENT_BALANCE}: Tango account {account.account_id} has "
                        f"{format_money(balance, request.currency)}, this reward needs {needed}"
                    )
                order, _created = await client.create_order(self._order_body(request, account))
            except TangoError as exc:
                if _is_insufficient_funds(exc):
                    self._forget_balance(account)
                    raise ProviderHold(f"{INSUFFICIENT_BALANCE}: {exc}") from None
                _hold_if_credentials_refused(account, exc)
                if exc.status_code == 400:
                    # Perhaps refused from a stale catalog (an item withdrawn or repriced).
                    self._forget_catalog(account)
                raise ProviderError(
                    str(exc), retriable=exc.retriable, retry_after=exc.retry_after
                ) from None
            except ValueError as exc:
                raise ProviderError(f"catalog: {exc}", retriable=False) from None
        self._spend(account, request.amount_minor, request.currency)
        reference = str(order.get("referenceOrderID") or "")
        reward = order.get("reward") or {}
        return Delivery(
            credentials=_credentials(order),
            redemption_instructions=str(
                reward.get("redemptionInstructions") or item.get("redemptionInstructions") or ""
            ),
            reward_name=str(order.get("rewardName") or item.get("rewardName") or ""),
            provider_order_id=reference or None,
            hint=f"Tango order {reference}" if reference else "Tango order",
        )

    async def preview(self, request: OrderRequest) -> Delivery:
        try:
            account = await asyncio.to_thread(self._account, request.tango_account_id)
        except ValueError as exc:
            raise ProviderError(str(exc), retriable=False) from None
        async with self.client(account) as client:
            try:
                item = await self._item(account, client, request.utid)
                check_value(item, request.amount_minor, request.currency)
                balance = await self._balance(account, client, request.currency, fresh=True)
            except TangoError as exc:
                _hold_if_credentials_refused(account, exc)
                raise ProviderError(str(exc), retriable=exc.retriable) from None
            except ValueError as exc:
                raise ProviderError(f"catalog: {exc}", retriable=False) from None
        if balance is not None and balance < request.amount_minor:
            raise ProviderHold(
                f"{INSUFFICIENT_BALANCE}: Tango account {account.account_id} has "
                f"{format_money(balance, request.currency)}, this reward needs "
                f"{format_money(request.amount_minor, request.currency)}"
            )
        return Delivery(
            credentials=(Credential("Code", "TEST-NO-ORDER-PLACED"),),
            redemption_instructions=str(item.get("redemptionInstructions") or ""),
            reward_name=str(item.get("rewardName") or ""),
            hint="test reward: no Tango order was placed",
        )
