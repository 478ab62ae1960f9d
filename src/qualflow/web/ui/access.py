"""Who is looking at a UI page, and may they: the UI's side of the accounts permissions.

The REST API answers 401/403 as JSON; a browser should instead be sent to the sign-in page or
shown a page that explains which permission is missing. These dependencies use the accounts
package (session resolution, ``Principal.can``) and raise UI exceptions that
:mod:`qualflow.web.ui.errors` renders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.routing import NoMatchFound

from qualflow.accounts.dependencies import principal_for_user
from qualflow.accounts.models import User
from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.principal import Principal
from qualflow.accounts.sessions import resolve_session
from qualflow.settings import Settings
from qualflow.validation import MAX_ID
from qualflow.web.deps import get_app_settings, get_db

__all__ = [
    "SignInRequired",
    "UiAdminRequired",
    "UiForbidden",
    "UiNotFound",
    "refuse_impossible_ids",
    "ui_principal",
    "ui_require",
]


class SignInRequired(Exception):
    """No valid session: send the browser to the sign-in page, then back to ``next_url``."""

    def __init__(self, next_url: str, message: str | None = None) -> None:
        super().__init__(message or "sign in to continue")
        self.next_url = next_url
        self.message = message


class UiForbidden(Exception):
    """The person is signed in but lacks a permission; the page names it."""

    def __init__(self, area: Area, level: Level, action: str | None = None) -> None:
        self.area = area
        self.level = level
        self.action = action
        super().__init__(f"requires {level.label} permission on {area.label}")


class UiAdminRequired(Exception):
    """The page is for admins only (people and their permissions)."""

    def __init__(self) -> None:
        super().__init__("requires the admin role")


class UiNotFound(Exception):
    """The thing a UI URL points at does not exist (or is not visible to this person)."""

    def __init__(self, what: str, back_href: str, back_label: str) -> None:
        super().__init__(what)
        self.what = what
        self.back_href = back_href
        self.back_label = back_label


#: Path parameter → what it names, and the list page to go back to.
_ID_KINDS = {
    "automation_id": ("Automation", "ui_automations", "Back to automations"),
    "connection_id": ("Connection", "ui_connections", "Back to connections"),
    "email_id": ("Email", "ui_outbox", "Back to the outbox"),
    "user_id": ("Person", "ui_people", "Back to people"),
    "token_id": ("Token", "ui_tokens", "Back to your API tokens"),
    "version": ("Version", "ui_automations", "Back to automations"),
}


def refuse_impossible_ids(
    request: Request,
    db: Annotated[Session, Depends(get_db)],
    settings: Annotated[Settings, Depends(get_app_settings)],
) -> None:
    """A page or action named by an id no row can have (0, negative, or too large for the
    database's integer columns, which would make the lookup itself fail) does not exist.

    Like any unknown id, that is said to signed-in people only, inside their layout.
    """
    for name, value in request.path_params.items():
        if name not in _ID_KINDS:
            continue
        try:
            number = int(value)
        except ValueError:
            continue  # not a number at all: the route's own validation answers
        if not 1 <= number <= MAX_ID:
            ui_principal(request, db, settings)
            what, list_route, back_label = _ID_KINDS[name]
            try:
                back = request.url_for(list_route).path
            except NoMatchFound:
                back, back_label = request.url_for("ui_home").path, "Back to overview"
            raise UiNotFound(f"{what} {value}", back, back_label)


def _next_url(request: Request) -> str:
    if request.method != "GET":
        # After signing in, go back to the page the form was on, never replay a POST.
        referer = request.headers.get("hx-current-url") or request.headers.get("referer")
        if referer:
            return referer
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{request.url.path}{query}"


def ui_principal(
    request: Request,
    db: Annotated[Session, Depends(get_db)],
    settings: Annotated[Settings, Depends(get_app_settings)],
) -> Principal:
    """The signed-in person of this browser, or :class:`SignInRequired`."""
    raw = request.cookies.get(settings.session_cookie_name)
    if not raw:
        raise SignInRequired(_next_url(request))
    session = resolve_session(db, raw)
    user = db.get(User, session.user_id) if session is not None else None
    if session is None or user is None:
        raise SignInRequired(_next_url(request), "Your session has expired. Sign in again.")
    if not user.active:
        raise SignInRequired(_next_url(request), "This account is deactivated.")
    db.commit()  # keeps the session's last_seen_at
    principal = principal_for_user(user, via="session", session_id=session.id)
    request.state.ui_principal = principal  # error pages render inside the layout with it
    return principal


UiPrincipal = Annotated[Principal, Depends(ui_principal)]


def ui_require(area: Area | str, level: Level | str = Level.VIEW) -> Callable[..., Principal]:
    """Like ``accounts.require(area, level)`` for pages: redirect to sign-in, or a 403 page."""
    checked_area = Area(area)
    checked_level = Level.parse(level)

    def dependency(principal: UiPrincipal) -> Principal:
        if not principal.can(checked_area, checked_level):
            raise UiForbidden(checked_area, checked_level)
        return principal

    dependency.__name__ = f"ui_require_{checked_level.api_name}_{checked_area.value}"
    return dependency


def ensure(principal: Principal, area: Area, level: Level, action: str | None = None) -> None:
    """Check a permission inside a handler (e.g. one page, two levels of actions)."""
    if not principal.can(area, level):
        raise UiForbidden(area, level, action)
