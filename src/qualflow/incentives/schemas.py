"""What an incentive is configured with: value, email template, limits, approval and fraud rules.

These pydantic models validate what people write (REST body, CLI file, UI form). Provider
specifics that need the network (a Tango item's value range) are checked by the provider when
the incentive is saved.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qualflow.engine.templates import check_template
from qualflow.incentives.emails import normalize_email
from qualflow.incentives.money import MoneyError, check_currency
from qualflow.validation import MAX_ID, MAX_STORED_INT

Provider = Literal["tango", "gift_codes", "manual"]
ApprovalMode = Literal["automatic", "review_all", "review_suspicious"]

DEFAULT_SUBJECT = "Your reward: {{ reward }}"
DEFAULT_BODY = """Hi {{ first_name or "there" }},

thank you for taking part in {{ incentive_name }}. Here is your reward: {{ reward }}.
{% for item in credentials %}
{{ item.label }}: {{ item.value }}{% endfor %}

{{ redemption_instructions }}

Your reward reference is {{ reward_reference }}; please quote it if you contact us.
"""
TEMPLATE_VARIABLES = (
    "first_name",
    "email",
    "reward",
    "reward_name",
    "amount",
    "currency",
    "credentials",
    "code",
    "redemption_instructions",
    "incentive_name",
    "incentive_reference",
    "reward_reference",
)

MAX_ALERT_EMAILS = 20
#: The largest count stored (max_rewards, low_stock_threshold).
MAX_COUNT = MAX_STORED_INT
#: No currency stores more whole units than this (amounts are stored in minor units, at most
#: MAX_STORED_INT of them). Larger numbers are refused before any arithmetic on them; the
#: provider then checks the exact limit of the incentive's currency.
MAX_AMOUNT = Decimal(MAX_STORED_INT)


def check_alert_emails(values: list[str]) -> list[str]:
    """Normalized addresses, each once, in the order given; a clear error naming a bad one."""
    kept: list[str] = []
    for raw in values:
        email = normalize_email(raw)
        if email is None:
            raise ValueError(f"{raw!r} is not an email address")
        if email not in kept:
            kept.append(email)
    return kept


def refuse_nul(value: Any) -> Any:
    """``value`` unchanged; ValueError if it is, or holds, text with a NUL character."""
    if isinstance(value, str):
        if "\x00" in value:
            # PostgreSQL cannot store it in text: the write would fail as a 500.
            raise ValueError("must not contain a NUL character (\\u0000)")
    elif isinstance(value, list | tuple):
        for item in value:
            refuse_nul(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key)
            refuse_nul(item)
    return value


class TextInput(BaseModel):
    """A request body: unknown fields are refused, and so is text with a NUL character (a 422
    naming the field)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return refuse_nul(value)


class ScoreRule(TextInput):
    """A rule comparing one Qualtrics fraud score with a threshold."""

    enabled: bool = True
    threshold: float


class ToggleRule(TextInput):
    enabled: bool = True


class CountRule(TextInput):
    """A cross-response signal: more than ``threshold`` distinct values is suspicious."""

    enabled: bool = True
    threshold: int = Field(default=3, ge=1, le=1000)


class FraudRules(TextInput):
    """Which signals hold a reward for review. Every rule can be switched off or retuned.

    The first four read Qualtrics' fraud-detection fields from the response (they must be turned
    on in the survey before it is fielded); the last two compare the request with earlier ones.
    """

    recaptcha: ScoreRule = Field(
        default_factory=lambda: ScoreRule(threshold=0.5),
        description="Hold when Q_RecaptchaScore is below the threshold (0–1; < 0.5 = likely bot).",
    )
    relevant_id_duplicate: ScoreRule = Field(
        default_factory=lambda: ScoreRule(threshold=75),
        description="Hold when Q_RelevantIDDuplicate is true or Q_RelevantIDDuplicateScore is at "
        "or above the threshold (0–100).",
    )
    relevant_id_fraud: ScoreRule = Field(
        default_factory=lambda: ScoreRule(threshold=30),
        description="Hold when Q_RelevantIDFraudScore is at or above the threshold.",
    )
    ballot_box_stuffing: ToggleRule = Field(
        default_factory=ToggleRule,
        description="Hold when Q_BallotBoxStuffing marks a repeated submission.",
    )
    hold_when_fields_missing: bool = Field(
        default=True,
        description="Hold when an enabled rule's field is absent from the response.",
    )
    shared_email: CountRule = Field(
        default_factory=CountRule,
        description="Suspicious when one email was used with more participant ids than this.",
    )
    shared_ip: CountRule = Field(
        default_factory=CountRule,
        description="Suspicious when more emails than this came from one IP address.",
    )
    participant_id_field: str | None = Field(
        default=None,
        max_length=200,
        description="Embedded-data field holding your participant id (default: the response's "
        "externalDataReference, else its recipient id).",
    )


class IncentiveSpec(TextInput):
    """An incentive as people write it (REST, CLI, UI)."""

    name: str = Field(min_length=1, max_length=200, examples=["Mobile banking study — $10"])
    description: str = Field(default="", max_length=5000)
    active: bool = Field(default=True, description="Paused incentives hold new rewards.")
    provider: Provider
    tango_account_id: int | None = Field(
        default=None, le=MAX_ID, description="Tango provider only."
    )
    utid: str | None = Field(
        default=None, max_length=64, description="Tango catalog item (UTID).", examples=["U561593"]
    )
    gift_code_pool_id: int | None = Field(
        default=None, le=MAX_ID, description="Gift-code provider only."
    )
    amount: Decimal | None = Field(
        default=None,
        gt=0,
        description="Value of each reward. Optional for fixed-value Tango items (their face "
        "value is used).",
        examples=["10.00"],
    )
    currency: str | None = Field(default=None, examples=["USD"])
    reward_name: str | None = Field(
        default=None, max_length=200, description="Default: the catalog item's or pool's name."
    )
    email_subject: str = Field(default=DEFAULT_SUBJECT, min_length=1, max_length=998)
    email_body: str = Field(default=DEFAULT_BODY, min_length=1, max_length=20000)
    redemption_instructions: str = Field(default="", max_length=5000)
    max_rewards: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    budget: Decimal | None = Field(default=None, gt=0, description="In the reward currency.")
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    approval_mode: ApprovalMode = Field(
        default="review_suspicious",
        description="automatic: pay unless a fraud rule holds it; review_suspicious: also hold "
        "what the cross-response signals flag; review_all: hold every reward for review.",
    )
    fraud_rules: FraudRules = Field(default_factory=FraudRules)
    low_stock_threshold: int = Field(
        default=10,
        ge=0,
        le=MAX_COUNT,
        description="Gift codes: warn when fewer unused codes remain.",
    )
    alert_emails: list[str] = Field(
        default_factory=list,
        max_length=MAX_ALERT_EMAILS,
        description="Who gets this incentive's alerts (gift codes running low or out, rewards "
        "held for Tango funds, a limit reached). Empty: everyone with Manage permission on "
        "incentives.",
        examples=[["finance@example.org"]],
    )

    @field_validator("alert_emails")
    @classmethod
    def _check_alert_emails(cls, value: list[str]) -> list[str]:
        return check_alert_emails(value)

    @field_validator("email_subject", "email_body", "redemption_instructions")
    @classmethod
    def _check_template(cls, value: str) -> str:
        return check_template(value)

    @field_validator("amount", "budget")
    @classmethod
    def _storable(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value > MAX_AMOUNT:
            raise ValueError(f"{value} is too large an amount")
        return value

    @field_validator("currency")
    @classmethod
    def _check_currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_currency(value)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2025-01-31T23:59:00Z)")
        return value

    @model_validator(mode="after")
    def _check_provider_fields(self) -> IncentiveSpec:
        if self.provider == "tango":
            if self.tango_account_id is None or not self.utid:
                raise ValueError("a Tango incentive needs tango_account_id and utid")
        elif self.provider == "gift_codes" and self.gift_code_pool_id is None:
            raise ValueError("a gift-code incentive needs gift_code_pool_id")
        if self.provider != "tango" and (self.tango_account_id is not None or self.utid):
            raise ValueError(
                f"tango_account_id and utid are for Tango incentives, not {self.provider} ones"
            )
        if self.provider != "gift_codes" and self.gift_code_pool_id is not None:
            raise ValueError(
                f"gift_code_pool_id is for gift-code incentives, not {self.provider} ones"
            )
        if self.provider != "tango" and (self.amount is None or self.currency is None):
            raise ValueError(f"a {self.provider} incentive needs amount and currency")
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            raise ValueError("closes_at must be after opens_at")
        return self


class IncentivePatch(TextInput):
    """A partial update: only the fields given change (``null`` clears optional ones)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    active: bool | None = None
    tango_account_id: int | None = Field(default=None, le=MAX_ID)
    utid: str | None = None
    gift_code_pool_id: int | None = Field(default=None, le=MAX_ID)
    amount: Decimal | None = Field(default=None, gt=0)
    currency: str | None = None
    reward_name: str | None = None
    email_subject: str | None = None
    email_body: str | None = None
    redemption_instructions: str | None = None
    max_rewards: int | None = Field(default=None, le=MAX_COUNT)
    budget: Decimal | None = None
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    approval_mode: ApprovalMode | None = None
    fraud_rules: FraudRules | None = None
    low_stock_threshold: int | None = Field(default=None, le=MAX_COUNT)
    alert_emails: list[str] | None = None
