"""``POST /oauth2/token``: OAuth 2.0 client-credentials grant (standard OAuth JSON, no envelope)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from qualflow.sandbox.errors import ApiError
from qualflow.sandbox.http import state_of

router = APIRouter()


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="qualtrics"'} if status == 401 else None
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _client_credentials(request: Request, form: dict[str, list[str]]) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (unquote(client_id), unquote(secret)) if sep else None
    # RFC 6749 also allows the credentials in the form body.
    if "client_id" in form and "client_secret" in form:
        return form["client_id"][0], form["client_secret"][0]
    return None


@router.post("/oauth2/token")
async def token(request: Request) -> JSONResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return _oauth_error(
            400, "invalid_request", "Send the token request as application/x-www-form-urlencoded."
        )
    raw = (await request.body()).decode("utf-8", errors="replace")
    form = parse_qs(raw, keep_blank_values=True)
    grant = (form.get("grant_type") or [""])[0]
    if not grant:
        return _oauth_error(400, "invalid_request", "grant_type is required.")
    if grant != "client_credentials":
        return _oauth_error(
            400, "unsupported_grant_type", f"grant_type {grant!r} is not supported by the sandbox."
        )
    creds = _client_credentials(request, form)
    if creds is None:
        return _oauth_error(
            401, "invalid_client", "Client authentication (HTTP Basic) is required."
        )
    scope = form["scope"][0] if form.get("scope") else None
    state = state_of(request)
    try:
        issued = state.issue_access_token(creds[0], creds[1], scope)
    except ApiError as exc:
        return _oauth_error(exc.status, exc.code, exc.message)
    return JSONResponse(
        {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": state.config.oauth_token_ttl,
            "scope": issued.scope,
        },
        headers={"Cache-Control": "no-store"},
    )
