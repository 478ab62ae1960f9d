"""Sign-in and sign-out pages (UI sessions from the accounts package)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from qualflow.accounts.models import User
from qualflow.accounts.sessions import end_session, resolve_session, start_session
from qualflow.accounts.throttle import TooManyGuesses, minutes_to_wait, sign_in_with_password
from qualflow.settings import Settings
from qualflow.web.deps import get_app_settings, get_db
from qualflow.web.ui import flash
from qualflow.web.ui.csrf import check_csrf
from qualflow.web.ui.rendering import render

router = APIRouter()

Db = Annotated[Session, Depends(get_db)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]


def safe_next(value: str | None, default: str) -> str:
    """Only same-site paths: an open redirect would make our sign-in page a phishing tool."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def _signed_in(request: Request, db: Session, settings: Settings) -> bool:
    raw = request.cookies.get(settings.session_cookie_name)
    if not raw:
        return False
    session = resolve_session(db, raw)
    return session is not None and bool((user := db.get(User, session.user_id)) and user.active)


@router.get("/sign-in", name="ui_sign_in", include_in_schema=False)
def sign_in_page(request: Request, db: Db, settings: AppSettings, next: str = "/") -> Response:
    home = request.url_for("ui_home").path
    target = safe_next(next, home)
    if _signed_in(request, db, settings):
        return RedirectResponse(target, status_code=303)
    return render(request, "sign_in.html", next=target, email="", errors={})


@router.post(
    "/sign-in",
    name="ui_sign_in_submit",
    include_in_schema=False,
    dependencies=[Depends(check_csrf)],
)
def sign_in_submit(
    request: Request,
    db: Db,
    settings: AppSettings,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    target = safe_next(next, request.url_for("ui_home").path)
    errors: dict[str, str] = {}
    if not email.strip():
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."
    address = request.client.host if request.client else "unknown"
    user = None
    status_code = 400
    if not errors:
        try:
            user = sign_in_with_password(db, email, password, address)
        except TooManyGuesses as exc:
            minutes = minutes_to_wait(exc.retry_after)
            unit = "minute" if minutes == 1 else "minutes"
            errors["__all__"] = f"Too many failed sign-ins. Try again in {minutes} {unit}."
            status_code = 429
        else:
            if user is None:
                errors["__all__"] = "Email or password is wrong."
    if user is None:
        return render(
            request,
            "sign_in.html",
            status_code=status_code,
            next=target,
            email=email,
            errors=errors,
        )
    _session, raw = start_session(
        db, user, max_age=settings.session_max_age, user_agent=request.headers.get("user-agent")
    )
    db.commit()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        settings.session_cookie_name,
        raw,
        max_age=settings.session_max_age,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    return response


@router.post(
    "/sign-out", name="ui_sign_out", include_in_schema=False, dependencies=[Depends(check_csrf)]
)
def sign_out(request: Request, db: Db, settings: AppSettings) -> Response:
    raw = request.cookies.get(settings.session_cookie_name)
    if raw:
        end_session(db, raw)
        db.commit()
    response = RedirectResponse(request.url_for("ui_sign_in").path, status_code=303)
    response.delete_cookie(settings.session_cookie_name, path="/")
    flash.add(request, response, "success", "You are signed out.")
    return response
