"""Incentive tables: incentives, rewards and their history, gift codes, Tango accounts, and the
platform API keys Qualtrics workflows (or any system) use to request rewards.

Guarantees live in the schema, not only in code paths:

* one reward per ``(incentive, normalized email)`` and per ``(incentive, response id)`` —
  unique constraints, so two workers racing on duplicate webhooks cannot both insert;
* a gift code is claimed by at most one reward (``gift_codes.reward_id`` is unique);
* at most two active API keys per platform: an active key occupies slot 1 or 2, and
  ``(platform, active_slot)`` is unique (deactivated keys hold no slot).

Money is stored in minor units (cents) as integers: exact on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from qualflow.store.base import Base, UTCDateTime, utcnow
from qualflow.store.secrets import EncryptedString

PROVIDERS = ("tango", "gift_codes", "manual")
APPROVAL_MODES = ("automatic", "review_all", "review_suspicious")
REWARD_STATUSES = (
    "pending",
    "held",
    "approved",
    "ordered",
    "sent",
    "blocked",
    "failed",
    "cancelled",
)


def check_statuses(statuses: Sequence[str]) -> list[str]:
    """``statuses`` if each is a reward status, else ``ValueError`` naming the unknown ones
    (what the CLI, the REST API and the export share)."""
    unknown = [s for s in statuses if s not in REWARD_STATUSES]
    if unknown:
        raise ValueError(
            f"unknown status {', '.join(unknown)} (one of {', '.join(REWARD_STATUSES)})"
        )
    return list(statuses)


#: Statuses after which nothing happens to a reward any more (resending aside).
FINAL_REWARD_STATUSES = ("sent", "blocked", "failed", "cancelled")
REWARD_SOURCES = ("automation", "api", "manual")
REQUEST_OUTCOMES = ("created", "duplicate", "rejected")
KEY_AUDIT_ACTIONS = ("created", "renamed", "revealed", "deactivated")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class TangoAccount(Base):
    """Credentials and ids of one Tango RaaS account (platform name + key, customer, account)."""

    __tablename__ = "tango_accounts"
    # Never reuse a deleted row's id on SQLite: ids are referenced outside foreign keys.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: Root of the RaaS API, ``/raas/v2`` is appended (sandbox, production or our sandbox).
    base_url: Mapped[str] = mapped_column(String(500))
    platform_name: Mapped[str] = mapped_column(String(200))
    platform_key: Mapped[str] = mapped_column(EncryptedString)
    customer_id: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GiftCodePool(Base):
    """A named pool of pre-bought gift codes."""

    __tablename__ = "gift_code_pools"
    # Never reuse a deleted row's id on SQLite: ids are referenced outside foreign keys.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Incentive(Base):
    """What respondents get, from which provider, under which limits and fraud rules."""

    __tablename__ = "incentives"
    __table_args__ = (
        CheckConstraint(_in("provider", PROVIDERS), name="provider"),
        CheckConstraint(_in("approval_mode", APPROVAL_MODES), name="approval_mode"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("max_rewards IS NULL OR max_rewards > 0", name="max_rewards_positive"),
        CheckConstraint("budget_minor IS NULL OR budget_minor > 0", name="budget_positive"),
        # Never reuse a deleted row's id on SQLite: ids are referenced outside foreign keys.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Shown for copy into a Qualtrics workflow, e.g. ``INC-7F3K2Q``.
    reference_id: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    provider: Mapped[str] = mapped_column(String(16))
    tango_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("tango_accounts.id", ondelete="RESTRICT"), index=True
    )
    gift_code_pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("gift_code_pools.id", ondelete="RESTRICT"), index=True
    )
    #: Tango catalog item (UTID); the amount was validated against it on save.
    utid: Mapped[str | None] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    #: What the reward is called in emails ("Amazon.com Gift Card"); from the catalog for Tango.
    reward_name: Mapped[str] = mapped_column(String(200), default="")

    email_subject: Mapped[str] = mapped_column(String(998))
    email_body: Mapped[str] = mapped_column(Text)
    redemption_instructions: Mapped[str] = mapped_column(Text, default="")

    max_rewards: Mapped[int | None] = mapped_column(Integer)
    budget_minor: Mapped[int | None] = mapped_column(Integer)
    opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approval_mode: Mapped[str] = mapped_column(String(24), default="review_suspicious")
    fraud_rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    low_stock_threshold: Mapped[int] = mapped_column(Integer, default=10)
    #: Who gets this incentive's alerts; empty (or None, before 0007): everyone with Manage on
    #: incentives.
    alert_emails: Mapped[list[str] | None] = mapped_column(JSON)
    #: The alert last emailed: "low" or "out" (gift codes), "funds" (Tango rewards held for
    #: insufficient balance), or None while the incentive can pay.
    stock_alert: Mapped[str | None] = mapped_column(String(8))

    #: Rewards counted against the limits (reserved atomically with a conditional UPDATE).
    committed_count: Mapped[int] = mapped_column(Integer, default=0)
    committed_minor: Mapped[int] = mapped_column(Integer, default=0)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(320))


class Reward(Base):
    """One respondent's reward for one incentive, and where it is in its lifecycle."""

    __tablename__ = "rewards"
    __table_args__ = (
        UniqueConstraint("incentive_id", "email_normalized"),
        UniqueConstraint("incentive_id", "response_id"),
        CheckConstraint(_in("status", REWARD_STATUSES), name="status"),
        CheckConstraint(_in("source", REWARD_SOURCES), name="source"),
        # Counts an incentive's rewards per status: kept beside the longer index below, which
        # could count them too, because it is several times smaller (PostgreSQL stores each
        # repeated key once) and the incentives pages count on every view.
        Index("ix_rewards_incentive_status", "incentive_id", "status"),
        # Newest first: every reward, an incentive's, an incentive's of one status, and one
        # status's (the review queue is the held ones, oldest first). A page is read off the
        # index instead of a sort of all.
        Index("ix_rewards_created", "created_at", "id"),
        Index("ix_rewards_incentive_created", "incentive_id", "created_at", "id"),
        Index("ix_rewards_incentive_status_created", "incentive_id", "status", "created_at", "id"),
        Index("ix_rewards_status_created", "status", "created_at", "id"),
        Index("ix_rewards_status_next_attempt", "status", "next_attempt_at"),
        # Never reuse a deleted row's id on SQLite: ids are referenced outside foreign keys.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference_id: Mapped[str] = mapped_column(String(16), unique=True)
    incentive_id: Mapped[int] = mapped_column(ForeignKey("incentives.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(16), default="pending")

    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(100))
    response_id: Mapped[str | None] = mapped_column(String(64))
    survey_id: Mapped[str | None] = mapped_column(String(64))
    participant_id: Mapped[str | None] = mapped_column(String(200))
    ip_address: Mapped[str | None] = mapped_column(String(64))

    source: Mapped[str] = mapped_column(String(16))
    #: What asked for it: ``run:<run id>`` or ``api-key:<platform>/<key id>``.
    requested_by: Mapped[str] = mapped_column(String(300))
    run_id: Mapped[str | None] = mapped_column(String(200), index=True)

    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(16))
    #: Why it is held, blocked or failed (one line each), and non-blocking observations.
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Whether the reward holds a place in the incentive's max-rewards / budget counters.
    counted: Mapped[bool] = mapped_column(Boolean, default=False)

    #: Tango ``externalRefID`` (deterministic: incentive + email) and ``referenceOrderID``.
    external_ref_id: Mapped[str | None] = mapped_column(String(100))
    provider_order_id: Mapped[str | None] = mapped_column(String(100))
    #: JSON of what the respondent received (credentials, instructions): a secret.
    delivery: Mapped[str | None] = mapped_column(EncryptedString)
    delivery_hint: Mapped[str | None] = mapped_column(String(200))
    email_outbox_id: Mapped[int | None] = mapped_column(Integer)
    resend_count: Mapped[int] = mapped_column(Integer, default=0)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: The fulfiller picks up approved rewards whose time has come and whose lease is free.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    ordered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RewardTransition(Base):
    """One step of a reward's lifecycle: from, to, who and why."""

    __tablename__ = "reward_transitions"
    __table_args__ = (Index("ix_reward_transitions_reward_at", "reward_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RewardRequest(Base):
    """Every request for a reward, including duplicates and rejected ones.

    Nothing accepted is lost: a request that creates no reward is still recorded with its
    outcome. The email / participant / IP columns feed the cross-response fraud signals.
    """

    __tablename__ = "reward_requests"
    __table_args__ = (
        UniqueConstraint("incentive_id", "request_key"),
        CheckConstraint(_in("outcome", REQUEST_OUTCOMES), name="outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incentive_id: Mapped[int] = mapped_column(
        ForeignKey("incentives.id", ondelete="CASCADE"), index=True
    )
    #: Stable per request (run step idempotency key, or API caller + response / email).
    request_key: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(16))
    reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id", ondelete="SET NULL"))
    message: Mapped[str] = mapped_column(Text, default="")
    email_normalized: Mapped[str | None] = mapped_column(String(320), index=True)
    response_id: Mapped[str | None] = mapped_column(String(64))
    participant_id: Mapped[str | None] = mapped_column(String(200))
    ip_address: Mapped[str | None] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GiftCode(Base):
    """One code of a pool. The code itself is encrypted; its hash rejects duplicate imports."""

    __tablename__ = "gift_codes"
    __table_args__ = (
        UniqueConstraint("pool_id", "code_hash"),
        # Partial, so that "reward_id IS NULL" (every unclaimed code) never looks like a
        # one-row lookup of it: SQLite would otherwise read it instead of the index below.
        Index(
            "uq_gift_codes_reward_id",
            "reward_id",
            unique=True,
            postgresql_where=text("reward_id IS NOT NULL"),
            sqlite_where=text("reward_id IS NOT NULL"),
        ),
        # Unclaimed codes only, in the order a claim takes them (see providers.gift_codes):
        # a claim reads one index entry instead of sorting the pool, and claimed codes leave it.
        Index(
            "ix_gift_codes_unclaimed",
            "pool_id",
            "currency",
            "value_minor",
            "expires_on",
            "id",
            postgresql_where=text("reward_id IS NULL"),
            sqlite_where=text("reward_id IS NULL"),
        ),
        # Never reuse a deleted code's id on SQLite: rewards name it in provider_order_id.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("gift_code_pools.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(EncryptedString)
    code_hash: Mapped[str] = mapped_column(String(64))
    last4: Mapped[str] = mapped_column(String(8))
    value_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    expires_on: Mapped[date | None] = mapped_column(Date)
    #: Unique among claimed codes (the index below): one code per reward.
    reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id", ondelete="RESTRICT"))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProviderThrottle(Base):
    """The next free request slot of a rate-limited provider account, shared by all processes."""

    __tablename__ = "provider_throttles"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    next_slot_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiPlatform(Base):
    """A platform name callers authenticate as (HTTP Basic username)."""

    __tablename__ = "api_platforms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    #: Bumped by every key creation: the row lock serialises concurrent creations.
    key_serial: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlatformApiKey(Base):
    """A platform API key: encrypted (revealable with View permission) and hashed (lookup)."""

    __tablename__ = "platform_api_keys"
    __table_args__ = (
        UniqueConstraint("platform_id", "active_slot"),
        CheckConstraint("active_slot IS NULL OR active_slot IN (1, 2)", name="slot_range"),
        CheckConstraint(
            "(deactivated_at IS NULL AND active_slot IS NOT NULL)"
            " OR (deactivated_at IS NOT NULL AND active_slot IS NULL)",
            name="active_has_slot",
        ),
        # Never reuse a deleted row's id on SQLite: ids are referenced outside foreign keys.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform_id: Mapped[int] = mapped_column(
        ForeignKey("api_platforms.id", ondelete="CASCADE"), index=True
    )
    display_name: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(EncryptedString)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    #: 1 or 2 while active; NULL once deactivated (irreversibly).
    active_slot: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(320))
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deactivated_by: Mapped[str | None] = mapped_column(String(320))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKeyAudit(Base):
    """Who created, renamed, revealed or deactivated a platform API key, and when."""

    __tablename__ = "api_key_audit"
    __table_args__ = (CheckConstraint(_in("action", KEY_AUDIT_ACTIONS), name="action"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[int] = mapped_column(
        ForeignKey("platform_api_keys.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(320))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
