"""REST: ``/api/v1/incentives/...`` — incentives, rewards and the review queue, providers'
accounts and pools, platform API keys, and the platform endpoint that requests rewards.

Permissions: the Incentives area (View to read, Manage to change) and the API keys area (View
to list and reveal keys — each reveal audited —, Manage to create, rename and deactivate). The
platform endpoint ``POST /incentives/{reference_id}/rewards`` authenticates with HTTP Basic:
platform name and API key.
"""

from __future__ import annotations

import asyncio
import binascii
from base64 import b64decode
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import AfterValidator, BaseModel, Field, field_validator
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qualflow.accounts.dependencies import require
from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.principal import Principal
from qualflow.incentives import api_keys
from qualflow.incentives.action import (
    SendRewardConfig,
    extract_email,
    extract_first_name,
    ip_address_of,
)
from qualflow.incentives.emails import NO_EMAIL_MESSAGE, normalize_email
from qualflow.incentives.export import rewards_csv
from qualflow.incentives.ids import normalize_reference
from qualflow.incentives.lifecycle import TransitionError, describe
from qualflow.incentives.manage import (
    MAX_POOL_DESCRIPTION,
    IncentiveError,
    IncentiveUnchecked,
    InUse,
    NameTaken,
    low_stock,
)
from qualflow.incentives.models import (
    ApiPlatform,
    Incentive,
    PlatformApiKey,
    Reward,
    check_statuses,
)
from qualflow.incentives.platform_request import (
    PlatformRewardIn,
    read_platform_reward,
    request_body_openapi,
)
from qualflow.incentives.providers.gift_codes import MAX_IMPORT_BYTES, MAX_IMPORT_MB
from qualflow.incentives.providers.tango_client import TangoError
from qualflow.incentives.review import Review, automations_using
from qualflow.incentives.review import load_review as load_incentive_review
from qualflow.incentives.runtime import IncentivesRuntime, get_runtime
from qualflow.incentives.schemas import (
    IncentivePatch,
    IncentiveSpec,
    TextInput,
    refuse_nul,
)
from qualflow.incentives.service import (
    ActionResult,
    IncentiveNotFound,
    RewardFailed,
    RewardNotFound,
    RewardRequestIn,
    RewardRetry,
    Submission,
    get_incentive,
    get_reward,
    incentive_reference,
)

# What the command line prints too lives there (without FastAPI): the same names here.
from qualflow.incentives.views import ActionResultOut as ActionResultOut
from qualflow.incentives.views import (
    ApiKeyOut,
    BulkOut,
    CatalogItemOut,
    IncentiveOut,
    LowStockOut,
    ReviewOut,
    RewardDetail,
    RewardPage,
    TangoAccountOut,
    TransitionOut,
    bulk_outcome,
    review_out,
    reward_detail,
    reward_page,
)
from qualflow.incentives.views import AutomationReviewOut as AutomationReviewOut
from qualflow.incentives.views import ProviderHealthOut as ProviderHealthOut
from qualflow.incentives.views import RewardCounts as RewardCounts
from qualflow.incentives.views import RewardOut as RewardOut
from qualflow.web.api.created import set_location
from qualflow.web.api.paging import DEFAULT_LIMIT, Limit, Page, page_of, parameter_error
from qualflow.web.deps import (
    ApiError,
    DbSession,
    Offset,
    ResourceId,
    error_responses,
    read_limited,
    refused_field,
)

router = APIRouter(prefix="/incentives")

Runtime = Annotated[IncentivesRuntime, Depends(get_runtime)]
Viewer = Annotated[Principal, Depends(require(Area.INCENTIVES, Level.VIEW))]
Manager = Annotated[Principal, Depends(require(Area.INCENTIVES, Level.MANAGE))]
KeyViewer = Annotated[Principal, Depends(require(Area.API_KEYS, Level.VIEW))]
KeyManager = Annotated[Principal, Depends(require(Area.API_KEYS, Level.MANAGE))]

_ERRORS = error_responses(401, 403, 404, 409, 422)
#: An operation that calls another service (Tango, the mail server) also answers 502 when it fails.
_UPSTREAM_ERRORS = {**_ERRORS, **error_responses(502)}
#: A collection read names no resource: no 404 or 409 (FastAPI adds the 422 of parameters).
_LIST_ERRORS = error_responses(401, 403)
TAG_INCENTIVES = "incentives"
TAG_REWARDS = "rewards"
TAG_PROVIDERS = "reward providers"
TAG_KEYS = "platform API keys"
TAG_PLATFORM = "platform"
#: The OpenAPI description of each tag above.
OPENAPI_TAGS = [
    {"name": TAG_INCENTIVES, "description": "Incentives: what a respondent is paid, by whom."},
    {"name": TAG_REWARDS, "description": "Rewards of every incentive: review, pay, export."},
    {"name": TAG_PROVIDERS, "description": "Where rewards come from: Tango accounts, code pools."},
    {"name": TAG_KEYS, "description": "API keys other platforms use to request rewards."},
    {"name": TAG_PLATFORM, "description": "What other platforms call, with a platform API key."},
]

#: What a platform's ``Authorization`` header must hold, for the answers that say it is not so.
BASIC_FORM = (
    "expected 'Basic ' followed by the base64 of 'platform:key', i.e. HTTP Basic with your "
    "platform name as the user name and the API key as the password"
)


class PlatformBasic(HTTPBasic):
    """HTTP Basic whose answer to a ``Basic`` header it cannot read says what is wrong with it
    (FastAPI's own says "Not authenticated" whatever it was). No header, or another scheme,
    gives None: the endpoint answers that authentication is required."""

    async def __call__(  # type: ignore[override]  # as HTTPBasic's own
        self, request: HTTPConnection
    ) -> HTTPBasicCredentials | None:
        authorization = request.headers.get("Authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "basic":
            return None
        if not param:
            raise _malformed_basic("holds no credentials after 'Basic'")
        try:
            decoded = b64decode(param, validate=True)
        except (binascii.Error, ValueError):
            raise _malformed_basic("is not base64 after 'Basic'") from None
        try:
            text = decoded.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed_basic("is not UTF-8 text once decoded from base64") from None
        username, separator, password = text.partition(":")
        if not separator:
            raise _malformed_basic("has no ':' between the platform name and the API key")
        return HTTPBasicCredentials(username=username, password=password)


def _malformed_basic(problem: str) -> ApiError:
    return _platform_unauthorized(f"the Authorization header {problem}: {BASIC_FORM}")


def _platform_unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message,
        headers={"WWW-Authenticate": 'Basic realm="qualflow incentives"'},
    )  # fmt: skip


platform_auth = PlatformBasic(
    auto_error=False,
    scheme_name="PlatformKey",
    realm="qualflow incentives",
    description="HTTP Basic with the platform name as user name and a platform API key as "
    "password (created under /api/v1/incentives/api-keys).",
)


def _not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def _reference(reference_id: str) -> str:
    try:
        return incentive_reference(reference_id)
    except IncentiveNotFound as exc:
        raise _not_found(str(exc)) from None


# --- bodies --------------------------------------------------------------------------------------


class IncentiveUpdateOut(IncentiveOut):
    """A changed incentive, with what the change means."""

    warnings: list[str] = Field(
        default_factory=list,
        examples=[
            [
                "max rewards 10 is below the 15 rewards already committed: no new reward will "
                "be paid until fewer than 10 are committed or max rewards is above 15 (rewards "
                "already committed are not taken back)"
            ]
        ],
        description="What the change means that it does not refuse, e.g. a max rewards or "
        "budget set below what the incentive already committed: saved, but no new reward is "
        "paid until the committed fall under it or it is raised. Empty when there is nothing "
        "to say.",
    )


class ReasonBody(TextInput):
    reason: str = Field(default="", max_length=1000)


class BulkBody(TextInput):
    action: Literal["release", "block", "cancel", "retry", "mark_paid"]
    rewards: list[str] = Field(min_length=1, max_length=1000, examples=[["RW-7F3K2QMX"]])
    reason: str = Field(default="", max_length=1000)


class ResendBody(TextInput):
    email: str | None = Field(default=None, description="Send to a corrected address instead.")


class PlatformRewardOut(BaseModel):
    reference_id: str = Field(description="The reward's id (RW-…).")
    status: str
    reasons: list[str]
    message: str


class TestRewardIn(TextInput):
    automation_id: int | None = Field(
        default=None, description="Read the email as this automation's reward step does."
    )
    response_id: str | None = Field(
        default=None,
        max_length=64,
        description="A response of the automation's survey (fetched from Qualtrics).",
    )
    values: dict[str, Any] | None = Field(
        default=None, description="Response values to test with instead of fetching a response."
    )
    # Not checked as an address: the test reports what a real request with it would get.
    email: str | None = Field(
        default=None, max_length=320, description="Test with this email directly."
    )
    first_name: str | None = Field(default=None, max_length=100)
    send_to: str | None = Field(
        default=None, max_length=320, description="Where the test email goes (default: you)."
    )

    @field_validator("send_to")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is not None and normalize_email(value) is None:
            raise ValueError(f"{value!r} is not an email address")
        return value


class TestStepOut(BaseModel):
    name: str
    ok: bool
    detail: str


class TestRewardOut(BaseModel):
    ok: bool
    paid: bool = Field(default=False, description="Always false: a test pays nobody.")
    steps: list[TestStepOut]


class TangoAccountIn(TextInput):
    name: str = Field(min_length=1, max_length=200)
    base_url: str = Field(
        default="https://integration-api.tangocard.com",
        description="https://api.tangocard.com for production; /raas/v2 is appended.",
    )
    platform_name: str = Field(min_length=1, max_length=200)
    platform_key: str = Field(min_length=1, description="Stored encrypted, never returned.")
    customer_id: str = Field(min_length=1, max_length=100)
    account_id: str = Field(min_length=1, max_length=100)


class TangoAccountPatch(TextInput):
    name: str | None = None
    base_url: str | None = None
    platform_name: str | None = None
    platform_key: str | None = None
    customer_id: str | None = None
    account_id: str | None = None


class PoolIn(TextInput):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=MAX_POOL_DESCRIPTION)


class PoolStockOut(BaseModel):
    value: str
    currency: str
    unused: int
    used: int
    expired: int


class PoolOut(BaseModel):
    id: int
    name: str
    description: str
    created_at: datetime
    stock: list[PoolStockOut]


class ImportOut(BaseModel):
    imported: int = Field(description="Codes added to the pool.")
    duplicates: int = Field(
        description="Lines skipped: their code is in the pool (or earlier in the file) with "
        "the same value, currency and expiry."
    )
    errors: list[str] = Field(
        description="Lines rejected, each as 'line N: why' (a code repeated with another "
        "value, currency or expiry is one)."
    )


class ApiKeyIn(TextInput):
    platform: str = Field(examples=["acme-research"], description="The HTTP Basic user name.")
    display_name: str = Field(min_length=1, max_length=100, examples=["Qualtrics workflow"])


class ApiKeyPatch(TextInput):
    display_name: str = Field(min_length=1, max_length=100)


class RevealedKey(BaseModel):
    platform: str
    key: str


class AuditOut(BaseModel):
    action: str
    actor: str
    detail: str
    at: datetime


# --- incentives ----------------------------------------------------------------------------------


def _load_incentive(db: Session, reference_id: str) -> Incentive:
    try:
        return get_incentive(db, _reference(reference_id))
    except IncentiveNotFound as exc:
        raise _not_found(str(exc)) from None


@router.get(
    "",
    tags=[TAG_INCENTIVES],
    response_model=Page[IncentiveOut],
    responses=_LIST_ERRORS,
    summary="List incentives, newest first",
)
def list_incentives(
    runtime: Runtime,
    _viewer: Viewer,
    active: bool | None = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Name or reference"),
        AfterValidator(refuse_nul),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Page[IncentiveOut]:
    """Incentives newest first (by creation, then id), optionally only active ones or those whose
    name or reference matches `q`, with their reward counts, one page at a time (`limit`,
    `offset`); `total` counts every match."""
    manager = runtime.manager
    incentives = manager.list_incentives(active=active, q=q, limit=limit, offset=offset)
    counts = manager.counts([i.id for i in incentives])
    return page_of(
        [IncentiveOut.of(i, counts[i.id]) for i in incentives],
        lambda: manager.count_incentives(active=active, q=q),
        limit=limit,
        offset=offset,
    )


@router.post(
    "",
    tags=[TAG_INCENTIVES],
    response_model=IncentiveOut,
    status_code=status.HTTP_201_CREATED,
    responses=_UPSTREAM_ERRORS,
    summary="Create an incentive (its value is checked with the provider)",
)
async def create_incentive(
    spec: IncentiveSpec, runtime: Runtime, manager: Manager, request: Request, response: Response
) -> IncentiveOut:
    """Save a new incentive; its reward value is checked with the provider (422 when the provider
    refuses it, 502 when Tango cannot be asked). Answers the incentive with its reference
    (INC-…)."""
    try:
        incentive = await runtime.manager.create(spec, actor=manager.email)
    except IncentiveUnchecked as exc:
        raise ApiError(502, "tango_error", str(exc)) from None
    except IncentiveError as exc:
        raise refused_field("invalid_incentive", str(exc), exc.field) from None
    set_location(request, response, get_incentive_detail, reference_id=incentive.reference_id)
    return IncentiveOut.of(incentive)


def _known_statuses(statuses: list[str]) -> list[str]:
    """``statuses``, or a 422 naming the ones that are not reward statuses."""
    try:
        return check_statuses(statuses)
    except ValueError as exc:
        raise parameter_error("status", str(exc)) from None


@router.get(
    "/rewards",
    tags=[TAG_REWARDS],
    response_model=RewardPage,
    responses=error_responses(401, 403, 404, 422),
    summary="List and filter rewards (the review queue is status=held)",
)
def list_rewards(
    db: DbSession,
    _viewer: Viewer,
    incentive: str | None = None,
    reward_status: Annotated[
        list[str] | None, Query(alias="status", description="One or more statuses.")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=320, description="Email or RW- reference"),
        AfterValidator(refuse_nul),
    ] = None,
    source: Literal["automation", "api", "manual"] | None = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> RewardPage:
    """Rewards of every incentive, filtered by incentive, status, source or `q` (email or RW-
    reference), newest first, one page at a time (`limit`, `offset`); `total` counts every match."""
    return reward_page(
        db,
        incentive_id=_load_incentive(db, incentive).id if incentive else None,
        statuses=_known_statuses(reward_status) if reward_status else None,
        q=q,
        source=source,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/rewards/bulk",
    tags=[TAG_REWARDS],
    response_model=BulkOut,
    responses=_ERRORS,
    summary="Release, block, cancel, retry or mark paid many rewards at once",
)
def bulk_rewards(body: BulkBody, runtime: Runtime, manager: Manager) -> BulkOut:
    """Apply one action (release, block, cancel, retry or mark paid) to many rewards. Each reward's
    outcome is answered separately; one that cannot take the action does not stop the others."""
    service = runtime.service
    actor = manager.email
    if body.action == "release":
        results = service.release(body.rewards, actor=actor, note=body.reason)
    elif body.action == "block":
        results = service.block(body.rewards, actor=actor, reason=body.reason)
    elif body.action == "cancel":
        results = service.cancel(body.rewards, actor=actor, reason=body.reason)
    elif body.action == "retry":
        results = service.retry(body.rewards, actor=actor)
    else:
        results = service.mark_paid(body.rewards, actor=actor)
    runtime.fulfiller.wake()
    return bulk_outcome(results)


def _reward_detail(db: Session, reference: str) -> RewardDetail:
    try:
        return reward_detail(db, reference)
    except RewardNotFound as exc:
        raise _not_found(str(exc)) from None


@router.get(
    "/rewards/{reward_id}",
    tags=[TAG_REWARDS],
    response_model=RewardDetail,
    responses=_ERRORS,
    summary="A reward with every transition (who, why, when)",
)
def get_reward_detail(reward_id: str, db: DbSession, _viewer: Viewer) -> RewardDetail:
    """One reward with its status, reasons and every lifecycle transition (who, why, when). 404 when
    it does not exist."""
    return _reward_detail(db, reward_id)


@router.get(
    "/rewards/{reward_id}/transitions",
    tags=[TAG_REWARDS],
    response_model=list[TransitionOut],
    responses=_ERRORS,
    summary="A reward's lifecycle transitions",
)
def get_transitions(reward_id: str, db: DbSession, _viewer: Viewer) -> list[TransitionOut]:
    """A reward's lifecycle transitions, oldest first: from and to status, who made them, why and
    when."""
    return _reward_detail(db, reward_id).transitions


def _single(results: list[ActionResult], db: Session) -> RewardDetail:
    result = results[0]
    if not result.ok:
        code = 404 if result.message.endswith("does not exist") else 409
        raise ApiError(code, "not_found" if code == 404 else "conflict", result.message)
    return _reward_detail(db, result.reference_id)


@router.post(
    "/rewards/{reward_id}/release",
    tags=[TAG_REWARDS],
    response_model=RewardDetail,
    responses=_ERRORS,
    summary="Release a held reward: it is approved and paid",
)
async def release_reward(
    reward_id: str, runtime: Runtime, db: DbSession, manager: Manager,
    body: Annotated[ReasonBody | None, Body()] = None,
) -> RewardDetail:  # fmt: skip
    """Approve a held reward, optionally with a reason, and pay it at once: the answer says how it
    ended (sent, or held again with the reason, e.g. a balance still too low). 409 when the reward
    cannot take this action in its current status."""
    owner = f"api:{normalize_reference(reward_id)}"
    results = await asyncio.to_thread(
        runtime.service.release,
        [reward_id],
        actor=manager.email,
        note=body.reason if body else "",
        lease_owner=owner,
    )
    if results[0].ok:
        await _fulfil_now(runtime, results[0].reference_id, owner)
    return _single(results, db)


@router.post(
    "/rewards/{reward_id}/block",
    tags=[TAG_REWARDS],
    response_model=RewardDetail,
    responses=_ERRORS,
    summary="Block a held reward: the respondent is not paid",
)
def block_reward(
    reward_id: str, runtime: Runtime, db: DbSession, manager: Manager,
    body: Annotated[ReasonBody | None, Body()] = None,
) -> RewardDetail:  # fmt: skip
    """Refuse a held reward, optionally with a reason; the respondent is not paid. 409 when the
    reward cannot take this action in its current status."""
    results = runtime.service.block(
        [reward_id], actor=manager.email, reason=body.reason if body else ""
    )
    return _single(results, db)


@router.post(
    "/rewards/{reward_id}/cancel",
    tags=[TAG_REWARDS],
    response_model=RewardDetail,
    responses=_ERRORS,
    summary="Cancel a reward nobody was paid for yet",
)
def cancel_reward(
    reward_id: str, runtime: Runtime, db: DbSession, manager: Manager,
    body: Annotated[ReasonBody | None, Body()] = None,
) -> RewardDetail:  # fmt: skip
    """Cancel a reward that nobody was paid for yet, optionally with a reason. 409 when the reward
    cannot take this action in its current status."""
    results = runtime.service.cancel(
        [reward_id], actor=manager.email, reason=body.reason if body else ""
    )
    return _single(results, db)


@router.post(
    "/rewards/{reward_id}/retry",
    tags=[TAG_REWARDS],
    response_model=RewardDetail,
    responses=_ERRORS,
    summary="Try paying a failed reward again",
)
def retry_reward(reward_id: str, runtime: Runtime, db: DbSession, manager: Manager) -> RewardDetail:
    """Try paying a failed reward again with its provider. 409 when the reward cannot take this
    action in its current status."""
    results = runtime.service.retry([reward_id], actor=manager.email)
    runtime.fulfiller.wake()
    return _single(results, db)


@router.post(
    "/rewards/{reward_id}/mark-paid",
    tags=[TAG_REWARDS],
    response_model=RewardDetail,
    responses=_ERRORS,
    summary="Record that a manual reward was paid by hand (the email goes out next)",
)
async def mark_paid(
    reward_id: str, runtime: Runtime, db: DbSession, manager: Manager
) -> RewardDetail:
    """Record that a manual reward was paid by hand; the reward email goes out next. 409 when the
    reward cannot take this action in its current status."""
    owner = f"api:{normalize_reference(reward_id)}"
    results = await asyncio.to_thread(
        runtime.service.mark_paid, [reward_id], actor=manager.email, lease_owner=owner
    )
    if results[0].ok:
        await _fulfil_now(runtime, results[0].reference_id, owner)
    return _single(results, db)


async def _fulfil_now(
    runtime: IncentivesRuntime,
    reference: str,
    owner: str,
    submitted: Submission | None = None,
) -> None:
    """Pay/email right away when quick; the fulfiller finishes anything slower.

    ``submitted``: the submission that just created the reward under ``owner``'s lease."""

    def reward_id() -> int:
        with runtime.factory() as session:
            return get_reward(session, reference).id

    try:
        if submitted is not None and submitted.reward is not None:
            rid = submitted.reward.id
        else:
            rid = await asyncio.to_thread(reward_id)
        await asyncio.wait_for(
            runtime.service.fulfil(rid, owner=owner, submitted=submitted), timeout=8.0
        )
    except (RewardRetry, RewardFailed, TimeoutError):
        runtime.fulfiller.wake()


@router.post(
    "/rewards/{reward_id}/resend",
    tags=[TAG_REWARDS],
    response_model=RewardDetail,
    responses=_UPSTREAM_ERRORS,
    summary="Email a paid reward again (optionally to a corrected address)",
)
async def resend_reward(
    reward_id: str, runtime: Runtime, db: DbSession, manager: Manager,
    body: Annotated[ResendBody | None, Body()] = None,
) -> RewardDetail:  # fmt: skip
    """Send a paid reward's email again, optionally to a corrected address. 502 when the email
    cannot be sent."""
    try:
        await runtime.service.resend(
            reward_id, actor=manager.email, new_email=body.email if body else None
        )
    except RewardNotFound as exc:
        raise _not_found(str(exc)) from None
    except TransitionError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except ValueError as exc:
        # The one ValueError of a resend: the corrected address is not an email address.
        wrong_email = body is not None and body.email is not None
        raise refused_field(
            "validation_error", str(exc), "email" if wrong_email else None
        ) from None
    except RewardFailed as exc:
        raise ApiError(502, "email_failed", exc.reason) from None
    db.expire_all()
    return _reward_detail(db, reward_id)


# --- providers: Tango accounts and gift-code pools -----------------------------------------------


@router.get(
    "/providers/tango-accounts",
    tags=[TAG_PROVIDERS],
    response_model=list[TangoAccountOut],
    responses=_LIST_ERRORS,
    summary="List Tango accounts (keys masked)",
)
def list_tango_accounts(runtime: Runtime, _viewer: Viewer) -> list[TangoAccountOut]:
    """The Tango accounts rewards can be ordered from; keys and passwords are masked."""
    return [TangoAccountOut.of(a) for a in runtime.manager.tango_accounts()]


@router.post(
    "/providers/tango-accounts",
    tags=[TAG_PROVIDERS],
    response_model=TangoAccountOut,
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
    summary="Add a Tango account (platform name + key, customer and account ids)",
)
def create_tango_account(
    body: TangoAccountIn,
    runtime: Runtime,
    _manager: Manager,
    request: Request,
    response: Response,
) -> TangoAccountOut:
    """Save a Tango account (platform name and key, customer and account ids) to order rewards from.
    The key is stored encrypted and answered masked. 422 when the account is not valid."""
    try:
        account = runtime.manager.create_tango_account(**body.model_dump())
    except IncentiveError as exc:
        raise refused_field("invalid_account", str(exc), exc.field) from None
    set_location(request, response, update_tango_account, account_id=account.id)
    return TangoAccountOut.of(account)


@router.get(
    "/providers/tango-accounts/{account_id}/catalog",
    tags=[TAG_PROVIDERS],
    response_model=list[CatalogItemOut],
    responses=_UPSTREAM_ERRORS,
    summary="List the catalog items a Tango account can order (utid, value range)",
)
async def tango_catalog(
    account_id: ResourceId, runtime: Runtime, _viewer: Viewer
) -> list[CatalogItemOut]:
    """The catalog items the Tango account can order, with their utid and value range, as Tango
    answers them. 502 when Tango does not answer."""
    try:
        items = await runtime.manager.tango_catalog(account_id)
    except LookupError as exc:
        raise _not_found(str(exc)) from None
    except TangoError as exc:
        raise ApiError(502, "tango_error", str(exc)) from None
    return [CatalogItemOut.of(item) for item in items]


@router.patch(
    "/providers/tango-accounts/{account_id}",
    tags=[TAG_PROVIDERS],
    response_model=TangoAccountOut,
    responses=_ERRORS,
    summary="Change a Tango account",
)
def update_tango_account(
    account_id: ResourceId, body: TangoAccountPatch, runtime: Runtime, _manager: Manager
) -> TangoAccountOut:
    """Change the fields given of a Tango account; the others keep their value. Keys are answered
    masked."""
    try:
        account = runtime.manager.update_tango_account(
            account_id, **body.model_dump(exclude_unset=True)
        )
    except LookupError as exc:
        raise _not_found(str(exc)) from None
    except IncentiveError as exc:
        raise refused_field("invalid_account", str(exc), exc.field) from None
    return TangoAccountOut.of(account)


@router.delete(
    "/providers/tango-accounts/{account_id}",
    tags=[TAG_PROVIDERS],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    summary="Delete a Tango account no incentive uses",
)
def delete_tango_account(account_id: ResourceId, runtime: Runtime, _manager: Manager) -> Response:
    """Delete a Tango account. 409 when an incentive uses it."""
    try:
        runtime.manager.delete_tango_account(account_id)
    except LookupError as exc:
        raise _not_found(str(exc)) from None
    except InUse as exc:
        raise ApiError(409, "in_use", str(exc)) from None
    return Response(status_code=204)


def _pool_out(runtime: IncentivesRuntime, pool_id: int) -> PoolOut:
    try:
        pool = runtime.manager.pool(pool_id)
    except LookupError as exc:
        raise _not_found(str(exc)) from None
    return PoolOut(
        id=pool.id,
        name=pool.name,
        description=pool.description,
        created_at=pool.created_at,
        stock=[PoolStockOut(**entry) for entry in runtime.manager.pool_stock(pool.id)],
    )


@router.get(
    "/providers/low-stock",
    tags=[TAG_PROVIDERS],
    response_model=list[LowStockOut],
    responses=_LIST_ERRORS,
    summary="Open gift-code incentives running out of codes (below their low-stock threshold)",
)
def list_low_stock(db: DbSession, _viewer: Viewer) -> list[LowStockOut]:
    """Open gift-code incentives whose pool has fewer unused codes than their low-stock threshold.
    Open gift-code incentives whose pool has fewer unused codes than their low-stock threshold."""
    return [LowStockOut(**{**vars(item), "message": item.message}) for item in low_stock(db)]


@router.get(
    "/providers/gift-code-pools",
    tags=[TAG_PROVIDERS],
    response_model=Page[PoolOut],
    responses=_LIST_ERRORS,
    summary="List gift-code pools with their stock, by name",
)
def list_pools(
    runtime: Runtime, _viewer: Viewer, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
) -> Page[PoolOut]:
    """Gift-code pools by name with their stock per value (unused, used and expired codes), one
    page at a time (`limit`, `offset`); `total` counts every pool."""
    pools = runtime.manager.pools(limit=limit, offset=offset)
    return page_of(
        [_pool_out(runtime, pool.id) for pool in pools],
        runtime.manager.count_pools,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/providers/gift-code-pools",
    tags=[TAG_PROVIDERS],
    response_model=PoolOut,
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
    summary="Create a gift-code pool",
)
def create_pool(
    body: PoolIn, runtime: Runtime, _manager: Manager, request: Request, response: Response
) -> PoolOut:
    """Create an empty gift-code pool; import codes into it with POST …/codes. 409 when the name is
    taken; 422 naming the field when the name or description is refused."""
    try:
        pool = runtime.manager.create_pool(body.name, body.description)
    except NameTaken as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except IncentiveError as exc:
        raise refused_field("invalid_pool", str(exc), exc.field) from None
    set_location(request, response, get_pool, pool_id=pool.id)
    return _pool_out(runtime, pool.id)


@router.get(
    "/providers/gift-code-pools/{pool_id}",
    tags=[TAG_PROVIDERS],
    response_model=PoolOut,
    responses=_ERRORS,
    summary="A gift-code pool and its stock per value",
)
def get_pool(pool_id: ResourceId, runtime: Runtime, _viewer: Viewer) -> PoolOut:
    """One gift-code pool with its stock per value. 404 when it does not exist."""
    return _pool_out(runtime, pool_id)


@router.post(
    "/providers/gift-code-pools/{pool_id}/codes",
    tags=[TAG_PROVIDERS],
    response_model=ImportOut,
    responses=error_responses(401, 403, 404, 409, 413, 422),
    summary="Import codes from CSV (code,value,currency,expiry)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_pool_codes(
    pool_id: ResourceId, request: Request, runtime: Runtime, _manager: Manager
) -> ImportOut:
    """Add codes to the pool from a CSV body (`text/csv`; columns code, value, currency, expiry).
    422 when the CSV is not valid (the message says where); 413 when the body is too large."""
    raw = await read_limited(request, MAX_IMPORT_BYTES)
    if raw is None:
        raise ApiError(
            413, "payload_too_large", f"the CSV is larger than {MAX_IMPORT_MB} MB; split it"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "validation_error", "the CSV must be UTF-8 text") from None
    try:
        report = await asyncio.to_thread(runtime.manager.import_codes, pool_id, text)
    except LookupError as exc:
        raise _not_found(str(exc)) from None
    except IncentiveError as exc:
        raise ApiError(422, "invalid_csv", str(exc)) from None
    return ImportOut(imported=report.imported, duplicates=report.duplicates, errors=report.errors)


@router.delete(
    "/providers/gift-code-pools/{pool_id}",
    tags=[TAG_PROVIDERS],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    summary="Delete a pool no incentive uses and whose codes were never given out",
)
def delete_pool(pool_id: ResourceId, runtime: Runtime, _manager: Manager) -> Response:
    """Delete a gift-code pool. 409 when an incentive uses it or one of its codes was given out."""
    try:
        runtime.manager.delete_pool(pool_id)
    except LookupError as exc:
        raise _not_found(str(exc)) from None
    except InUse as exc:
        raise ApiError(409, "in_use", str(exc)) from None
    return Response(status_code=204)


# --- platform API keys ---------------------------------------------------------------------------


@router.get(
    "/api-keys",
    tags=[TAG_KEYS],
    response_model=Page[ApiKeyOut],
    responses=_LIST_ERRORS,
    summary="List platform API keys (masked) with their last use, by platform",
)
def list_api_keys(
    db: DbSession,
    _viewer: KeyViewer,
    platform: Annotated[str | None, AfterValidator(refuse_nul)] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Page[ApiKeyOut]:
    """The platform API keys, optionally of one platform, masked to their last 4 characters, with
    who created them and when they were last used; by platform name, a platform's active keys
    before its deactivated ones, then oldest first, one page at a time (`limit`, `offset`);
    `total` counts every match."""
    keys = api_keys.list_keys(db, platform=platform, limit=limit, offset=offset)
    return page_of(
        [ApiKeyOut.of(key, name) for key, name in keys],
        lambda: api_keys.count_keys(db, platform=platform),
        limit=limit,
        offset=offset,
    )


def _key_error(exc: Exception) -> ApiError:
    if isinstance(exc, api_keys.KeyNotFound):
        return _not_found(str(exc))
    if isinstance(exc, api_keys.TooManyKeys):
        return ApiError(409, "too_many_keys", str(exc))
    if isinstance(exc, api_keys.ApiKeyError):
        # A name refused is the body's field; any other refusal is the key's state (409).
        if "display name" in str(exc):
            return refused_field("api_key_error", str(exc), "display_name")
        if "platform name" in str(exc):
            return refused_field("api_key_error", str(exc), "platform")
        return ApiError(409, "api_key_error", str(exc))
    raise exc


@router.post(
    "/api-keys",
    tags=[TAG_KEYS],
    response_model=ApiKeyOut,
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
    summary="Create a platform API key (at most two active per platform)",
)
def create_api_key(
    body: ApiKeyIn, db: DbSession, manager: KeyManager, request: Request, response: Response
) -> ApiKeyOut:
    """Create an API key for a platform (at most two active per platform, so a key can be replaced
    without downtime). The answer shows it masked; reveal it with POST …/reveal."""
    try:
        key, _raw = api_keys.create_key(
            db, platform=body.platform, display_name=body.display_name, actor=manager.email
        )
        db.commit()
    except (api_keys.ApiKeyError, api_keys.KeyNotFound) as exc:
        db.rollback()
        raise _key_error(exc) from None
    set_location(request, response, rename_api_key, key_id=key.id)
    return ApiKeyOut.of(key, api_keys.check_platform_name(body.platform))


def _key_out(db: Session, key: PlatformApiKey) -> ApiKeyOut:
    platform = db.get_one(ApiPlatform, key.platform_id)
    return ApiKeyOut.of(key, platform.name)


@router.patch(
    "/api-keys/{key_id}",
    tags=[TAG_KEYS],
    response_model=ApiKeyOut,
    responses=_ERRORS,
    summary="Rename a key (its display name)",
)
def rename_api_key(
    key_id: ResourceId, body: ApiKeyPatch, db: DbSession, manager: KeyManager
) -> ApiKeyOut:
    """Change a key's display name; the key itself does not change."""
    try:
        key = api_keys.rename_key(db, key_id, body.display_name, actor=manager.email)
        db.commit()
    except (api_keys.ApiKeyError, api_keys.KeyNotFound) as exc:
        raise _key_error(exc) from None
    return _key_out(db, key)


@router.post(
    "/api-keys/{key_id}/deactivate",
    tags=[TAG_KEYS],
    response_model=ApiKeyOut,
    responses=_ERRORS,
    summary="Deactivate a key — irreversibly: callers using it are refused from now on",
)
def deactivate_api_key(key_id: ResourceId, db: DbSession, manager: KeyManager) -> ApiKeyOut:
    """Deactivate a key for good: requests sending it are refused from now on. This cannot be
    undone."""
    try:
        key = api_keys.deactivate_key(db, key_id, actor=manager.email)
        db.commit()
    except (api_keys.ApiKeyError, api_keys.KeyNotFound) as exc:
        raise _key_error(exc) from None
    return _key_out(db, key)


@router.post(
    "/api-keys/{key_id}/reveal",
    tags=[TAG_KEYS],
    response_model=RevealedKey,
    responses=_ERRORS,
    summary="Reveal a key to copy it (View permission on API keys; every reveal is audited)",
)
def reveal_api_key(
    key_id: ResourceId, db: DbSession, viewer: KeyViewer, response: Response
) -> RevealedKey:
    """Answer the key in full so it can be copied into the calling platform. Every reveal is
    recorded in the key's audit; the answer is not cached."""
    try:
        platform, key = api_keys.reveal_key(db, key_id, actor=viewer.email)
        db.commit()
    except (api_keys.ApiKeyError, api_keys.KeyNotFound) as exc:
        raise _key_error(exc) from None
    response.headers["Cache-Control"] = "no-store"
    return RevealedKey(platform=platform, key=key)


@router.get(
    "/api-keys/{key_id}/audit",
    tags=[TAG_KEYS],
    response_model=Page[AuditOut],
    responses=_ERRORS,
    summary="Who created, renamed, revealed or deactivated the key, newest first",
)
def api_key_audit(
    key_id: ResourceId,
    db: DbSession,
    _viewer: KeyViewer,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Page[AuditOut]:
    """Who created, renamed, revealed or deactivated the key, and when, newest first, one page at
    a time (`limit`, `offset`); `total` counts every entry. 404 when the key does not exist."""
    try:
        rows = api_keys.audit_log(db, key_id, limit=limit, offset=offset)
    except api_keys.KeyNotFound as exc:
        raise _not_found(str(exc)) from None
    return page_of(
        [AuditOut(action=r.action, actor=r.actor, detail=r.detail, at=r.at) for r in rows],
        lambda: api_keys.count_audit(db, key_id),
        limit=limit,
        offset=offset,
    )


# --- one incentive -------------------------------------------------------------------------------


@router.get(
    "/{reference_id}",
    tags=[TAG_INCENTIVES],
    response_model=IncentiveOut,
    responses=_ERRORS,
    summary="An incentive",
)
def get_incentive_detail(
    reference_id: str, db: DbSession, runtime: Runtime, _viewer: Viewer
) -> IncentiveOut:
    """One incentive with its settings and reward counts. 404 when it does not exist."""
    incentive = _load_incentive(db, reference_id)
    return IncentiveOut.of(incentive, runtime.manager.counts([incentive.id])[incentive.id])


@router.patch(
    "/{reference_id}",
    tags=[TAG_INCENTIVES],
    response_model=IncentiveUpdateOut,
    responses=_UPSTREAM_ERRORS,
    summary="Change an incentive (validated again with the provider)",
)
async def update_incentive(
    reference_id: str, patch: IncentivePatch, runtime: Runtime, manager: Manager
) -> IncentiveUpdateOut:
    """Change the fields given; a changed reward value is checked with the provider again (502
    when Tango cannot be asked). The answer lists warnings, e.g. limits now below the rewards
    already committed."""
    try:
        incentive, warnings = await runtime.manager.update_with_warnings(
            _reference(reference_id), patch, actor=manager.email
        )
    except IncentiveNotFound as exc:
        raise _not_found(str(exc)) from None
    except IncentiveUnchecked as exc:
        raise ApiError(502, "tango_error", str(exc)) from None
    except IncentiveError as exc:
        raise refused_field("invalid_incentive", str(exc), exc.field) from None
    return IncentiveUpdateOut(**IncentiveOut.of(incentive).model_dump(), warnings=warnings)


@router.delete(
    "/{reference_id}",
    tags=[TAG_INCENTIVES],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    summary="Delete an incentive without rewards (pause it otherwise)",
)
def delete_incentive(reference_id: str, runtime: Runtime, _manager: Manager) -> Response:
    """Delete an incentive that has no rewards. 409 when it has some: pause it instead."""
    try:
        runtime.manager.delete(_reference(reference_id))
    except IncentiveNotFound as exc:
        raise _not_found(str(exc)) from None
    except InUse as exc:
        raise ApiError(409, "in_use", str(exc)) from None
    return Response(status_code=204)


@router.get(
    "/{reference_id}/review",
    tags=[TAG_INCENTIVES],
    response_model=ReviewOut,
    responses=_ERRORS,
    summary="Configuration review: survey, email source, provider health, limits, fraud rules",
)
async def review(reference_id: str, runtime: Runtime, _viewer: Viewer) -> ReviewOut:
    """A check of the incentive's configuration before it goes live: survey, where respondent emails
    come from, provider health, limits and fraud rules, and the automations that request its
    rewards."""
    return await build_review(runtime, reference_id)


async def load_review(runtime: IncentivesRuntime, reference_id: str) -> Review:
    """The configuration review of an incentive (404 when there is none), as
    :func:`qualflow.incentives.review.load_review` assembles it: the UI shows all of it, REST its
    :class:`ReviewOut`."""
    try:
        return await load_incentive_review(runtime, reference_id)
    except IncentiveNotFound as exc:
        raise _not_found(str(exc)) from None


async def build_review(runtime: IncentivesRuntime, reference_id: str) -> ReviewOut:
    return review_out(await load_review(runtime, reference_id))


@router.post(
    "/{reference_id}/test-reward",
    tags=[TAG_INCENTIVES],
    response_model=TestRewardOut,
    responses=_ERRORS,
    summary="Run the whole chain for one response without paying anyone",
)
async def test_reward(
    reference_id: str, body: TestRewardIn, runtime: Runtime, manager: Manager
) -> TestRewardOut:
    """Run the whole reward chain for one survey response (email, limits, fraud rules, provider)
    without paying anyone, and answer each step's outcome."""
    reference = _reference(reference_id)
    try:
        report = await run_test_reward(runtime, reference, body, default_send_to=manager.email)
    except IncentiveNotFound as exc:
        raise _not_found(str(exc)) from None
    return TestRewardOut(
        ok=report["ok"],
        steps=[TestStepOut(**step) for step in report["steps"]],
    )


async def run_test_reward(
    runtime: IncentivesRuntime, reference: str, body: TestRewardIn, *, default_send_to: str
) -> dict[str, Any]:
    """Resolve the test's response (given values, or fetched by id), then test the chain."""
    steps: list[dict[str, Any]] = []
    values = body.values
    config: SendRewardConfig | None = None
    automations = await asyncio.to_thread(automations_using, runtime.factory, reference)
    chosen = None
    if body.automation_id is not None:
        chosen = next((a for a in automations if a.automation_id == body.automation_id), None)
        if chosen is None:
            raise ApiError(
                422,
                "validation_error",
                f"automation {body.automation_id} has no reward step for {reference}",
            )
    elif automations:
        chosen = automations[0]
    if chosen is not None:
        config = SendRewardConfig(
            incentive=reference,
            email_source=chosen.email_source,
            email_field=chosen.email_field,
            first_name_field=chosen.first_name_field,
        )
    if values is None and body.response_id:
        if chosen is None or chosen.connection_id is None or not chosen.survey_id:
            raise ApiError(
                422,
                "validation_error",
                "fetching a response needs an automation of this incentive with a survey "
                "trigger and a connection; give automation_id, or values",
            )
        try:
            async with runtime.open_client(chosen.connection_id) as client:
                response = await client.responses.get(chosen.survey_id, body.response_id)
            values = dict(response.values)
            steps.append(
                {"name": "survey response", "ok": True,
                 "detail": f"fetched {body.response_id} from {chosen.survey_id}"}
            )  # fmt: skip
        except Exception as exc:
            steps.append({"name": "survey response", "ok": False, "detail": str(exc)})
            return {"ok": False, "steps": steps}
    email, first_name = body.email, body.first_name
    if values is None and email is None and chosen is not None and chosen.survey_id:
        # Nothing given: say so, rather than blame a response that was never read.
        where = f" of survey {chosen.survey_id}"
        steps.append(
            {"name": "survey response", "ok": False,
             "detail": f"no response to test with: give the id of a response{where} (answer "
             "the survey once if it has none yet), or an email to test with"}
        )  # fmt: skip
        return {"ok": False, "steps": steps}
    if email is None and values is not None and config is not None:
        found = extract_email(values, config)
        email = str(found) if found not in (None, "") else None
        first_name = first_name or extract_first_name(values, config)
    report = await runtime.service.test_reward(
        reference,
        email=email,
        first_name=first_name,
        response_id=body.response_id,
        response_values=values,
        send_to=body.send_to or default_send_to,
        ip_address=ip_address_of(values) if values else None,
    )
    steps.extend(vars(step) for step in report.steps)
    return {"ok": all(step["ok"] for step in steps), "steps": steps}


@router.get(
    "/{reference_id}/rewards.csv",
    tags=[TAG_REWARDS],
    responses={200: {"content": {"text/csv": {}}}, **_ERRORS},
    summary="Export an incentive's rewards as CSV (e.g. manual rewards to pay by hand)",
)
def export_rewards(
    reference_id: str,
    db: DbSession,
    _viewer: Viewer,
    reward_status: Annotated[list[str] | None, Query(alias="status")] = None,
) -> Response:
    """The incentive's rewards as a CSV file, optionally only some statuses (e.g. manual rewards to
    pay by hand)."""
    _known_statuses(reward_status or [])
    incentive = _load_incentive(db, reference_id)
    text, _count = rewards_csv(db, incentive, reward_status)
    filename = f"{incentive.reference_id}-rewards.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/{reference_id}/rewards",
    tags=[TAG_REWARDS],
    response_model=RewardPage,
    responses=_ERRORS,
    summary="An incentive's rewards",
)
def incentive_rewards(
    reference_id: str,
    db: DbSession,
    viewer: Viewer,
    reward_status: Annotated[list[str] | None, Query(alias="status")] = None,
    q: Annotated[str | None, Query(max_length=320), AfterValidator(refuse_nul)] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> RewardPage:
    """The incentive's rewards, filtered by status or `q` (email or RW- reference), newest first,
    one page at a time (`limit`, `offset`); `total` counts every match."""
    return list_rewards(
        db, viewer, incentive=reference_id, reward_status=reward_status, q=q, source=None,
        limit=limit, offset=offset,
    )  # fmt: skip


# --- the platform endpoint -----------------------------------------------------------------------


@router.post(
    "/{reference_id}/rewards",
    tags=[TAG_PLATFORM],
    response_model=PlatformRewardOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": PlatformRewardOut, "description": "The same request again: its reward"},
        **error_responses(401, 404, 409, 413, 415, 422),
    },
    summary="Request a reward (HTTP Basic: platform name + API key)",
    openapi_extra=request_body_openapi(),
)
async def platform_reward(
    reference_id: str,
    body: Annotated[PlatformRewardIn, Depends(read_platform_reward)],
    runtime: Runtime,
    request: Request,
    response: Response,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(platform_auth)],
) -> PlatformRewardOut:
    """Ask for a reward for one respondent, as a Qualtrics Web Service task or any other system
    does, authenticated with HTTP Basic (platform name and API key). 201 with the new reward; the
    same request again answers 200 with the same reward; 409 when the respondent was already
    rewarded."""
    if credentials is None:
        raise _platform_unauthorized(
            "authentication required: HTTP Basic with your platform name and API key"
        )

    def authenticate() -> api_keys.AuthenticatedKey | None:
        with runtime.factory() as session:
            key = api_keys.authenticate(session, credentials.username, credentials.password)
            session.commit()
            return key

    key = await asyncio.to_thread(authenticate)
    if key is None:
        raise _platform_unauthorized(
            "unknown platform name or API key (or the key was deactivated)"
        )
    reference = _reference(reference_id)
    email_key = (body.email or "").strip().lower()
    request_key = (
        f"api:response:{body.response_id}" if body.response_id else f"api:email:{email_key}"
    )
    submission_request = RewardRequestIn(
        incentive_reference=reference,
        email=body.email,
        first_name=body.first_name,
        source="api",
        requested_by=key.actor,
        request_key=request_key,
        response_id=body.response_id,
        survey_id=body.survey_id,
        participant_id=body.participant_id,
        ip_address=body.ip_address,
        response_values=body.fraud_values(),
        values_origin="request",
    )
    try:
        submission = await asyncio.to_thread(
            runtime.service.submit, submission_request, lease_owner=f"api:{request_key}"
        )
    except IncentiveNotFound as exc:
        raise _not_found(str(exc)) from None
    if submission.outcome == "rejected":
        raise ApiError(422, "no_respondent_email", NO_EMAIL_MESSAGE)
    if submission.outcome == "duplicate":
        raise ApiError(409, "already_rewarded", submission.message)
    assert submission.reward is not None
    reward_reference = submission.reward.reference_id
    if submission.reward.status in ("approved", "ordered"):
        await _fulfil_now(runtime, reward_reference, f"api:{request_key}", submission)

    def current() -> Reward:
        with runtime.factory() as session:
            return get_reward(session, reward_reference)

    reward = await asyncio.to_thread(current)
    if submission.outcome == "existing":
        response.status_code = 200
    set_location(request, response, get_reward_detail, reward_id=reward.reference_id)
    return PlatformRewardOut(
        reference_id=reward.reference_id,
        status=reward.status,
        reasons=list(reward.reasons or []),
        message=describe(reward),
    )
