"""CSRF protection for UI forms: a double-submit token.

A random token lives in an HttpOnly, SameSite=Strict cookie and is repeated in every form (hidden
``csrf_token`` field) and every htmx request (``X-CSRF-Token`` header, set on ``<body>``). A
cross-site page can make the browser send the cookie but cannot read it, so it cannot repeat it.
This sits on top of the accounts package's Origin check for cookie-authenticated requests.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from starlette.responses import Response

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "CSRF_HEADER", "CsrfError", "check_csrf", "csrf_token_for"]

CSRF_COOKIE = "qualflow_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class CsrfError(Exception):
    """The request's CSRF token is missing or does not match the cookie."""


def csrf_token_for(request: Request, response: Response | None = None) -> str:
    """The token for this browser; with ``response``, (re)sets the cookie when it was missing."""
    token: str | None = getattr(request.state, "csrf_token", None)
    if token is None:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        request.state.csrf_token = token
    if response is not None and request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return token


async def check_csrf(request: Request) -> None:
    """Dependency for state-changing UI routes; raises :class:`CsrfError` on a mismatch."""
    expected = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise CsrfError("the form expired or came from another site; reload the page and retry")
