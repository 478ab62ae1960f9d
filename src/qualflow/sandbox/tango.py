"""Tango RaaS v2-compatible endpoints of the sandbox (``/raas/v2/...``), for tests and the demo.

Served: ``GET /raas/v2/catalogs``, ``GET /raas/v2/accounts/{id}``, ``POST|GET /raas/v2/orders``,
``GET /raas/v2/orders/{id}``, ``POST /raas/v2/orders/{id}/resends``, with HTTP Basic auth
(platform name + key). ``/_sandbox/tango`` shows the credentials and balances and lets a demo
fund an account, fail the next orders (``/_sandbox/tango/failures``) or refuse orders for an
email (``/_sandbox/tango/refusals``); fault rules on ``/raas/v2/...`` paths apply too. The
state lives on ``app.state.tango`` (:class:`~qualflow.sandbox.tango_state.TangoState`); when
none was set, one is created on first use, kept in the sandbox's state file when the sandbox has
one, else seeded with a funded account.
"""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from qualflow.sandbox.fault_limits import MAX_RETRY_AFTER
from qualflow.sandbox.state import SandboxState
from qualflow.sandbox.tango_state import TangoApiError, TangoState, field_error, normalise_email

PREFIX = "/raas/v2"

router = APIRouter(include_in_schema=False)


def tango_state(request: Request) -> TangoState:
    """The app's Tango state, created on first use: kept in the sandbox's state (and so in its
    state file, when it has one) where the app has a sandbox, else seeded in memory."""
    state: TangoState | None = getattr(request.app.state, "tango", None)
    if state is None:
        sandbox: SandboxState | None = getattr(request.app.state, "sandbox", None)
        state = TangoState.kept_in(sandbox) if sandbox is not None else TangoState.seeded()
        request.app.state.tango = state
    return state


def _credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    name, _, key = decoded.partition(":")
    return name, key


def _error(request: Request, exc: TangoApiError) -> JSONResponse:
    return JSONResponse(exc.body(request.url.path), status_code=exc.status, headers=exc.headers)


def _guarded(request: Request) -> TangoState:
    state = tango_state(request)
    state.authenticate(*_credentials(request))
    state.gate(request.url.path, request.method)
    return state


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        problem = {"path": "", "message": "The body is not valid JSON.", "constraint": "Syntax"}
        raise TangoApiError(400, [{**problem, "invalidValue": None}]) from None


@router.get(PREFIX + "/catalogs")
async def catalogs(request: Request) -> JSONResponse:
    try:
        return JSONResponse(_guarded(request).catalog())
    except TangoApiError as exc:
        return _error(request, exc)


@router.get(PREFIX + "/accounts/{account_id}")
async def account(request: Request, account_id: str) -> JSONResponse:
    try:
        return JSONResponse(_guarded(request).account_view(account_id))
    except TangoApiError as exc:
        return _error(request, exc)


@router.post(PREFIX + "/orders")
async def create_order(request: Request) -> JSONResponse:
    try:
        state = _guarded(request)
        status, order = state.create_order(await _json(request))
        state.gate_after(request.url.path, request.method)
        return JSONResponse(order, status_code=status)
    except TangoApiError as exc:
        return _error(request, exc)


@router.get(PREFIX + "/orders")
async def list_orders(request: Request) -> JSONResponse:
    try:
        return JSONResponse(_guarded(request).find_orders(dict(request.query_params)))
    except TangoApiError as exc:
        return _error(request, exc)


@router.get(PREFIX + "/orders/{reference}")
async def get_order(request: Request, reference: str) -> JSONResponse:
    try:
        return JSONResponse(_guarded(request).order(reference))
    except TangoApiError as exc:
        return _error(request, exc)


@router.post(PREFIX + "/orders/{reference}/resends")
async def resend(request: Request, reference: str) -> JSONResponse:
    try:
        state = _guarded(request)
        resent = state.resend(reference, await _json(request))
        state.gate_after(request.url.path, request.method)
        return JSONResponse(resent, status_code=201)
    except TangoApiError as exc:
        return _error(request, exc)


# -- sandbox controls (no auth, like the rest of /_sandbox) ---------------------------------------


@router.get("/_sandbox/tango")
async def summary(request: Request) -> JSONResponse:
    state = tango_state(request)
    with state.lock:
        return JSONResponse(
            {
                "platformName": state.platform_name,
                "platformKey": state.platform_key,
                "accounts": [a.view() for a in state.accounts.values()],
                "orders": len(state.orders),
                "requests": state.request_count,
                "rateLimited": state.rate_limited_count,
                "pendingOrderFailures": sum(f.remaining for f in state.failures),
                "refusedEmails": sorted(state.refusals),
            }
        )


@router.put("/_sandbox/tango/accounts/{account_id}/balance")
async def set_balance(request: Request, account_id: str) -> JSONResponse:
    state = tango_state(request)
    try:
        body = await _json(request)
        balance = Decimal(str(body.get("balance"))) if isinstance(body, dict) else None
        if balance is None or balance < 0:
            raise InvalidOperation
        state.set_balance(account_id, balance)
    except (InvalidOperation, ValueError):
        return _error(
            request,
            TangoApiError(400, [{"path": "balance", "message": "balance must be a number >= 0.",
                                 "constraint": "Range", "invalidValue": None}]),
        )  # fmt: skip
    except KeyError:
        return _error(
            request,
            TangoApiError(404, [{"path": "accountIdentifier", "message": "Account not found.",
                                 "constraint": "NotFound", "invalidValue": account_id}]),
        )  # fmt: skip
    except TangoApiError as exc:
        return _error(request, exc)
    return JSONResponse(state.account_view(account_id))


#: Orders fail with Tango's own 4xx and 5xx answers; a 2xx or 3xx is no failure.
FAILURE_STATUSES = range(400, 600)
MAX_FAILURES = 1000
MAX_MESSAGE = 500


def _refused(field: str, message: str, value: Any = None) -> TangoApiError:
    return TangoApiError(400, [field_error(field, message, "Invalid", value)])


async def _control_body(request: Request, known: set[str]) -> dict[str, Any]:
    body = await _json(request)
    if not isinstance(body, dict):
        raise _refused("", "The body must be a JSON object.")
    for key in body:
        if key not in known:
            raise _refused(key, f"Unknown field {key!r}; known: {', '.join(sorted(known))}.")
    return body


def _status(body: dict[str, Any], allowed: range, default: int | None) -> int:
    status = body.get("status", default)
    valid = isinstance(status, int) and not isinstance(status, bool) and status in allowed
    if not valid or status not in {s.value for s in HTTPStatus}:
        raise _refused(
            "status", f"status must be an HTTP status from {allowed[0]} to {allowed[-1]}.", status
        )
    return int(status)


def _message(body: dict[str, Any]) -> str | None:
    message = body.get("message")
    if message is not None and (
        not isinstance(message, str) or not message.strip() or len(message) > MAX_MESSAGE
    ):
        raise _refused("message", f"message must be 1 to {MAX_MESSAGE} characters.")
    return message


def _whole(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _refused(name, f"{name} must be a whole number from {low} to {high}.", value)
    return value


@router.post("/_sandbox/tango/failures")
async def fail_next_orders(request: Request) -> JSONResponse:
    """``{"status": 503, "count": 1, "message"?, "retryAfter"?, "afterPlacing"?}``: the next
    ``count`` orders (POST /raas/v2/orders) are answered with ``status`` and ``message`` in
    Tango's error shape, without placing them; with ``"afterPlacing": true`` each is placed and
    charged first and only its answer fails (a retry with the same externalRefID finds it)."""
    fields = {"status", "count", "message", "retryAfter", "afterPlacing"}
    try:
        body = await _control_body(request, fields)
        status = _status(body, FAILURE_STATUSES, None)
        count = _whole(body, "count", 1, 1, MAX_FAILURES) or 1
        retry_after = _whole(body, "retryAfter", None, 0, MAX_RETRY_AFTER)
        message = _message(body) or "Injected failure."
        after_placing = body.get("afterPlacing", False)
        if not isinstance(after_placing, bool):
            raise _refused("afterPlacing", "afterPlacing must be true or false.", after_placing)
    except TangoApiError as exc:
        return _error(request, exc)
    tango_state(request).fail_next(
        status,
        times=count,
        path_prefix=PREFIX + "/orders",
        retry_after=retry_after,
        message=message,
        method="POST",
        after=after_placing,
    )
    return JSONResponse(
        {"status": status, "count": count, "message": message, "afterPlacing": after_placing}
    )


@router.post("/_sandbox/tango/refusals")
async def refuse_email(request: Request) -> JSONResponse:
    """``{"email": "x@example.org", "status": 400, "message"?}``: every order for that
    recipient email (any case) is refused with a Tango 4xx on ``recipient.email``, until the
    faults are cleared."""
    try:
        body = await _control_body(request, {"email", "status", "message"})
        email = body.get("email")
        if not isinstance(email, str) or not _looks_like_email(email):
            raise _refused("email", "email must be an email address, e.g. x@example.org.", email)
        status = _status(body, range(400, 500), 400)
        message = _message(body)
    except TangoApiError as exc:
        return _error(request, exc)
    state = tango_state(request)
    state.refuse_email(email, status, message)
    address = normalise_email(email)
    return JSONResponse(
        {"email": address, "status": status, "message": state.refusals[address].message}
    )


def _looks_like_email(email: str) -> bool:
    local, at, domain = email.strip().partition("@")
    return bool(local and at and domain) and len(email) <= 254
