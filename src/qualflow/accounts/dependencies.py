"""FastAPI dependencies that authenticate a request and check its permissions.

``current_principal`` accepts a personal API token (``Authorization: Bearer qfp_…``) or a UI
session cookie; ``require(area, level)`` adds the permission check::

    @router.post("/rewards")
    def send(principal: Principal = Depends(require("incentives", MANAGE))): ...

No credentials → 401 with ``WWW-Authenticate``; missing permission → 403 naming it, e.g.
"requires Manage permission on connections".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from qualflow.accounts.models import User
from qualflow.accounts.permissions import Area, Level, Role
from qualflow.accounts.principal import Principal
from qualflow.accounts.sessions import resolve_session
from qualflow.accounts.tokens import resolve_token
from qualflow.accounts.users import grants_for
from qualflow.settings import Settings
from qualflow.web.deps import ApiError, get_app_settings, get_db

__all__ = [
    "CurrentPrincipal",
    "bearer_scheme",
    "current_principal",
    "principal_for_user",
    "require",
    "require_admin",
    "session_cookie_scheme",
]

SESSION_COOKIE_DEFAULT = "qualflow_session"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="PersonalToken",
    description="A personal API token (`qfp_…`), created under /api/v1/me/tokens.",
)
session_cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE_DEFAULT,
    auto_error=False,
    scheme_name="SessionCookie",
    description="The UI session cookie set by POST /api/v1/auth/login.",
)


def _unauthorized(message: str, *, invalid_token: bool = False) -> ApiError:
    challenge = 'Bearer realm="qualflow"'
    if invalid_token:
        challenge += ', error="invalid_token"'
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def principal_for_user(
    user: User, *, via: str, token_id: int | None = None, session_id: int | None = None
) -> Principal:
    return Principal(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=Role(user.role),
        grants=grants_for(user),
        via="token" if via == "token" else "session",
        token_id=token_id,
        session_id=session_id,
    )


def _same_origin(origin: str, request: Request, settings: Settings) -> bool:
    allowed = {f"{request.url.scheme}://{request.url.netloc}"}
    public = urlsplit(settings.public_base_url)
    allowed.add(f"{public.scheme}://{public.netloc}")
    return origin.rstrip("/") in allowed


def current_principal(
    request: Request,
    db: Annotated[Session, Depends(get_db)],
    settings: Annotated[Settings, Depends(get_app_settings)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    _cookie: Annotated[str | None, Depends(session_cookie_scheme)],
) -> Principal:
    """The authenticated person, from a Bearer personal token or the session cookie."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        if bearer is None or not bearer.credentials:
            raise _unauthorized(
                "the Authorization header must be 'Bearer <personal API token>'",
                invalid_token=True,
            )
        token, reason = resolve_token(db, bearer.credentials)
        user = db.get(User, token.user_id) if token is not None else None
        if token is None or user is None:
            raise _unauthorized(reason or "the API token is not valid", invalid_token=True)
        if not user.active:
            raise _unauthorized("this account is deactivated", invalid_token=True)
        db.commit()  # keeps last_used_at
        return principal_for_user(user, via="token", token_id=token.id)

    cookie = request.cookies.get(settings.session_cookie_name)
    if cookie:
        session = resolve_session(db, cookie)
        user = db.get(User, session.user_id) if session is not None else None
        if session is None or user is None:
            raise _unauthorized("your session has expired; sign in again")
        if not user.active:
            raise _unauthorized("this account is deactivated")
        origin = request.headers.get("origin")
        if (
            request.method in _UNSAFE_METHODS
            and origin is not None
            and not _same_origin(origin, request, settings)
        ):
            # Cookies ride along on cross-site requests; a foreign Origin means forgery.
            raise ApiError(403, "cross_site_request", "cross-site request refused")
        db.commit()
        return principal_for_user(user, via="session", session_id=session.id)

    raise _unauthorized("authentication required: send 'Authorization: Bearer <token>' or sign in")


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(area: Area | str, level: Level | str = Level.VIEW) -> Callable[..., Principal]:
    """A dependency that returns the principal if it holds ``level`` on ``area``, else 403."""
    checked_area = Area(area)
    checked_level = Level.parse(level)
    if checked_level is Level.NONE:
        raise ValueError("require() needs VIEW or MANAGE")

    def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.can(checked_area, checked_level):
            raise ApiError(
                403,
                "forbidden",
                f"requires {checked_level.label} permission on {checked_area.label}",
            )
        return principal

    dependency.__name__ = f"require_{checked_level.api_name}_{checked_area.value}"
    return dependency


def require_admin(principal: CurrentPrincipal) -> Principal:
    """Only admins manage people."""
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "requires the admin role")
    return principal
