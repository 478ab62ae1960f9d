"""State of the sandbox's Tango RaaS v2 double: platform credentials, customers, accounts with
balances, a catalog of fixed- and variable-value items, and orders.

Behaviour follows Tango's published implementation notes: an order debits its account; an
``externalRefID`` is idempotent per account (a repeat returns the original order, HTTP 200,
even for a different item); 4xx answers carry ``{timestamp, requestId, path, httpCode,
httpPhrase, errors: [{path, message, constraint, invalidValue}]}``. Tests steer it through
:class:`TangoState` directly (balances, injected failures, a 1 request/s rate limit).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qualflow.sandbox.state import SandboxState

DEFAULT_PLATFORM = "qualflow_sandbox"
DEFAULT_CUSTOMER = "qualflow-demo"
DEFAULT_ACCOUNT = "qualflow-demo-account"
#: The name the double's state is kept under in a sandbox state file (``SandboxState.extra``).
SANDBOX_KEY = "tango"
STATE_VERSION = 1


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


#: The double's made-up exchange rates (US dollars per unit): an order for an item in another
#: currency than its account's is charged in the account's currency at these, as Tango charges
#: at its own rate and says so in ``amountCharged.exchangeRate``.
USD_PER_UNIT = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "CAD": Decimal("0.73"),
    "AUD": Decimal("0.66"),
}


def exchange_rate(item_currency: str, account_currency: str) -> Decimal | None:
    """Units of ``account_currency`` per unit of ``item_currency`` (None: the double has no
    rate between them)."""
    item, account = USD_PER_UNIT.get(item_currency), USD_PER_UNIT.get(account_currency)
    if item is None or account is None:
        return None
    return (item / account).quantize(Decimal("0.000001"))


def _money(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01")))


def _record(obj: Any) -> dict[str, Any]:
    """A dataclass as JSON-ready data; money as exact decimal strings."""
    return {
        key: str(value) if isinstance(value, Decimal) else value
        for key, value in asdict(obj).items()
        if not isinstance(value, list)
    }


def _from_record(cls: Any, record: dict[str, Any], **extra: Any) -> Any:
    decimals = {f.name for f in fields(cls) if "Decimal" in str(f.type)}
    known = {f.name for f in fields(cls)} - set(extra)
    values = {
        key: Decimal(value) if key in decimals and value is not None else value
        for key, value in record.items()
        if key in known
    }
    return cls(**values, **extra)


@dataclass
class TangoItem:
    utid: str
    reward_name: str
    currency: str
    value_type: str  # "FIXED_VALUE" or "VARIABLE_VALUE"
    face_value: Decimal | None = None
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    whole_amount_required: bool = False
    status: str = "active"
    redemption_instructions: str = ""
    credential_label: str = "Claim Code"

    def view(self) -> dict[str, Any]:
        return {
            "utid": self.utid,
            "rewardName": self.reward_name,
            "currencyCode": self.currency,
            "status": self.status,
            "valueType": self.value_type,
            "rewardType": "gift card",
            "faceValue": _money(self.face_value) if self.face_value is not None else None,
            "minValue": _money(self.min_value) if self.min_value is not None else None,
            "maxValue": _money(self.max_value) if self.max_value is not None else None,
            "isWholeAmountValueRequired": self.whole_amount_required,
            "countries": ["US"] if self.currency == "USD" else [],
            "credentialTypes": ["claimCode"],
            "redemptionInstructions": self.redemption_instructions,
            "exchangeRateRule": "1.0",
        }


@dataclass
class TangoBrand:
    brand_key: str
    brand_name: str
    items: list[TangoItem]
    status: str = "active"
    description: str = ""

    def view(self) -> dict[str, Any]:
        return {
            "brandKey": self.brand_key,
            "brandName": self.brand_name,
            "status": self.status,
            "description": self.description,
            "shortDescription": self.description[:80],
            "terms": "See the brand's terms.",
            "disclaimer": "",
            "imageUrls": {},
            "brandRequirements": {
                "displayInstructions": "",
                "termsAndConditionsInstructions": "",
                "disclaimerInstructions": "",
                "alwaysShowDisclaimer": False,
            },
            "items": [item.view() for item in self.items],
        }


@dataclass
class TangoAccountState:
    account_id: str
    customer_id: str
    display_name: str
    currency: str = "USD"
    balance: Decimal = Decimal("0")
    status: str = "ACTIVE"
    contact_email: str = "finance@example.org"
    created_at: str = field(default_factory=_now)
    account_number: str = field(default_factory=lambda: f"A{secrets.randbelow(10**8):08d}")

    def view(self) -> dict[str, Any]:
        return {
            "accountIdentifier": self.account_id,
            "accountNumber": self.account_number,
            "customerIdentifier": self.customer_id,
            "displayName": self.display_name,
            "contactEmail": self.contact_email,
            "currencyCode": self.currency,
            "currentBalance": _money(self.balance),
            "status": self.status,
            "createdAt": self.created_at,
        }


class TangoApiError(Exception):
    """An error answer in Tango's shape."""

    def __init__(
        self,
        status: int,
        errors: list[dict[str, Any]],
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.errors = errors
        self.headers = headers or {}

    def body(self, path: str) -> dict[str, Any]:
        return {
            "timestamp": _now(),
            "requestId": secrets.token_hex(16),
            "path": path,
            "httpCode": self.status,
            "httpPhrase": HTTPStatus(self.status).phrase,
            "errors": self.errors,
        }


def _parse_rfc3339(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("an RFC 3339 date-time carries its offset")
    return parsed


def _rfc3339_filter(filters: dict[str, str], name: str) -> datetime | None:
    """The order-history date filter ``name`` (RFC 3339), or None when absent."""
    raw = filters.get(name)
    if not raw:
        return None
    try:
        return _parse_rfc3339(raw)
    except ValueError:
        raise TangoApiError(
            400,
            [field_error(name, f"{name} must be an RFC 3339 date-time.", "Pattern", raw)],
        ) from None


def field_error(path: str, message: str, constraint: str, invalid: Any = None) -> dict[str, Any]:
    return {"path": path, "message": message, "constraint": constraint, "invalidValue": invalid}


def normalise_email(email: str) -> str:
    return email.strip().lower()


def default_catalog() -> list[TangoBrand]:
    return [
        TangoBrand(
            "B916708",
            "Amazon.com",
            [
                TangoItem(
                    "U561593",
                    "Amazon.com Gift Card",
                    "USD",
                    "VARIABLE_VALUE",
                    min_value=Decimal("0.01"),
                    max_value=Decimal("2000"),
                    redemption_instructions="Redeem at amazon.com/redeem with the claim code.",
                )
            ],
            description="Shop millions of products.",
        ),
        TangoBrand(
            "B442389",
            "Coffee House",
            [
                TangoItem(
                    f"U44238{n}",
                    f"Coffee House ${value} eGift",
                    "USD",
                    "FIXED_VALUE",
                    face_value=Decimal(value),
                    redemption_instructions="Show the code at the counter or add it in the app.",
                    credential_label="eGift Code",
                )
                for n, value in enumerate(("5", "10", "25"), start=1)
            ],
        ),
        TangoBrand(
            "B000001",
            "Reward Link",
            [
                TangoItem(
                    "U157189",
                    "Reward Link (choose your gift card)",
                    "USD",
                    "VARIABLE_VALUE",
                    min_value=Decimal("5"),
                    max_value=Decimal("1000"),
                    whole_amount_required=True,
                    redemption_instructions="Open the link to pick a gift card.",
                    credential_label="Redemption Link",
                ),
                TangoItem(
                    "U157190",
                    "Reward Link (retired)",
                    "USD",
                    "VARIABLE_VALUE",
                    min_value=Decimal("5"),
                    max_value=Decimal("1000"),
                    status="inactive",
                ),
            ],
        ),
        TangoBrand(
            "B916709",
            "Amazon.de",
            [
                TangoItem(
                    "U561594",
                    "Amazon.de Gutschein",
                    "EUR",
                    "VARIABLE_VALUE",
                    min_value=Decimal("1"),
                    max_value=Decimal("500"),
                    redemption_instructions="Einlösen unter amazon.de/einloesen.",
                )
            ],
        ),
    ]


@dataclass
class InjectedFailure:
    status: int
    remaining: int
    path_prefix: str = "/raas/v2"
    retry_after: int | None = None
    #: The request is carried out first and only its answer fails (an answer lost on the way).
    after: bool = False
    message: str = "Injected failure."
    #: Only requests with this HTTP method (None: any), e.g. POST to fail orders, not lookups.
    method: str | None = None


@dataclass
class Refusal:
    """Orders for one recipient email are refused with this 4xx and message."""

    status: int
    message: str


class TangoState:
    """Everything the Tango double knows. Thread-safe; share one per sandbox app."""

    def __init__(
        self,
        *,
        platform_name: str = DEFAULT_PLATFORM,
        platform_key: str | None = None,
        catalog: list[TangoBrand] | None = None,
        requests_per_second: float | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.platforms: dict[str, str] = {
            platform_name: platform_key or "tk_" + secrets.token_urlsafe(24)
        }
        self.customers: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, TangoAccountState] = {}
        self.brands = catalog if catalog is not None else default_catalog()
        self.orders: dict[str, dict[str, Any]] = {}
        self.by_external: dict[tuple[str, str], str] = {}
        self.resends: list[dict[str, Any]] = []
        self.failures: list[InjectedFailure] = []
        #: Normalised recipient email -> how orders for it are refused.
        self.refusals: dict[str, Refusal] = {}
        #: Tango allows about one request per second; None switches the limit off.
        self.requests_per_second = requests_per_second
        #: The rate limit's clock (tests replace it to step time deterministically).
        self.clock: Callable[[], float] = time.monotonic
        self._recent: deque[float] = deque()
        self.request_count = 0
        self.rate_limited_count = 0
        self.order_requests = 0
        #: Called after each change worth keeping (accounts, balances, orders, resends); a
        #: sandbox that keeps the double in its state file marks itself dirty here.
        self.on_change: Callable[[], None] = lambda: None

    @classmethod
    def seeded(cls, *, balance: Decimal | str = "1000.00", **kwargs: Any) -> TangoState:
        """A platform with one customer and one funded USD account (ids ``DEFAULT_*``)."""
        state = cls(**kwargs)
        state.add_account(DEFAULT_CUSTOMER, DEFAULT_ACCOUNT, balance=Decimal(str(balance)))
        return state

    @classmethod
    def kept_in(cls, sandbox: SandboxState, **seed: Any) -> TangoState:
        """The double whose state lives in ``sandbox``'s state file: restored from it when the
        file held one, else seeded (``seed`` as for :meth:`seeded`). Each change then marks the
        sandbox state dirty, so its autosave or next save writes the orders and balances too,
        and a restarted sandbox still knows every order it answered before."""
        kept = sandbox.extra.get(SANDBOX_KEY)
        if isinstance(kept, TangoState):
            return kept
        state = cls.from_json(kept) if isinstance(kept, dict) else cls.seeded(**seed)
        sandbox.extra[SANDBOX_KEY] = state
        state.on_change = sandbox.mark_dirty
        sandbox.mark_dirty()
        return state

    # -- persistence -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Everything a restart must remember; request counters, injected failures and the rate
        limit's window are a run's own and start afresh."""
        with self.lock:
            return {
                "version": STATE_VERSION,
                "platforms": dict(self.platforms),
                "customers": {key: dict(value) for key, value in self.customers.items()},
                "accounts": [_record(account) for account in self.accounts.values()],
                "brands": [
                    {**_record(brand), "items": [_record(item) for item in brand.items]}
                    for brand in self.brands
                ],
                "orders": [dict(order) for order in self.orders.values()],
                "resends": [dict(resend) for resend in self.resends],
                "requestsPerSecond": self.requests_per_second,
            }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TangoState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported Tango double state version {data.get('version')!r}")
        platforms = dict(data["platforms"])
        if not platforms:
            raise ValueError("the Tango double's saved state has no platform")
        brands = [
            _from_record(
                TangoBrand,
                brand,
                items=[_from_record(TangoItem, item) for item in brand.get("items", [])],
            )
            for brand in data.get("brands", [])
        ]
        state = cls(catalog=brands, requests_per_second=data.get("requestsPerSecond"))
        state.platforms = platforms
        state.customers = {key: dict(value) for key, value in data.get("customers", {}).items()}
        for record in data.get("accounts", []):
            account: TangoAccountState = _from_record(TangoAccountState, record)
            state.accounts[account.account_id] = account
        for order in data.get("orders", []):
            reference = order["referenceOrderID"]
            state.orders[reference] = order
            if order.get("externalRefID"):
                key = (str(order["accountIdentifier"]).lower(), order["externalRefID"])
                state.by_external[key] = reference
        state.resends = [dict(resend) for resend in data.get("resends", [])]
        return state

    # -- setup ---------------------------------------------------------------------------------

    @property
    def platform_name(self) -> str:
        return next(iter(self.platforms))

    @property
    def platform_key(self) -> str:
        return self.platforms[self.platform_name]

    def set_platform(self, name: str, key: str) -> None:
        """Accept ``name`` + ``key`` (a new platform, or a new key for a known one)."""
        with self.lock:
            self.platforms[name] = key
        self.on_change()

    def add_account(
        self,
        customer_id: str,
        account_id: str,
        *,
        balance: Decimal = Decimal("0"),
        currency: str = "USD",
        display_name: str | None = None,
    ) -> TangoAccountState:
        with self.lock:
            self.customers.setdefault(
                customer_id, {"displayName": customer_id.title(), "createdAt": _now()}
            )
            account = TangoAccountState(
                account_id=account_id.lower(),
                customer_id=customer_id,
                display_name=display_name or account_id,
                currency=currency,
                balance=balance,
            )
            self.accounts[account.account_id] = account
        self.on_change()
        return account

    def set_balance(self, account_id: str, balance: Decimal | str) -> None:
        with self.lock:
            self.accounts[account_id.lower()].balance = Decimal(str(balance))
        self.on_change()

    def balance(self, account_id: str) -> Decimal:
        with self.lock:
            return self.accounts[account_id.lower()].balance

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        path_prefix: str = "/raas/v2",
        retry_after: int | None = None,
        after: bool = False,
        message: str = "Injected failure.",
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (e.g. 503 or 429);
        ``after``: carry each out first (an order is placed and charged), then fail its answer."""
        failure = InjectedFailure(status, times, path_prefix, retry_after, after, message, method)
        with self.lock:
            self.failures.append(failure)

    def refuse_email(self, email: str, status: int = 400, message: str | None = None) -> None:
        """Refuse every order for ``email`` (trimmed, any case) with ``status`` and ``message``."""
        address = normalise_email(email)
        refusal = Refusal(status, message or f"The recipient email {address} was rejected.")
        with self.lock:
            self.refusals[address] = refusal

    def clear_injected(self) -> None:
        """Forget every injected failure and refusal."""
        with self.lock:
            self.failures.clear()
            self.refusals.clear()

    # -- request gate ----------------------------------------------------------------------------

    def authenticate(self, username: str | None, password: str | None) -> None:
        with self.lock:
            if username is None or self.platforms.get(username) != password:
                raise TangoApiError(
                    401,
                    [field_error("", "Invalid platform name or key.", "Authentication")],
                    headers={"WWW-Authenticate": 'Basic realm="RaaS"'},
                )

    def gate(self, path: str, method: str | None = None) -> None:
        """Count the request; apply injected failures and the rate limit."""
        with self.lock:
            self.request_count += 1
            if self.requests_per_second:
                now = self.clock()
                while self._recent and now - self._recent[0] >= 1.0:
                    self._recent.popleft()
                if len(self._recent) >= self.requests_per_second:
                    self.rate_limited_count += 1
                    raise TangoApiError(
                        429,
                        [field_error("", "Too many requests: the limit is 1 per second.",
                                      "RateLimit")],
                        headers={"Retry-After": "1"},
                    )  # fmt: skip
                self._recent.append(now)
            self._inject(path, method, after=False)

    def gate_after(self, path: str, method: str | None = None) -> None:
        """Fail the answer of a request already carried out, when a failure was injected so."""
        with self.lock:
            self._inject(path, method, after=True)

    def _inject(self, path: str, method: str | None, *, after: bool) -> None:
        for failure in self.failures:
            if (
                failure.after == after
                and failure.remaining > 0
                and path.startswith(failure.path_prefix)
                and failure.method in (None, method)
            ):
                failure.remaining -= 1
                headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
                raise TangoApiError(
                    failure.status,
                    [field_error("", failure.message, "SystemError")],
                    headers=headers,
                )

    # -- catalog and accounts ----------------------------------------------------------------------

    def catalog(self) -> dict[str, Any]:
        with self.lock:
            return {
                "catalogName": "qualflow sandbox catalog",
                "brands": [brand.view() for brand in self.brands],
            }

    def item(self, utid: str) -> TangoItem | None:
        for brand in self.brands:
            for item in brand.items:
                if item.utid == utid:
                    return item
        return None

    def account_view(self, account_id: str) -> dict[str, Any]:
        with self.lock:
            account = self.accounts.get(account_id.lower())
            if account is None:
                raise TangoApiError(
                    404,
                    [field_error("accountIdentifier", f"Account {account_id} not found.",
                                  "NotFound", account_id)],
                )  # fmt: skip
            return account.view()

    # -- orders ------------------------------------------------------------------------------------

    def create_order(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Place an order: (201, order) new, (200, original order) for a repeated externalRefID."""
        with self.lock:
            self.order_requests += 1
            if not isinstance(body, dict):
                raise TangoApiError(
                    400, [field_error("", "The body must be a JSON object.", "Type")]
                )
            errors: list[dict[str, Any]] = []

            def required(name: str) -> Any:
                value = body.get(name)
                if value in (None, ""):
                    errors.append(field_error(name, f"{name} is required.", "NotNull"))
                return value

            customer_id = required("customerIdentifier")
            account_id = str(required("accountIdentifier") or "").lower()
            utid = required("utid")
            amount_raw = required("amount")
            send_email = body.get("sendEmail")
            if not isinstance(send_email, bool):
                errors.append(field_error("sendEmail", "sendEmail is required.", "NotNull"))
            external = body.get("externalRefID")
            if external is not None and (
                not isinstance(external, str) or not external.isalnum() or len(external) > 100
            ):
                errors.append(
                    field_error(
                        "externalRefID",
                        "externalRefID must be at most 100 alphanumeric characters.",
                        "Pattern",
                        external,
                    )
                )
            recipient = body.get("recipient") or {}
            if send_email:
                if not isinstance(recipient, dict) or not recipient.get("email"):
                    errors.append(
                        field_error("recipient.email", "recipient.email is required when "
                                     "sendEmail is true.", "NotNull")
                    )  # fmt: skip
                if not isinstance(recipient, dict) or not recipient.get("firstName"):
                    errors.append(
                        field_error("recipient.firstName", "recipient.firstName is required "
                                     "when sendEmail is true.", "NotNull")
                    )  # fmt: skip
            if isinstance(recipient, dict):
                for name in ("firstName", "lastName"):
                    value = recipient.get(name)
                    if isinstance(value, str) and len(value) > 100:
                        errors.append(
                            field_error(f"recipient.{name}", f"recipient.{name} must be at most "
                                         "100 characters.", "Size")
                        )  # fmt: skip
            notes = body.get("notes")
            if isinstance(notes, str) and len(notes) > 150:
                errors.append(field_error("notes", "notes must be at most 150 characters.", "Size"))
            if errors:
                raise TangoApiError(400, errors)
            email = recipient.get("email") if isinstance(recipient, dict) else None
            refusal = self.refusals.get(normalise_email(email)) if isinstance(email, str) else None
            if refusal is not None:
                raise TangoApiError(
                    refusal.status,
                    [field_error("recipient.email", refusal.message, "Email", email)],
                )

            account = self.accounts.get(account_id)
            if account is None or account.customer_id != customer_id:
                raise TangoApiError(
                    400,
                    [field_error("accountIdentifier", f"Account {account_id} does not belong to "
                                  f"customer {customer_id}.", "NotFound", account_id)],
                )  # fmt: skip
            if external:
                original = self.by_external.get((account_id, external))
                if original is not None:
                    return 200, self.orders[original]
            item = self.item(str(utid))
            if item is None or item.status != "active":
                raise TangoApiError(
                    400,
                    [field_error("utid", f"Item {utid} is not available.", "InvalidItem", utid)],
                )
            try:
                amount = Decimal(str(amount_raw))
            except InvalidOperation:
                raise TangoApiError(
                    400, [field_error("amount", "amount must be a number.", "Type", amount_raw)]
                ) from None
            if not amount.is_finite() or amount <= 0:
                raise TangoApiError(
                    400,
                    [field_error("amount", "amount must be a positive number.", "Range",
                                  str(amount_raw))],
                )  # fmt: skip
            if amount != amount.quantize(Decimal("0.01")):
                raise TangoApiError(
                    400,
                    [field_error("amount", "amount must have at most 2 decimal places.",
                                  "Digits", str(amount_raw))],
                )  # fmt: skip
            self._check_amount(item, amount)
            rate = exchange_rate(item.currency, account.currency)
            if rate is None:
                raise TangoApiError(
                    400,
                    [field_error("utid", f"Item {item.utid} ({item.currency}) cannot be ordered "
                                  f"from an account in {account.currency}.", "Currency", utid)],
                )  # fmt: skip
            charged = (amount * rate).quantize(Decimal("0.01"))
            if charged > account.balance:
                raise TangoApiError(
                    400,
                    [field_error("amount", f"Insufficient funds: account {account_id} has "
                                  f"{_money(account.balance):.2f} {account.currency}, the order "
                                  f"needs {_money(charged):.2f}.", "InsufficientFunds",
                                  _money(amount))],
                )  # fmt: skip
            account.balance -= charged
            order = self._order(body, account, item, amount, rate)
            self.orders[order["referenceOrderID"]] = order
            if external:
                self.by_external[(account_id, external)] = order["referenceOrderID"]
        self.on_change()
        return 201, order

    def _check_amount(self, item: TangoItem, amount: Decimal) -> None:
        if item.value_type == "FIXED_VALUE":
            if item.face_value is not None and amount != item.face_value:
                raise TangoApiError(
                    400,
                    [field_error("amount", f"Item {item.utid} has a fixed value of "
                                  f"{_money(item.face_value):.2f}.", "FixedValue", _money(amount))],
                )  # fmt: skip
            return
        low, high = item.min_value, item.max_value
        if (low is not None and amount < low) or (high is not None and amount > high):
            raise TangoApiError(
                400,
                [field_error("amount", f"amount must be between {low} and {high}.", "Range",
                              _money(amount))],
            )  # fmt: skip
        if item.whole_amount_required and amount != amount.to_integral_value():
            raise TangoApiError(
                400,
                [field_error("amount", "amount must be a whole number for this item.",
                              "WholeAmount", _money(amount))],
            )  # fmt: skip

    def _order(
        self,
        body: dict[str, Any],
        account: TangoAccountState,
        item: TangoItem,
        amount: Decimal,
        rate: Decimal,
    ) -> dict[str, Any]:
        stamp = datetime.now(UTC)
        reference = f"RA{stamp:%y%m%d}-{secrets.randbelow(10**6):06d}-{len(self.orders) + 1:02d}"
        code = "-".join(secrets.token_hex(2).upper() for _ in range(4))
        credential = {
            "label": item.credential_label,
            "value": code,
            "type": "text",
            "credentialType": "claimCode",
        }
        charged = _money(amount * rate)
        denomination = {
            "value": _money(amount), "currencyCode": item.currency, "exchangeRate": float(rate),
        }  # fmt: skip
        return {
            "referenceOrderID": reference,
            "externalRefID": body.get("externalRefID"),
            "customerIdentifier": account.customer_id,
            "accountIdentifier": account.account_id,
            "accountNumber": account.account_number,
            "amountCharged": {
                "value": charged,
                "currencyCode": account.currency,
                "exchangeRate": float(rate),
                "fee": 0.0,
                "total": charged,
            },
            "denomination": denomination,
            "utid": item.utid,
            "rewardName": item.reward_name,
            "sender": body.get("sender") or {},
            "recipient": body.get("recipient") or {},
            "sendEmail": body.get("sendEmail"),
            "emailSubject": body.get("emailSubject"),
            "message": body.get("message"),
            "campaign": body.get("campaign"),
            "notes": body.get("notes"),
            "status": "COMPLETE",
            "createdAt": stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "reward": {
                "credentials": {credential["label"]: code},
                "credentialList": [credential],
                "redemptionInstructions": item.redemption_instructions,
            },
        }

    def order(self, reference: str) -> dict[str, Any]:
        with self.lock:
            order = self.orders.get(reference)
            if order is None:
                raise TangoApiError(
                    404,
                    [field_error("referenceOrderID", f"Order {reference} not found.",
                                  "NotFound", reference)],
                )  # fmt: skip
            return order

    def find_orders(self, filters: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            orders = list(self.orders.values())
        for key in ("externalRefID", "accountIdentifier", "customerIdentifier"):
            if filters.get(key):
                wanted = filters[key].lower() if key == "accountIdentifier" else filters[key]
                orders = [o for o in orders if str(o.get(key)) == wanted]
        start = _rfc3339_filter(filters, "startDate")
        end = _rfc3339_filter(filters, "endDate")
        if start is not None:
            orders = [o for o in orders if _parse_rfc3339(o["createdAt"]) >= start]
        if end is not None:
            orders = [o for o in orders if _parse_rfc3339(o["createdAt"]) <= end]
        try:
            per_page = max(1, min(int(filters.get("elementsPerBlock") or 10), 100))
            page = max(0, int(filters.get("page") or 0))
        except ValueError:
            raise TangoApiError(
                400, [field_error("page", "page and elementsPerBlock must be numbers.", "Type")]
            ) from None
        chunk = orders[page * per_page : (page + 1) * per_page]
        return {
            "page": {
                "number": page,
                "resultCount": len(chunk),
                "totalCount": len(orders),
                "elementsPerBlock": per_page,
            },
            "orders": chunk,
        }

    def resend(self, reference: str, body: Any) -> dict[str, Any]:
        with self.lock:
            order = self.order(reference)
            new_email = body.get("newEmail") if isinstance(body, dict) else None
            if new_email is not None and (not isinstance(new_email, str) or "@" not in new_email):
                raise TangoApiError(
                    400, [field_error("newEmail", "newEmail is not valid.", "Email", new_email)]
                )
            resend = {
                "referenceOrderID": order["referenceOrderID"],
                "resendId": f"RS{secrets.randbelow(10**8):08d}",
                "email": new_email or (order.get("recipient") or {}).get("email"),
                "createdAt": _now(),
            }
            self.resends.append(resend)
        self.on_change()
        return resend
