"""The provider interface every way of paying a reward implements.

A provider validates an incentive's value when it is saved, reports its health (balance,
stock, credentials) and fulfils one approved reward. Fulfilment must be idempotent — it is
retried after crashes and transient errors — so each provider keys its side effect on the
reward (Tango's ``externalRefID``, the gift code's ``reward_id``).

What a provider raises tells the lifecycle what to do::

    ProviderHold     cannot pay now (insufficient balance, no code left): hold for review
    ProviderError    retriable=True: try again later with the same key; False: the reward fails
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker


class ProviderHold(Exception):
    """The reward cannot be paid right now; a person must look at it (reason says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ValueRefused(ValueError):
    """An incentive's value the provider refuses; ``field`` names the one field to correct
    (None when the refusal is not one field's, e.g. the catalog could not be read)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ProviderUnavailable(Exception):
    """The provider could not be asked (it did not answer, or refused the account's key): an
    incentive's value is not known to be wrong, only unchecked."""


class ProviderError(Exception):
    """Paying failed; ``retriable`` says whether the same attempt may succeed later."""

    def __init__(self, reason: str, *, retriable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retriable = retriable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Credential:
    """One thing the respondent needs to redeem the reward (a code, a PIN, a link)."""

    label: str
    value: str
    type: str = "text"

    def as_dict(self) -> dict[str, str]:
        return {"label": self.label, "value": self.value, "type": self.type}


@dataclass(frozen=True)
class Delivery:
    """What the respondent receives, as stored (encrypted) on the reward and put in the email."""

    credentials: tuple[Credential, ...] = ()
    redemption_instructions: str = ""
    reward_name: str = ""
    provider_order_id: str | None = None
    #: Safe to show in lists: "code ••••1234", "Tango order RA-…".
    hint: str = ""
    #: False for rewards paid by hand: they wait in "ordered" until marked paid.
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "credentials": [c.as_dict() for c in self.credentials],
            "redemption_instructions": self.redemption_instructions,
            "reward_name": self.reward_name,
            "provider_order_id": self.provider_order_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Delivery:
        return cls(
            credentials=tuple(
                Credential(str(c.get("label", "")), str(c.get("value", "")), str(c.get("type", "")))
                for c in data.get("credentials") or []
            ),
            redemption_instructions=str(data.get("redemption_instructions") or ""),
            reward_name=str(data.get("reward_name") or ""),
            provider_order_id=data.get("provider_order_id"),
        )


@dataclass(frozen=True)
class OrderRequest:
    """An approved reward, as a provider needs to see it."""

    reward_id: int
    reward_reference: str
    incentive_id: int
    incentive_reference: str
    incentive_name: str
    email: str
    email_normalized: str
    first_name: str | None
    amount_minor: int
    currency: str
    utid: str | None
    tango_account_id: int | None
    gift_code_pool_id: int | None
    external_ref_id: str | None
    #: The reward was created in the caller's transaction (it cannot have been paid before).
    new: bool = False


@dataclass(frozen=True)
class ResolvedValue:
    """An incentive's value once checked against the provider (catalog, pool)."""

    amount_minor: int
    currency: str
    reward_name: str
    redemption_instructions: str = ""


@dataclass
class ProviderHealth:
    """What the configuration review shows about a provider."""

    ok: bool
    summary: str
    balance: Decimal | None = None
    currency: str | None = None
    stock: int | None = None
    key_status: str | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProviderContext:
    """What providers may use: the database and, for tests and the demo, an HTTP transport."""

    sessionmaker: sessionmaker[Session]
    tango_transport: httpx.AsyncBaseTransport | None = None
    #: Seconds between Tango requests: Tango allows one per second; the margin absorbs jitter.
    tango_interval: float = 1.1
    tango_backoff: float = 1.0


class RewardProvider(abc.ABC):
    """One way of paying rewards."""

    name: str
    #: Pays with database writes only: :meth:`order_in_session` runs inside the transaction
    #: that records the reward as ordered (one commit for both).
    orders_in_session: bool = False

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    @abc.abstractmethod
    async def resolve_value(
        self,
        *,
        amount: Decimal | None,
        currency: str | None,
        utid: str | None,
        tango_account_id: int | None,
        gift_code_pool_id: int | None,
    ) -> ResolvedValue:
        """Check an incentive's value against the provider; raise ``ValueError`` with why not."""

    @abc.abstractmethod
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
        """Balance, stock and credential status for the configuration review."""

    @abc.abstractmethod
    async def order(self, request: OrderRequest) -> Delivery:
        """Pay one approved reward (idempotent per reward)."""

    def order_in_session(self, session: Session | Connection, request: OrderRequest) -> Delivery:
        """Pay inside the caller's transaction (only when ``orders_in_session``). A reward
        created in that transaction (``request.new``) may come with a plain connection."""
        raise NotImplementedError(f"{self.name} pays through the network, not the database")

    async def preview(self, request: OrderRequest) -> Delivery:
        """What :meth:`order` would deliver, without paying anyone (for test rewards)."""
        return Delivery(
            credentials=(Credential("Code", "TEST-CODE-NOT-VALID"),),
            reward_name="",
            hint="test reward: nothing was paid",
        )
