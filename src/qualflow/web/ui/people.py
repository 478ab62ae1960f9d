"""People (admins: list, add, change role, deactivate), your API tokens and your password.

Only admins manage people, as in the REST API (``/api/v1/users``). Anyone signed in manages
their own API tokens (``/api/v1/me/tokens``): a new token is shown once, then only its last 4
characters; and changes their own password (``/api/v1/me/password``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from qualflow.accounts.errors import AccountError
from qualflow.accounts.models import User
from qualflow.accounts.passwords import MIN_PASSWORD_LENGTH, generate_password
from qualflow.accounts.permissions import Role
from qualflow.accounts.principal import Principal
from qualflow.accounts.throttle import TooManyGuesses, check_current_password, minutes_to_wait
from qualflow.accounts.tokens import get_token, issue_token, list_tokens, revoke_token
from qualflow.accounts.users import create_user, get_user, list_users, update_user
from qualflow.store.base import utcnow
from qualflow.web.deps import get_db
from qualflow.web.ui import flash
from qualflow.web.ui.access import UiAdminRequired, UiNotFound, UiPrincipal
from qualflow.web.ui.csrf import check_csrf
from qualflow.web.ui.rendering import render

router = APIRouter()

Db = Annotated[Session, Depends(get_db)]
CsrfChecked = Depends(check_csrf)

ROLE_HELP = {
    Role.ADMIN: "Everything, including people and their permissions.",
    Role.MANAGER: "Manages every area; views API keys.",
    Role.MEMBER: "Manages automations and runs; views the rest.",
    Role.VIEWER: "Views everything except API keys.",
}
TOKEN_LIFETIMES = {"": "Never expires", "30": "30 days", "90": "90 days", "365": "1 year"}


def admin_principal(principal: UiPrincipal) -> Principal:
    if not principal.is_admin:
        raise UiAdminRequired()
    return principal


Admin = Annotated[Principal, Depends(admin_principal)]


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# -- people ------------------------------------------------------------------------------------


def _people_page(
    request: Request,
    principal: Principal,
    db: Session,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    created: User | None = None,
    new_password: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "people/list.html",
        principal=principal,
        nav="people",
        users=list_users(db),
        roles=list(Role),
        role_help=ROLE_HELP,
        form=form or {"role": Role.MEMBER.value, "sign_in": "generate"},
        errors=errors or {},
        created=created,
        new_password=new_password,
        status_code=status_code,
    )


@router.get("/people", name="ui_people")
def people_page(request: Request, principal: Admin, db: Db) -> Response:
    return _people_page(request, principal, db)


@router.post("/people", name="ui_people_create", dependencies=[CsrfChecked])
async def create_person(request: Request, principal: Admin, db: Db) -> Response:
    raw = await request.form()
    form = {name: _field(raw, name) for name in ("email", "name", "role", "sign_in")}
    errors: dict[str, str] = {}
    if not form["email"]:
        errors["email"] = "Enter the person's email address."
    if not form["name"]:
        errors["name"] = "Enter a display name."
    if form["role"] not in {role.value for role in Role}:
        errors["role"] = "Choose a role."
    if form["sign_in"] not in ("generate", "api_only"):
        errors["sign_in"] = "Choose how this person signs in."
    if not errors:
        password = generate_password() if form["sign_in"] == "generate" else None
        try:
            user = create_user(
                db, email=form["email"], name=form["name"], role=form["role"], password=password
            )
        except AccountError as exc:
            target = "email" if exc.code in ("email_taken", "invalid_input") else "__all__"
            if "name" in exc.message and "email" not in exc.message:
                target = "name"
            errors[target] = exc.message[:1].upper() + exc.message[1:] + "."
        else:
            db.commit()
            # Rendered, not redirected: the generated password is shown this once.
            return _people_page(
                request, principal, db, created=user, new_password=password, status_code=201
            )
    return _people_page(request, principal, db, form=form, errors=errors, status_code=400)


def _person(request: Request, db: Session, user_id: int) -> User:
    try:
        return get_user(db, user_id)
    except AccountError:
        back = request.url_for("ui_people").path
        raise UiNotFound(f"Person {user_id}", back, "Back to people") from None


def _back_to_people(request: Request, kind: flash.Kind, message: str) -> Response:
    response = RedirectResponse(request.url_for("ui_people").path, status_code=303)
    flash.add(request, response, kind, message)
    return response


@router.post("/people/{user_id}/role", name="ui_person_role", dependencies=[CsrfChecked])
async def change_role(request: Request, _principal: Admin, db: Db, user_id: int) -> Response:
    role = _field(await request.form(), "role")
    user = _person(request, db, user_id)
    if role not in {r.value for r in Role}:
        return _back_to_people(request, "error", "Choose one of the roles.")
    if role == user.role:
        return _back_to_people(request, "info", f"{user.email} already is {role}.")
    try:
        update_user(db, user, role=role)
    except AccountError as exc:
        db.rollback()
        return _back_to_people(request, "error", exc.message[:1].upper() + exc.message[1:] + ".")
    db.commit()
    return _back_to_people(request, "success", f"{user.email} is now {role}.")


@router.post("/people/{user_id}/active", name="ui_person_active", dependencies=[CsrfChecked])
async def set_active(request: Request, principal: Admin, db: Db, user_id: int) -> Response:
    wanted = _field(await request.form(), "active") == "true"
    user = _person(request, db, user_id)
    if not wanted and user.id == principal.user_id:
        return _back_to_people(request, "error", "You cannot deactivate yourself.")
    try:
        update_user(db, user, active=wanted)
    except AccountError as exc:
        db.rollback()
        return _back_to_people(request, "error", exc.message[:1].upper() + exc.message[1:] + ".")
    db.commit()
    if wanted:
        return _back_to_people(request, "success", f"{user.email} is active again.")
    return _back_to_people(
        request,
        "success",
        f"{user.email} is deactivated: signed out everywhere, and their API tokens stop working.",
    )


# -- my API tokens -----------------------------------------------------------------------------


def _tokens_page(
    request: Request,
    principal: Principal,
    db: Session,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    new_token: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "people/tokens.html",
        principal=principal,
        nav="tokens",
        tokens=list(reversed(list_tokens(db, principal.user_id))),
        lifetimes=TOKEN_LIFETIMES,
        form=form or {"name": "", "expires": "90"},
        errors=errors or {},
        new_token=new_token,
        now=utcnow(),
        status_code=status_code,
    )


@router.get("/account/tokens", name="ui_tokens")
def tokens_page(request: Request, principal: UiPrincipal, db: Db) -> Response:
    return _tokens_page(request, principal, db)


@router.post("/account/tokens", name="ui_token_create", dependencies=[CsrfChecked])
async def create_token(request: Request, principal: UiPrincipal, db: Db) -> Response:
    raw = await request.form()
    form = {"name": _field(raw, "name"), "expires": _field(raw, "expires")}
    errors: dict[str, str] = {}
    if not form["name"]:
        errors["name"] = "Name the token after what will use it, e.g. “nightly export”."
    if form["expires"] not in TOKEN_LIFETIMES:
        errors["expires"] = "Choose how long the token stays valid."
    if not errors:
        user = db.get(User, principal.user_id)
        assert user is not None
        expires = utcnow() + timedelta(days=int(form["expires"])) if form["expires"] else None
        try:
            _token, secret = issue_token(db, user, form["name"], expires_at=expires)
        except AccountError as exc:
            errors["name"] = exc.message[:1].upper() + exc.message[1:] + "."
        else:
            db.commit()
            return _tokens_page(request, principal, db, new_token=secret, status_code=201)
    return _tokens_page(request, principal, db, form=form, errors=errors, status_code=400)


@router.post(
    "/account/tokens/{token_id}/revoke", name="ui_token_revoke", dependencies=[CsrfChecked]
)
def revoke(request: Request, principal: UiPrincipal, db: Db, token_id: int) -> Response:
    try:
        token = revoke_token(db, get_token(db, principal.user_id, token_id))
    except AccountError:
        back = request.url_for("ui_tokens").path
        raise UiNotFound(f"Token {token_id}", back, "Back to your API tokens") from None
    db.commit()
    response = RedirectResponse(request.url_for("ui_tokens").path, status_code=303)
    flash.add(request, response, "success", f"Token “{token.name}” (••••{token.last4}) revoked.")
    return response


# -- my password -------------------------------------------------------------------------------


def _password_page(
    request: Request,
    principal: Principal,
    db: Session,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    user = db.get(User, principal.user_id)
    return render(
        request,
        "people/password.html",
        principal=principal,
        nav="password",
        has_password=user is not None and user.password_hash is not None,
        min_length=MIN_PASSWORD_LENGTH,
        errors=errors or {},
        status_code=status_code,
    )


@router.get("/account/password", name="ui_password")
def password_page(request: Request, principal: UiPrincipal, db: Db) -> Response:
    return _password_page(request, principal, db)


@router.post("/account/password", name="ui_password_change", dependencies=[CsrfChecked])
async def change_password(request: Request, principal: UiPrincipal, db: Db) -> Response:
    raw = await request.form()
    # Passwords are taken as typed (no strip): spaces may be part of them.
    current, new, repeat = (
        value if isinstance(value := raw.get(name), str) else ""
        for name in ("current_password", "new_password", "repeat_password")
    )
    user = db.get(User, principal.user_id)
    assert user is not None
    errors: dict[str, str] = {}
    address = request.client.host if request.client else "unknown"
    try:
        if user.password_hash is not None and not check_current_password(
            user.password_hash, user.email, current, address
        ):
            errors["current_password"] = "The current password is wrong."
    except TooManyGuesses as exc:
        minutes = minutes_to_wait(exc.retry_after)
        errors["current_password"] = (
            f"Too many wrong passwords. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
        )
    if new != repeat:
        errors["repeat_password"] = "The two new passwords do not match."
    if not errors:
        try:
            update_user(db, user, password=new)
        except AccountError as exc:
            errors["new_password"] = exc.message[:1].upper() + exc.message[1:] + "."
    if errors:
        db.rollback()
        return _password_page(request, principal, db, errors=errors, status_code=400)
    db.commit()
    # A new password ends every session, this one too.
    response = RedirectResponse(request.url_for("ui_sign_in").path, status_code=303)
    flash.add(request, response, "success", "Password changed. Sign in with the new one.")
    return response
