"""Tango RaaS v2-compatible endpoints of the sandbox (``/raas/v2/...``), for tests and the demo.

Served: ``GET /raas/v2/catalogs``, ``GET /raas/v2/accounts/{id}``, ``POST|GET /raas/v2/orders``,
``GET /raas/v2/orders/{id}``, ``POST /raas/v2/orders/{id}/resends``, with HTTP Basic auth
(platform name + key). ``/_sandbox/tango`` shows the credentials and balances and lets a demo
fund an account or inject failures. The state lives on ``app.state.tango``
(:class:`~qualflow.sandbox.tango_state.TangoState`); when none was set, one is created on first
use, kept in the sandbox's state file when the sandbox has one, else seeded with a funded account.
"""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from qualflow.sandbox.state import SandboxState
from qualflow.sandbox.tango_state import TangoApiError, TangoState

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
    state.gate(request.url.path)
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
        state.gate_after(request.url.path)
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
        state.gate_after(request.url.path)
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
