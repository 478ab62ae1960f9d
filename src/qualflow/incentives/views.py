"""What incentives' REST answers and the command line print: the response models and the
queries behind them, without FastAPI or the web app (``qualflow incentives ls`` starts without
importing them). :mod:`qualflow.incentives.api` re-exports them under the same names."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, defer

from qualflow.incentives import api_keys
from qualflow.incentives.manage import shown_base_url, stored_settings, window_state
from qualflow.incentives.models import (
    Incentive,
    PlatformApiKey,
    Reward,
    RewardTransition,
    TangoAccount,
)
from qualflow.incentives.money import from_minor
from qualflow.incentives.providers.tango import CatalogItem
from qualflow.incentives.schemas import FraudRules
from qualflow.incentives.service import ActionResult, get_reward
from qualflow.store.paging import Page, page_of
from qualflow.store.secrets import mask

if TYPE_CHECKING:
    from qualflow.incentives.review import Review


class RewardCounts(BaseModel):
    total: int
    held: int
    sent: int
    awaiting: int = Field(description="Approved or ordered, not yet sent.")


class IncentiveOut(BaseModel):
    reference_id: str = Field(examples=["INC-7F3K2Q"])
    name: str
    description: str
    active: bool
    state: str = Field(description="open, paused, not yet open or closed")
    provider: str
    tango_account_id: int | None
    utid: str | None
    gift_code_pool_id: int | None
    amount: Decimal
    currency: str
    reward_name: str
    email_subject: str
    email_body: str
    redemption_instructions: str
    max_rewards: int | None
    budget: Decimal | None
    opens_at: datetime | None
    closes_at: datetime | None
    approval_mode: str
    fraud_rules: FraudRules
    low_stock_threshold: int
    alert_emails: list[str] = Field(
        description="Who gets this incentive's alerts; empty: everyone with Manage on incentives."
    )
    committed_rewards: int
    committed_amount: Decimal
    counts: RewardCounts | None = None
    created_at: datetime
    updated_at: datetime
    created_by: str | None

    @classmethod
    def of(cls, incentive: Incentive, counts: Any = None) -> IncentiveOut:
        return cls(
            **stored_settings(incentive),
            reference_id=incentive.reference_id,
            state=window_state(incentive),
            committed_rewards=incentive.committed_count,
            committed_amount=from_minor(incentive.committed_minor, incentive.currency),
            counts=RewardCounts(**vars(counts)) if counts is not None else None,
            created_at=incentive.created_at,
            updated_at=incentive.updated_at,
            created_by=incentive.created_by,
        )


class RewardOut(BaseModel):
    reference_id: str = Field(examples=["RW-7F3K2QMX"])
    incentive: str
    status: str
    email: str
    first_name: str | None
    response_id: str | None
    survey_id: str | None
    participant_id: str | None
    source: str
    requested_by: str
    amount: Decimal
    currency: str
    provider: str
    reasons: list[str]
    warnings: list[str]
    provider_order_id: str | None
    delivery: str | None = Field(description="What was delivered, masked (never the code).")
    email_outbox_id: int | None = Field(
        description="The outbox email that delivered it (its first email, or the resend that "
        "delivered it after the first was refused); null until one has. The web UI shows it "
        "under Outbox."
    )
    resend_count: int
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    ordered_at: datetime | None
    sent_at: datetime | None
    paid_at: datetime | None

    @classmethod
    def of(cls, reward: Reward, incentive_reference: str) -> RewardOut:
        return cls(
            reference_id=reward.reference_id,
            incentive=incentive_reference,
            status=reward.status,
            email=reward.email,
            first_name=reward.first_name,
            response_id=reward.response_id,
            survey_id=reward.survey_id,
            participant_id=reward.participant_id,
            source=reward.source,
            requested_by=reward.requested_by,
            amount=from_minor(reward.amount_minor, reward.currency),
            currency=reward.currency,
            provider=reward.provider,
            reasons=list(reward.reasons or []),
            warnings=list(reward.warnings or []),
            provider_order_id=reward.provider_order_id,
            delivery=reward.delivery_hint,
            email_outbox_id=reward.email_outbox_id,
            resend_count=reward.resend_count,
            attempts=reward.attempts,
            last_error=reward.last_error,
            created_at=reward.created_at,
            updated_at=reward.updated_at,
            ordered_at=reward.ordered_at,
            sent_at=reward.sent_at,
            paid_at=reward.paid_at,
        )


class TransitionOut(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    reason: str
    at: datetime


class RewardDetail(RewardOut):
    transitions: list[TransitionOut]


#: One page of rewards, newest first.
RewardPage = Page[RewardOut]


def reward_page(
    db: Session,
    *,
    incentive_id: int | None = None,
    statuses: list[str] | None = None,
    q: str | None = None,
    source: str | None = None,
    limit: int,
    offset: int = 0,
) -> RewardPage:
    """The rewards that pass every filter given (``statuses`` already checked), newest first,
    and how many pass in all."""
    conditions: list[Any] = []
    if incentive_id is not None:
        conditions.append(Reward.incentive_id == incentive_id)
    if statuses:
        conditions.append(Reward.status.in_(statuses))
    if q:
        needle = q.strip().lower()
        conditions.append(
            or_(
                Reward.email_normalized.contains(needle, autoescape=True),
                func.lower(Reward.reference_id) == needle,
                Reward.response_id == q.strip(),
            )
        )
    if source:
        conditions.append(Reward.source == source)
    rows = db.execute(
        select(Reward, Incentive.reference_id)
        # Shown masked (delivery_hint): the delivery itself is neither read nor decrypted.
        .options(defer(Reward.delivery, raiseload=True))
        .join(Incentive, Incentive.id == Reward.incentive_id)
        .where(*conditions)
        .order_by(Reward.created_at.desc(), Reward.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return page_of(
        [RewardOut.of(reward, ref) for reward, ref in rows],
        lambda: db.scalar(select(func.count()).select_from(Reward).where(*conditions)) or 0,
        limit=limit,
        offset=offset,
    )


def reward_detail(db: Session, reference: str) -> RewardDetail:
    """A reward with every transition; :class:`RewardNotFound` when there is none."""
    reward = get_reward(db, reference)
    incentive = db.get(Incentive, reward.incentive_id)
    assert incentive is not None
    transitions = db.scalars(
        select(RewardTransition)
        .where(RewardTransition.reward_id == reward.id)
        .order_by(RewardTransition.id)
    ).all()
    base = RewardOut.of(reward, incentive.reference_id)
    return RewardDetail(
        **base.model_dump(),
        transitions=[
            TransitionOut(
                from_status=t.from_status,
                to_status=t.to_status,
                actor=t.actor,
                reason=t.reason,
                at=t.at,
            )
            for t in transitions
        ],
    )


class ActionResultOut(BaseModel):
    reference_id: str
    ok: bool
    status: str
    message: str


class BulkOut(BaseModel):
    succeeded: int
    failed: int
    results: list[ActionResultOut]


def bulk_outcome(results: list[ActionResult]) -> BulkOut:
    return BulkOut(
        succeeded=sum(1 for r in results if r.ok),
        failed=sum(1 for r in results if not r.ok),
        results=[ActionResultOut(**vars(r)) for r in results],
    )


class LowStockOut(BaseModel):
    reference_id: str
    incentive_name: str
    pool_id: int
    pool_name: str
    value: str
    unused: int = Field(description="Unused, unexpired codes of the incentive's value.")
    threshold: int = Field(description="The incentive's low_stock_threshold.")
    message: str


class TangoAccountOut(BaseModel):
    id: int
    name: str
    base_url: str = Field(description="A password in it (user:password@) is masked.")
    platform_name: str
    platform_key: str = Field(description="Masked: the last 4 characters at most.")
    customer_id: str
    account_id: str
    created_at: datetime

    @classmethod
    def of(cls, account: TangoAccount) -> TangoAccountOut:
        return cls(
            id=account.id,
            name=account.name,
            base_url=shown_base_url(account.base_url),
            platform_name=account.platform_name,
            platform_key=mask(account.platform_key),
            customer_id=account.customer_id,
            account_id=account.account_id,
            created_at=account.created_at,
        )


class CatalogItemOut(BaseModel):
    """An item of a Tango account's catalog: what an incentive's ``utid`` and amount may be."""

    brand: str
    utid: str
    reward_name: str
    currency: str
    value_type: str = Field(description="FIXED_VALUE or VARIABLE_VALUE, as Tango says.")
    face_value: Decimal | None = Field(description="The only amount of a fixed-value item.")
    min_value: Decimal | None
    max_value: Decimal | None
    whole_amount_required: bool
    status: str
    value: str = Field(description="The amounts allowed, e.g. '10.00 USD' or '5.00-500.00 USD'.")

    @classmethod
    def of(cls, item: CatalogItem) -> CatalogItemOut:
        return cls(**{name: getattr(item, name) for name in cls.model_fields})


class ApiKeyOut(BaseModel):
    id: int
    platform: str
    display_name: str
    key: str = Field(description="Masked; reveal it with POST …/reveal.")
    status: Literal["active", "deactivated"]
    created_at: datetime
    created_by: str | None
    deactivated_at: datetime | None
    deactivated_by: str | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: PlatformApiKey, platform: str) -> ApiKeyOut:
        return cls(
            id=key.id,
            platform=platform,
            display_name=key.display_name,
            key=f"{api_keys.KEY_PREFIX}••••{key.last4}",
            status="active" if key.active_slot is not None else "deactivated",
            created_at=key.created_at,
            created_by=key.created_by,
            deactivated_at=key.deactivated_at,
            deactivated_by=key.deactivated_by,
            last_used_at=key.last_used_at,
        )


# --- configuration review ------------------------------------------------------------------------


class ProviderHealthOut(BaseModel):
    ok: bool
    summary: str
    balance: Decimal | None
    currency: str | None
    stock: int | None
    key_status: str | None
    warnings: list[str]
    details: dict[str, Any]


class AutomationReviewOut(BaseModel):
    automation_id: int
    name: str
    enabled: bool
    survey_id: str | None
    survey_name: str | None
    email_source: str
    email_field: str | None
    email_question: str | None
    email_required: bool | None
    fraud_detection: dict[str, bool]
    anonymous_link: bool | None
    warnings: list[str]


class ReviewOut(BaseModel):
    incentive: IncentiveOut
    provider: ProviderHealthOut
    automations: list[AutomationReviewOut]
    limits: dict[str, Any]
    fraud_rules: list[str]
    warnings: list[str]


def review_out(review: Review) -> ReviewOut:
    """What REST answers and ``qualflow incentives review`` prints of a configuration review."""
    return ReviewOut(
        incentive=IncentiveOut.of(review.incentive),
        provider=ProviderHealthOut(**vars(review.provider)),
        automations=[
            AutomationReviewOut(
                **{k: v for k, v in vars(a).items() if k in AutomationReviewOut.model_fields}
            )
            for a in review.automations
        ],
        limits=review.limits,
        fraud_rules=review.fraud_rules,
        warnings=review.warnings,
    )
