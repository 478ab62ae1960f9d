"""REST: sign-in, the calling person (``/me``), personal API tokens, and people (admins only)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from qualflow.accounts.dependencies import (
    CurrentPrincipal,
    principal_for_user,
    require_admin,
)
from qualflow.accounts.errors import AccountError, EmailTaken, LastAdmin, NotFound
from qualflow.accounts.models import ApiToken, User
from qualflow.accounts.passwords import generate_password
from qualflow.accounts.permissions import ROLE_GRANTS, Area, Level, Role
from qualflow.accounts.principal import Principal
from qualflow.accounts.sessions import end_session, purge_expired, start_session
from qualflow.accounts.throttle import (
    TooManyGuesses,
    check_current_password,
    minutes_to_wait,
    sign_in_with_password,
)
from qualflow.accounts.tokens import (
    count_tokens,
    get_token,
    issue_token,
    list_tokens,
    revoke_token,
)
from qualflow.accounts.users import (
    count_users,
    create_user,
    delete_user,
    get_user,
    grants_for,
    list_users,
    overrides_of,
    set_overrides,
    update_user,
)
from qualflow.settings import Settings
from qualflow.store.base import utcnow
from qualflow.store.secrets import mask
from qualflow.web.api.created import set_location
from qualflow.web.api.paging import DEFAULT_LIMIT, Limit, Page, page_of
from qualflow.web.deps import (
    ApiError,
    DbSession,
    Offset,
    ResourceId,
    error_responses,
    get_app_settings,
)

router = APIRouter()

LevelName = Literal["none", "view", "manage"]


def _levels(grants: Mapping[Area, Level]) -> dict[Area, LevelName]:
    return {area: cast(LevelName, level.api_name) for area, level in grants.items()}


AppSettings = Annotated[Settings, Depends(get_app_settings)]
Admin = Annotated[Principal, Depends(require_admin)]

_AUTH_ERRORS = error_responses(401, 422)
_LOGIN_ERRORS = error_responses(401, 422, 429)
_ADMIN_ERRORS = error_responses(401, 403, 404, 409, 422)


# --- bodies -------------------------------------------------------------------------------------


class Body(BaseModel):
    """A request body: a field it does not define is refused (422 naming it), never ignored,
    as in every other router of the API."""

    model_config = ConfigDict(extra="forbid")


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: Role
    active: bool
    has_password: bool = Field(description="Whether the person can sign in to the UI.")
    overrides: dict[Area, LevelName] = Field(
        description="Areas where this person's level differs from the role default."
    )
    permissions: dict[Area, LevelName] = Field(description="Effective level per area.")
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=Role(user.role),
            active=user.active,
            has_password=user.password_hash is not None,
            overrides=_levels(overrides_of(user)),
            permissions=_levels(grants_for(user)),
            created_at=user.created_at,
            last_login_at=user.last_login_at,
        )


class MeOut(UserOut):
    authenticated_via: str = Field(description="`token` or `session`.")


class UserCreate(Body):
    email: str = Field(max_length=320, examples=["ada@example.org"])
    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.MEMBER
    password: str | None = Field(
        default=None, description="Leave empty (and generate_password false) for API-only users."
    )
    generate_password: bool = Field(
        default=False, description="Generate a password and return it once in the answer."
    )


class UserCreated(UserOut):
    generated_password: str | None = Field(
        default=None, description="Only when generate_password was set; shown this once."
    )


class UserUpdate(Body):
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    active: bool | None = None
    password: str | None = None


class PermissionsUpdate(Body):
    overrides: dict[Area, LevelName | None] = Field(
        description="Level per area; null (or leaving an area out) returns it to the role default."
    )


class RoleOut(BaseModel):
    role: Role
    permissions: dict[Area, LevelName]


class LoginBody(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class PasswordChange(Body):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class MeUpdate(Body):
    name: str = Field(min_length=1, max_length=200)


class TokenCreate(Body):
    name: str = Field(min_length=1, max_length=100, examples=["reporting script"])
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    id: int
    name: str
    token_hint: str = Field(description="The token masked to its last 4 characters.")
    active: bool
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        expired = token.expires_at is not None and token.expires_at <= utcnow()
        return cls(
            id=token.id,
            name=token.name,
            token_hint=mask("x" * 8 + token.last4),
            active=token.revoked_at is None and not expired,
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself. Shown only in this answer; store it now.")


# --- error mapping ------------------------------------------------------------------------------


def _account_error(exc: AccountError) -> ApiError:
    status_code = {NotFound: 404, EmailTaken: 409, LastAdmin: 409}.get(type(exc), 422)
    return ApiError(status_code, exc.code, exc.message)


# --- sign-in ------------------------------------------------------------------------------------


def _too_many_attempts(wait: float) -> ApiError:
    return ApiError(
        429,
        "too_many_attempts",
        f"too many wrong passwords; try again in {minutes_to_wait(wait)} minute(s)",
        headers={"Retry-After": str(int(wait))},
    )


@router.post(
    "/auth/login",
    tags=["auth"],
    response_model=MeOut,
    responses=_LOGIN_ERRORS,
    summary="Sign in with email and password (sets the session cookie)",
)
def login(
    body: LoginBody, request: Request, response: Response, db: DbSession, settings: AppSettings
) -> MeOut:
    """Check an email and password and, when they match, set the session cookie the UI uses and
    answer the person's profile. Repeated wrong passwords for one email and address are
    throttled: 429 with Retry-After."""
    address = request.client.host if request.client else "unknown"
    try:
        user = sign_in_with_password(db, body.email, body.password, address)
    except TooManyGuesses as exc:
        raise _too_many_attempts(exc.retry_after) from None
    if user is None:
        raise ApiError(401, "invalid_credentials", "email or password is wrong")
    purge_expired(db)  # sign-ins are rare enough to carry the clean-up of old sessions
    session, raw = start_session(
        db, user, max_age=settings.session_max_age, user_agent=request.headers.get("user-agent")
    )
    db.commit()
    response.set_cookie(
        settings.session_cookie_name,
        raw,
        max_age=settings.session_max_age,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    principal = principal_for_user(user, via="session", session_id=session.id)
    return MeOut(**UserOut.of(user).model_dump(), authenticated_via=principal.via)


@router.post(
    "/auth/logout",
    tags=["auth"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out this browser (ends the session)",
)
def logout(request: Request, db: DbSession, settings: AppSettings) -> Response:
    """End the session named by the session cookie, if any, and clear the cookie. Answers 204
    whether or not a session was open; personal API tokens are not affected."""
    raw = request.cookies.get(settings.session_cookie_name)
    if raw:
        end_session(db, raw)
        db.commit()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(settings.session_cookie_name, path="/")
    return response


# --- me -----------------------------------------------------------------------------------------


def _me(db: DbSession, principal: Principal) -> User:
    user = db.get(User, principal.user_id)
    if user is None:
        raise ApiError(401, "unauthorized", "this account no longer exists")
    return user


@router.get(
    "/me",
    tags=["me"],
    response_model=MeOut,
    responses=error_responses(401),
    summary="Your profile: name, email, role and permissions",
)
def read_me(db: DbSession, principal: CurrentPrincipal) -> MeOut:
    """The calling person with their effective permissions."""
    user = _me(db, principal)
    return MeOut(**UserOut.of(user).model_dump(), authenticated_via=principal.via)


@router.patch(
    "/me",
    tags=["me"],
    response_model=MeOut,
    responses=_AUTH_ERRORS,
    summary="Change your name",
)
def update_me(body: MeUpdate, db: DbSession, principal: CurrentPrincipal) -> MeOut:
    """Change your display name."""
    user = _me(db, principal)
    try:
        update_user(db, user, name=body.name)
    except AccountError as exc:
        raise _account_error(exc) from None
    db.commit()
    return MeOut(**UserOut.of(user).model_dump(), authenticated_via=principal.via)


@router.post(
    "/me/password",
    tags=["me"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 422, 429),
    summary="Change your password (signs you out of every browser)",
)
def change_password(
    body: PasswordChange, request: Request, db: DbSession, principal: CurrentPrincipal
) -> Response:
    """Set a new password after checking the current one (403 when it is wrong; repeated wrong
    guesses answer 429). Every session of the account ends, so browsers must sign in again."""
    user = _me(db, principal)
    address = request.client.host if request.client else "unknown"
    try:
        if user.password_hash is not None and not check_current_password(
            user.password_hash, user.email, body.current_password, address
        ):
            raise ApiError(403, "invalid_credentials", "the current password is wrong")
    except TooManyGuesses as exc:
        raise _too_many_attempts(exc.retry_after) from None
    try:
        update_user(db, user, password=body.new_password)
    except AccountError as exc:
        raise _account_error(exc) from None
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/me/tokens",
    tags=["me"],
    response_model=Page[TokenOut],
    responses=error_responses(401, 422),
    summary="List your personal API tokens (never the tokens themselves), by id",
)
def read_my_tokens(
    db: DbSession, principal: CurrentPrincipal, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
) -> Page[TokenOut]:
    """Your personal API tokens (masked), by id (oldest first), one page at a time (`limit`,
    `offset`); `total` counts every token."""
    return _token_page(db, principal.user_id, limit=limit, offset=offset)


def _token_page(db: DbSession, user_id: int, *, limit: int, offset: int) -> Page[TokenOut]:
    tokens = list_tokens(db, user_id, limit=limit, offset=offset)
    return page_of(
        [TokenOut.of(token) for token in tokens],
        lambda: count_tokens(db, user_id),
        limit=limit,
        offset=offset,
    )


@router.post(
    "/me/tokens",
    tags=["me"],
    status_code=status.HTTP_201_CREATED,
    response_model=TokenCreated,
    responses=_AUTH_ERRORS,
    summary="Create a personal API token (the token is in this answer only)",
)
def create_my_token(
    body: TokenCreate,
    db: DbSession,
    principal: CurrentPrincipal,
    request: Request,
    response: Response,
) -> TokenCreated:
    """Issue a personal API token for the calling person, optionally expiring after
    `expires_in_days`. The token itself is in this answer only and cannot be shown again; send it
    as `Authorization: Bearer <token>`."""
    user = _me(db, principal)
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    try:
        token, raw = issue_token(db, user, body.name, expires_at=expires)
    except AccountError as exc:
        raise _account_error(exc) from None
    db.commit()
    set_location(request, response, revoke_my_token, token_id=token.id)
    return TokenCreated(**TokenOut.of(token).model_dump(), token=raw)


@router.delete(
    "/me/tokens/{token_id}",
    tags=["me"],
    response_model=TokenOut,
    responses=error_responses(401, 404, 422),
    summary="Revoke one of your personal API tokens",
)
def revoke_my_token(token_id: ResourceId, db: DbSession, principal: CurrentPrincipal) -> TokenOut:
    """Revoke one of the caller's personal API tokens: requests sending it are refused from now on.
    Answers the token (masked); 404 when the caller has no token with this id."""
    try:
        token = revoke_token(db, get_token(db, principal.user_id, token_id))
    except AccountError as exc:
        raise _account_error(exc) from None
    db.commit()
    return TokenOut.of(token)


# --- people (admins) ----------------------------------------------------------------------------


@router.get(
    "/roles",
    tags=["users"],
    response_model=list[RoleOut],
    responses=error_responses(401),
    summary="List the roles and the permissions each grants",
)
def read_roles(_principal: CurrentPrincipal) -> list[RoleOut]:
    """Each role's default permissions."""
    return [RoleOut(role=role, permissions=_levels(grants)) for role, grants in ROLE_GRANTS.items()]


@router.get(
    "/users",
    tags=["users"],
    response_model=Page[UserOut],
    responses=error_responses(401, 403, 422),
    summary="List people, by id (admins only)",
)
def read_users(
    db: DbSession, _admin: Admin, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
) -> Page[UserOut]:
    """The people of the hub by id (oldest first) with their role, effective permissions and last
    sign-in, one page at a time (`limit`, `offset`); `total` counts every person. Admins only."""
    users = list_users(db, limit=limit, offset=offset)
    return page_of(
        [UserOut.of(user) for user in users], lambda: count_users(db), limit=limit, offset=offset
    )


@router.post(
    "/users",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    response_model=UserCreated,
    responses=_ADMIN_ERRORS,
    summary="Add a person (the password is in this answer only when generated)",
)
def add_user(
    body: UserCreate, db: DbSession, _admin: Admin, request: Request, response: Response
) -> UserCreated:
    """Create a person with a role and, optionally, a password (or a generated one, shown in this
    answer only). Without a password the person can use API tokens but not sign in. 409 when the
    email is taken. Admins only."""
    if body.password is not None and body.generate_password:
        raise ApiError(422, "invalid_input", "give a password or generate_password, not both")
    password = generate_password() if body.generate_password else body.password
    try:
        user = create_user(db, email=body.email, name=body.name, role=body.role, password=password)
    except AccountError as exc:
        raise _account_error(exc) from None
    db.commit()
    generated = password if body.generate_password else None
    set_location(request, response, read_user, user_id=user.id)
    return UserCreated(**UserOut.of(user).model_dump(), generated_password=generated)


def _user(db: DbSession, user_id: ResourceId) -> User:
    try:
        return get_user(db, user_id)
    except AccountError as exc:
        raise _account_error(exc) from None


@router.get(
    "/users/{user_id}",
    tags=["users"],
    response_model=UserOut,
    responses=_ADMIN_ERRORS,
    summary="Read one person",
)
def read_user(user_id: ResourceId, db: DbSession, _admin: Admin) -> UserOut:
    """One person with their role, effective permissions and last sign-in; 404 when no person has
    this id. Admins only."""
    return UserOut.of(_user(db, user_id))


@router.patch(
    "/users/{user_id}",
    tags=["users"],
    response_model=UserOut,
    responses=_ADMIN_ERRORS,
    summary="Change a person's email, name, role, password or active state",
)
def change_user(user_id: ResourceId, body: UserUpdate, db: DbSession, _admin: Admin) -> UserOut:
    """Change a person; deactivating or setting a password signs them out everywhere."""
    user = _user(db, user_id)
    try:
        update_user(
            db,
            user,
            email=body.email,
            name=body.name,
            role=body.role,
            active=body.active,
            password=body.password,
        )
    except AccountError as exc:
        raise _account_error(exc) from None
    db.commit()
    return UserOut.of(user)


@router.delete(
    "/users/{user_id}",
    tags=["users"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ADMIN_ERRORS,
    summary="Remove a person",
)
def remove_user(user_id: ResourceId, db: DbSession, _admin: Admin) -> Response:
    """Delete a person with their tokens and sessions (their connections stay, ownerless)."""
    user = _user(db, user_id)
    try:
        delete_user(db, user)
    except AccountError as exc:
        raise _account_error(exc) from None
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/users/{user_id}/permissions",
    tags=["users"],
    response_model=UserOut,
    responses=_ADMIN_ERRORS,
    summary="Replace a person's per-area permission overrides",
)
def replace_permissions(
    user_id: ResourceId, body: PermissionsUpdate, db: DbSession, _admin: Admin
) -> UserOut:
    """Replace all per-area permission overrides of a person: an area left out or set to null goes
    back to the role's default. Answers the person with their effective permissions. Admins only."""
    user = _user(db, user_id)
    try:
        set_overrides(db, user, {area.value: level for area, level in body.overrides.items()})
    except AccountError as exc:
        raise _account_error(exc) from None
    db.commit()
    db.refresh(user)
    return UserOut.of(user)


@router.get(
    "/users/{user_id}/tokens",
    tags=["users"],
    response_model=Page[TokenOut],
    responses=_ADMIN_ERRORS,
    summary="List a person's personal API tokens, by id",
)
def read_user_tokens(
    user_id: ResourceId,
    db: DbSession,
    _admin: Admin,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Page[TokenOut]:
    """A person's personal API tokens by id (oldest first), masked to their last 4 characters, with
    when they were created, last used, expire or were revoked, one page at a time (`limit`,
    `offset`); `total` counts every token. Admins only."""
    user = _user(db, user_id)
    return _token_page(db, user.id, limit=limit, offset=offset)


@router.delete(
    "/users/{user_id}/tokens/{token_id}",
    tags=["users"],
    response_model=TokenOut,
    responses=_ADMIN_ERRORS,
    summary="Revoke a person's personal API token",
)
def revoke_user_token(
    user_id: ResourceId, token_id: ResourceId, db: DbSession, _admin: Admin
) -> TokenOut:
    """Revoke one of a person's personal API tokens: requests sending it are refused from now on.
    Answers the token (masked). Admins only."""
    try:
        token = revoke_token(db, get_token(db, user_id, token_id))
    except AccountError as exc:
        raise _account_error(exc) from None
    db.commit()
    return TokenOut.of(token)
