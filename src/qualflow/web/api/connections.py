"""REST: Qualtrics connections — CRUD, validation, service-user provisioning, surveys.

Answers never contain a secret: tokens and OAuth secrets appear masked to their last 4
characters. Creating or changing credentials validates them with Qualtrics ``whoami`` first.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import select

from qualflow.accounts.dependencies import require
from qualflow.accounts.models import User
from qualflow.accounts.permissions import MANAGE, VIEW
from qualflow.accounts.principal import Principal
from qualflow.connections.clients import Credentials
from qualflow.connections.errors import (
    ConnectionForbidden,
    ConnectionInUse,
    ConnectionNotFound,
    ConnectionsError,
    CredentialsRejected,
    DuplicateConnectionName,
    InvalidConnection,
    ProvisioningFailed,
    QualtricsBusy,
    QualtricsUnavailable,
)
from qualflow.connections.models import DEFAULT_REQUESTS_PER_MINUTE, Connection
from qualflow.connections.provisioning import (
    DEFAULT_SERVICE_USERNAME,
    ServiceUserRequest,
    provision_service_user,
)
from qualflow.connections.service import (
    ConnectionChanges,
    ConnectionSpec,
    Name,
    Short,
    Url,
    can_change_sharing,
    count_visible_connections,
    create_connection,
    delete_connection,
    get_visible_connection,
    revalidate_connection,
    update_connection,
    visible_connections_page,
)
from qualflow.connections.surveys import list_surveys
from qualflow.connections.validation import Identity, check_credentials
from qualflow.store.secrets import mask, register_secret
from qualflow.web.api.created import set_location
from qualflow.web.api.paging import DEFAULT_LIMIT, Limit, Page, page_of
from qualflow.web.deps import ApiError, DbSession, Offset, ResourceId, error_responses

router = APIRouter(prefix="/connections", tags=["connections"])

Viewer = Annotated[Principal, Depends(require("connections", VIEW))]
Manager = Annotated[Principal, Depends(require("connections", MANAGE))]

_READ_ERRORS = error_responses(401, 403, 404)
_WRITE_ERRORS = error_responses(401, 403, 404, 409, 422, 502)

_STATUS = {
    InvalidConnection: 422,
    CredentialsRejected: 422,
    ProvisioningFailed: 422,
    ConnectionNotFound: 404,
    ConnectionForbidden: 403,
    DuplicateConnectionName: 409,
    ConnectionInUse: 409,
    QualtricsUnavailable: 502,
    QualtricsBusy: 503,
}


def _api_error(exc: ConnectionsError) -> ApiError:
    details = None
    if isinstance(exc, ConnectionInUse) and exc.users:
        details = [{"used_by": usage} for usage in exc.users]
    headers = None
    if isinstance(exc, QualtricsBusy):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return ApiError(
        _STATUS.get(type(exc), 400), exc.code, exc.message, headers=headers, details=details
    )


# --- bodies -------------------------------------------------------------------------------------


class IdentityOut(BaseModel):
    """Who the credentials resolved to, according to Qualtrics ``whoami``."""

    brand_id: str | None
    user_id: str
    user_name: str | None
    email: str | None
    first_name: str | None
    last_name: str | None
    datacenter: str | None
    account_type: str | None

    @classmethod
    def of(cls, identity: Identity) -> IdentityOut:
        return cls(**vars(identity))


class OwnerOut(BaseModel):
    id: int
    name: str
    email: str


class ConnectionOut(BaseModel):
    id: int
    name: str
    datacenter: str | None
    base_url: str | None
    auth_type: str = Field(description="`token` or `oauth`.")
    api_token_hint: str | None = Field(description="The API token masked to its last 4.")
    oauth_client_id: str | None
    oauth_client_secret_hint: str | None
    oauth_scope: str | None
    username: str | None
    shared: bool
    owner: OwnerOut | None
    requests_per_minute: int
    service_user: bool = Field(description="Whether qualflow created the Qualtrics user.")
    brand_id: str | None = Field(description="Brand the credentials resolved to.")
    qualtrics_user_id: str | None
    qualtrics_user_name: str | None
    qualtrics_user_email: str | None
    resolved_datacenter: str | None
    validated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    can_change_sharing: bool = Field(description="Whether the caller may make it private.")


class ConnectionCreated(ConnectionOut):
    identity: IdentityOut


class ConnectionUpdated(ConnectionOut):
    identity: IdentityOut | None = Field(description="Set when the change was re-validated.")


class CredentialsCheck(BaseModel):
    """Credentials to try without saving them."""

    model_config = ConfigDict(extra="forbid")

    datacenter: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=500)
    api_token: str | None = Field(default=None, max_length=2000)
    oauth_client_id: str | None = Field(default=None, max_length=200)
    oauth_client_secret: str | None = Field(default=None, max_length=2000)
    oauth_scope: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_location(self) -> CredentialsCheck:
        if bool(self.datacenter) == bool(self.base_url):
            raise ValueError("give exactly one of datacenter or base_url")
        return self


class ServiceUserProvision(BaseModel):
    """Create (or reuse) a dedicated Qualtrics user with a brand administrator's token.

    The admin token is used for this request only and never stored.
    """

    model_config = ConfigDict(extra="forbid")

    # The saved connection's own field types: a value it would refuse must be refused before
    # the admin token creates a Qualtrics user whose token would then be kept nowhere.
    name: Name
    datacenter: Short | None = None
    base_url: Url | None = None
    admin_api_token: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ]
    username: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ] = DEFAULT_SERVICE_USERNAME
    email: str | None = Field(default=None, max_length=320)
    first_name: str = Field(default="qualflow", min_length=1, max_length=100)
    last_name: str = Field(default="service user", min_length=1, max_length=100)
    user_type: str | None = Field(
        default=None, max_length=100, description="`UT_…`; default: the admin's own type."
    )
    shared: bool = False
    requests_per_minute: int = Field(default=DEFAULT_REQUESTS_PER_MINUTE, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one_location(self) -> ServiceUserProvision:
        if bool(self.datacenter) == bool(self.base_url):
            raise ValueError("give exactly one of datacenter or base_url")
        return self


class ServiceUserOut(BaseModel):
    user_id: str
    username: str
    created: bool = Field(description="False when an existing user of that name was reused.")


class ServiceUserProvisioned(ConnectionOut):
    service_user_account: ServiceUserOut
    identity: IdentityOut


class SurveyOut(BaseModel):
    id: str
    name: str
    owner_id: str | None
    is_active: bool
    shared: bool = Field(description="Owned by someone else and shared with this user.")
    last_modified: datetime | None
    creation_date: datetime | None


class SurveyList(BaseModel):
    elements: list[SurveyOut]
    total: int


def _out(db: DbSession, principal: Principal, connection: Connection) -> ConnectionOut:
    owner = db.get(User, connection.owner_id) if connection.owner_id is not None else None
    return ConnectionOut(
        id=connection.id,
        name=connection.name,
        datacenter=connection.datacenter,
        base_url=connection.base_url,
        auth_type=connection.auth_type,
        api_token_hint=mask(connection.api_token) or None,
        oauth_client_id=connection.oauth_client_id,
        oauth_client_secret_hint=mask(connection.oauth_client_secret) or None,
        oauth_scope=connection.oauth_scope,
        username=connection.username,
        shared=connection.shared,
        owner=OwnerOut(id=owner.id, name=owner.name, email=owner.email) if owner else None,
        requests_per_minute=connection.requests_per_minute,
        service_user=connection.service_user,
        brand_id=connection.brand_id,
        qualtrics_user_id=connection.qualtrics_user_id,
        qualtrics_user_name=connection.qualtrics_user_name,
        qualtrics_user_email=connection.qualtrics_user_email,
        resolved_datacenter=connection.resolved_datacenter,
        validated_at=connection.validated_at,
        created_at=connection.created_at,
        updated_at=connection.updated_at,
        can_change_sharing=can_change_sharing(principal, connection),
    )


def _visible(db: DbSession, principal: Principal, connection_id: ResourceId) -> Connection:
    try:
        return get_visible_connection(db, principal, connection_id)
    except ConnectionsError as exc:
        raise _api_error(exc) from None


# --- routes -------------------------------------------------------------------------------------


@router.get(
    "",
    response_model=Page[ConnectionOut],
    responses=error_responses(401, 403, 422),
    summary="List Qualtrics connections by id (secrets as their last 4 characters)",
)
def read_connections(
    db: DbSession, principal: Viewer, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
) -> Page[ConnectionOut]:
    """Connections you can see (yours and the shared ones; admins see all), by id (oldest first),
    one page at a time (`limit`, `offset`); `total` counts every one you can see."""
    rows = visible_connections_page(db, principal, limit=limit, offset=offset)
    return page_of(
        [_out(db, principal, row) for row in rows],
        lambda: count_visible_connections(db, principal),
        limit=limit,
        offset=offset,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ConnectionCreated,
    responses=_WRITE_ERRORS,
    summary="Create a connection (validated with Qualtrics whoami first)",
)
async def add_connection(
    spec: ConnectionSpec, db: DbSession, principal: Manager, http: Request, response: Response
) -> ConnectionCreated:
    """Save a named Qualtrics connection after checking its credentials with Qualtrics whoami (422
    when Qualtrics refuses them, 502 when it does not answer; 409 when the name is taken).
    Credentials are stored encrypted and answered masked."""
    try:
        connection, identity = await create_connection(db, spec, owner_id=principal.user_id)
    except ConnectionsError as exc:
        raise _api_error(exc) from None
    db.commit()
    set_location(http, response, read_connection, connection_id=connection.id)
    return ConnectionCreated(
        **_out(db, principal, connection).model_dump(), identity=IdentityOut.of(identity)
    )


@router.post(
    "/validate",
    response_model=IdentityOut,
    responses=error_responses(401, 403, 422, 502),
    summary="Check credentials without saving them",
)
async def validate_credentials(body: CredentialsCheck, _principal: Manager) -> IdentityOut:
    """Check a datacenter or base URL with an API token or OAuth client against Qualtrics whoami and
    answer the Qualtrics identity, without saving anything. 422 when Qualtrics refuses the
    credentials, 502 when it does not answer."""
    for secret in (body.api_token, body.oauth_client_secret):
        register_secret(secret)
    credentials = Credentials(**body.model_dump())
    try:
        identity = await check_credentials(credentials)
    except ConnectionsError as exc:
        raise _api_error(exc) from None
    return IdentityOut.of(identity)


@router.post(
    "/service-user",
    status_code=status.HTTP_201_CREATED,
    response_model=ServiceUserProvisioned,
    responses=_WRITE_ERRORS,
    summary="Create a connection through a dedicated Qualtrics service user",
)
async def add_service_user_connection(
    body: ServiceUserProvision,
    db: DbSession,
    principal: Manager,
    http: Request,
    response: Response,
) -> ServiceUserProvisioned:
    """Uses a brand administrator's token once to find or create the service user and fetch its
    API token; saves a connection with that token only. The admin token is never stored."""
    register_secret(body.admin_api_token)
    if db.scalar(select(Connection.id).where(Connection.name == body.name)) is not None:
        raise ApiError(409, "name_taken", f"a connection named {body.name!r} already exists")
    admin = Credentials(
        datacenter=body.datacenter, base_url=body.base_url, api_token=body.admin_api_token
    )
    request = ServiceUserRequest(
        username=body.username,
        email=body.email,
        first_name=body.first_name,
        last_name=body.last_name,
        user_type=body.user_type,
    )
    try:
        provisioned = await provision_service_user(admin, request)
        spec = ConnectionSpec(
            name=body.name,
            datacenter=body.datacenter,
            base_url=body.base_url,
            api_token=provisioned.api_token,
            username=provisioned.username,
            shared=body.shared,
            requests_per_minute=body.requests_per_minute,
        )
        connection, identity = await create_connection(
            db, spec, owner_id=principal.user_id, service_user=True
        )
    except ConnectionsError as exc:
        raise _api_error(exc) from None
    db.commit()
    set_location(http, response, read_connection, connection_id=connection.id)
    return ServiceUserProvisioned(
        **_out(db, principal, connection).model_dump(),
        service_user_account=ServiceUserOut(
            user_id=provisioned.user_id,
            username=provisioned.username,
            created=provisioned.created,
        ),
        identity=IdentityOut.of(identity),
    )


@router.get(
    "/{connection_id}",
    response_model=ConnectionOut,
    responses=_READ_ERRORS,
    summary="Read one connection",
)
def read_connection(connection_id: ResourceId, db: DbSession, principal: Viewer) -> ConnectionOut:
    """One connection you may see, with its owner, sharing and last validation; credentials are
    masked. 404 when it does not exist or is not visible to you."""
    return _out(db, principal, _visible(db, principal, connection_id))


@router.patch(
    "/{connection_id}",
    response_model=ConnectionUpdated,
    responses=_WRITE_ERRORS,
    summary="Change a connection (re-validated when location or credentials change)",
)
async def change_connection(
    connection_id: ResourceId, changes: ConnectionChanges, db: DbSession, principal: Manager
) -> ConnectionUpdated:
    """Change the fields given; the others keep their value. Changing the location or credentials
    checks them again with Qualtrics (422 when refused, 502 when Qualtrics does not answer); 409
    when the new name is taken."""
    connection = _visible(db, principal, connection_id)
    try:
        identity = await update_connection(db, principal, connection, changes)
    except ConnectionsError as exc:
        db.rollback()
        raise _api_error(exc) from None
    db.commit()
    return ConnectionUpdated(
        **_out(db, principal, connection).model_dump(),
        identity=IdentityOut.of(identity) if identity else None,
    )


@router.post(
    "/{connection_id}/validate",
    response_model=ConnectionUpdated,
    responses=error_responses(401, 403, 404, 409, 422, 502, 503),
    summary="Check the stored credentials again with Qualtrics whoami",
)
async def revalidate(
    connection_id: ResourceId, db: DbSession, principal: Viewer
) -> ConnectionUpdated:
    """Check the connection's stored credentials with Qualtrics whoami again and record the result.
    502 when Qualtrics does not answer, 503 (with Retry-After) when the connection's request
    budget is spent."""
    connection = _visible(db, principal, connection_id)
    try:
        identity = await revalidate_connection(db, connection)
    except ConnectionsError as exc:
        raise _api_error(exc) from None
    db.commit()
    return ConnectionUpdated(
        **_out(db, principal, connection).model_dump(), identity=IdentityOut.of(identity)
    )


@router.delete(
    "/{connection_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 409),
    summary="Delete a connection that no automation uses",
)
def remove_connection(connection_id: ResourceId, db: DbSession, principal: Manager) -> Response:
    """Delete a connection. 409 when automations still use it (listed in `details`)."""
    connection = _visible(db, principal, connection_id)
    try:
        delete_connection(db, connection)
    except ConnectionsError as exc:
        raise _api_error(exc) from None
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{connection_id}/surveys",
    response_model=SurveyList,
    responses=error_responses(401, 403, 404, 422, 502, 503),
    summary="Surveys the connection's Qualtrics user can see",
)
async def read_surveys(
    connection_id: ResourceId,
    db: DbSession,
    principal: Viewer,
    active_only: Annotated[bool, Query(description="Only active (published) surveys.")] = False,
    shared_only: Annotated[
        bool, Query(description="Only surveys other users shared with this connection's user.")
    ] = False,
) -> SurveyList:
    """The surveys the connection's Qualtrics user can see, optionally only active ones or only
    those shared with it. 502 when Qualtrics does not answer, 503 (with Retry-After) when the
    connection's request budget is spent."""
    connection = _visible(db, principal, connection_id)
    try:
        surveys = await list_surveys(connection, active_only=active_only, shared_only=shared_only)
    except ConnectionsError as exc:
        raise _api_error(exc) from None
    elements = [SurveyOut(**vars(survey)) for survey in surveys]
    return SurveyList(elements=elements, total=len(elements))
