"""The sandbox ASGI application: :func:`create_app`.

Layers, outermost first: trailing-slash normalisation and body-size limits, fault injection
(latency, hangs, injected errors, the brand rate limit), authentication (``X-API-TOKEN``,
OAuth bearer tokens, Basic ``username:token`` for JSON events), then the routers. Every error
leaves in the Qualtrics error envelope.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qualflow.sandbox import errors
from qualflow.sandbox.delivery import WebhookDispatcher
from qualflow.sandbox.errors import ApiError
from qualflow.sandbox.state import SandboxState
from qualflow.sandbox.tango_state import TangoApiError, field_error
from qualflow.web.api_docs import install_api_docs

API_PREFIX = "/API/v3"
INBOUND_PATH = "/inbound-event/v1/events/json/triggers"
# Trigger URLs copied from older workflows name the trigger with ?triggerId= (and contextId,
# userId, brandId) instead of ?urlTokenId=.
OLDER_INBOUND_PATH = "/inbound-event/v1/events/JSON/triggers"
INBOUND_PATHS = (INBOUND_PATH, OLDER_INBOUND_PATH)
TOKEN_PATH = "/oauth2/token"
CONTROL_PREFIX = "/_sandbox"
TANGO_PREFIX = "/raas/v2"


class _BodyTooLarge(Exception):
    pass


class SandboxMiddleware:
    """Normalise paths, enforce body limits, inject faults and authenticate API calls."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
            scope = {**scope, "path": path, "raw_path": path.encode()}
        if path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        notice_token = errors.NOTICE.set(None)
        try:
            await self._handle(scope, receive, send, path)
        finally:
            errors.NOTICE.reset(notice_token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        try:
            await self._guard(scope, path)
        except ApiError as exc:
            if _is_tango(path):
                await _in_tango_shape(exc, path)(scope, receive, send)
                return
            await exc.response()(scope, receive, send)
            return
        limit = (
            self.state.config.inbound_event_max_bytes
            if path in INBOUND_PATHS
            else self.state.config.max_body_bytes
        )
        length = _header(scope, b"content-length")
        if length is not None and length.isdecimal() and int(length) > limit:
            await _too_large(limit).response()(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(limit).response()(scope, receive, send)

    async def _guard(self, scope: Scope, path: str) -> None:
        is_api = path.startswith(API_PREFIX + "/") or path == API_PREFIX
        is_tango = _is_tango(path)
        if not (is_api or is_tango or path in INBOUND_PATHS or path == TOKEN_PATH):
            return
        verdict = self.state.faults.check(scope["method"], path, brand_limited=not is_tango)
        if verdict.latency:
            await self.state.faults.stall(verdict.latency)
        if verdict.hang:
            await self.state.faults.stall(verdict.hang)
            raise ApiError(504, errors.UNAVAILABLE, "Gateway timeout (injected hang).")
        if verdict.error is not None:
            raise verdict.error
        if path == TOKEN_PATH or is_tango:  # the Tango double checks its own Basic auth
            return
        user = self._authenticate(scope, allow_basic=path in INBOUND_PATHS, allow_bearer=is_api)
        scope.setdefault("state", {})["user"] = user
        host = self.state.config.proxy_notice_host
        if host and is_api:
            errors.NOTICE.set(
                f"Request proxied. For faster response times, use this host instead: {host}"
            )

    def _authenticate(self, scope: Scope, *, allow_basic: bool, allow_bearer: bool) -> Any:
        token = _header(scope, b"x-api-token")
        if token is not None:
            user = self.state.user_for_token(token.strip())
            if user is None:
                raise ApiError(401, errors.BAD_TOKEN, "Unrecognized X-API-TOKEN.")
            return user
        authorization = _header(scope, b"authorization")
        if authorization:
            scheme_name, _, value = authorization.partition(" ")
            scheme = scheme_name.lower()
            if scheme == "bearer" and allow_bearer:
                user = self.state.user_for_bearer(value.strip())
                if user is None:
                    raise ApiError(
                        401, errors.BAD_OAUTH_TOKEN, "Unrecognized or expired OAuth access token."
                    )
                proxied_to = self.state.config.proxy_notice_host
                if proxied_to:
                    # Qualtrics proxies API-token calls made to the wrong datacenter, but an
                    # OAuth token is only valid where its client was created.
                    raise ApiError(
                        401,
                        errors.BAD_OAUTH_TOKEN,
                        "OAuth access tokens are valid only in the datacenter where the client "
                        f"was created; use this host instead: {proxied_to}",
                    )
                return user
            if scheme == "basic" and allow_basic:
                try:
                    decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    raise ApiError(401, errors.BAD_TOKEN, "Malformed Basic credentials.") from None
                username, _, api_token = decoded.partition(":")
                user = self.state.user_for_token(api_token)
                if user is None or user.username != username:
                    raise ApiError(401, errors.BAD_TOKEN, "Unrecognized username or API token.")
                return user
            if scheme == "bearer":
                raise ApiError(
                    401, errors.BAD_OAUTH_TOKEN, "OAuth tokens are not accepted for JSON events."
                )
            accepted = "an OAuth bearer token" if allow_bearer else "Basic username:API token"
            raise ApiError(
                400,
                errors.NO_AUTH,
                f"Expected authorization in headers (X-API-TOKEN or {accepted}); an "
                f"Authorization header with the {scheme_name} scheme is not "
                "accepted here.",
            )
        raise ApiError(400, errors.NO_AUTH, "Expected authorization in headers, but none provided.")


def _is_tango(path: str) -> bool:
    return path == TANGO_PREFIX or path.startswith(TANGO_PREFIX + "/")


def _in_tango_shape(exc: ApiError, path: str) -> JSONResponse:
    """An injected fault on a Tango path, answered as Tango answers errors, so a Tango client
    sees the body it parses (the Qualtrics envelope would be a different, unknown error)."""
    constraint = "RateLimit" if exc.status == 429 else "SystemError"
    tango_error = TangoApiError(exc.status, [field_error("", exc.message, constraint)])
    return JSONResponse(tango_error.body(path), status_code=exc.status, headers=exc.headers)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, errors.TOO_LARGE, f"Request body too large (limit {limit} bytes).")


_HTTP_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """The methods served on the request's path by the app that answered 405.

    Starlette's own 405 names only the first route matching the path, but each method of a
    path is a route of its own here; so ask every route about every method.
    """
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]
    return [
        method
        for method in _HTTP_METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


def _exception_handlers() -> dict[Any, Any]:
    """Every error leaves in the Qualtrics error envelope."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            message = f"No such endpoint: {request.method} {request.url.path}."
            return errors.not_found(message).response()
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            served = ", ".join(m for m in allowed if m != "HEAD")
            message = f"Method {request.method} not allowed on {request.url.path}"
            message += f"; use {served}." if served else "."
            return ApiError(
                405, errors.METHOD_NOT_ALLOWED, message, headers={"Allow": ", ".join(allowed)}
            ).response()
        return ApiError(exc.status_code, errors.INVALID, str(exc.detail)).response()

    async def unexpected(request: Request, exc: Exception) -> Response:
        message = f"Internal server error: {type(exc).__name__}."
        return ApiError(500, errors.SERVER_ERROR, message).response()

    return {ApiError: api_error, StarletteHTTPException: http_error, Exception: unexpected}


def create_app(
    state: SandboxState | None = None,
    *,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    autosave_interval: float = 1.0,
) -> FastAPI:
    """Build the sandbox ASGI app around ``state`` (a fresh one with a default user if None).

    ``webhook_transport`` routes event-subscription deliveries (e.g. ``httpx.ASGITransport`` of
    another app, in-process); without it they go over real HTTP. When ``state.path`` is set, the
    state is saved every ``autosave_interval`` seconds while it changes and on shutdown.
    """
    from qualflow.sandbox import api_directory, api_events, api_surveys, control, oauth, tango

    if state is None:
        state = SandboxState()
        state.default_user()
    dispatcher = WebhookDispatcher(state, transport=webhook_transport)
    state.add_listener(dispatcher.on_event)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = state.start_autosave(autosave_interval) if state.path else None
        try:
            yield
        finally:
            await dispatcher.aclose()
            if stop:
                await asyncio.to_thread(stop)

    app = FastAPI(
        title="qualflow sandbox (Qualtrics-compatible API)",
        version="1",
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,  # install_api_docs: served without a CDN
        redoc_url=None,
    )
    app.state.sandbox = state
    app.state.dispatcher = dispatcher

    handlers = _exception_handlers()
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        message = (
            f"Invalid request. Missing or invalid parameter {where}: {first.get('msg', 'invalid')}."
        )
        return errors.bad_request(message).response()

    # /API/v3 is a plain Starlette router (fast matching); it shares state and error handling.
    api = Starlette(
        routes=[
            *api_surveys.router.routes,
            *api_events.router.routes,
            *api_directory.router.routes,
        ],
        exception_handlers=handlers,
    )
    api.state.sandbox = state
    api.state.dispatcher = dispatcher

    app.mount(API_PREFIX, api)  # first: the hot path is matched before anything else
    app.include_router(oauth.router)
    app.include_router(api_events.inbound_router)
    app.include_router(control.router)
    app.include_router(tango.router)  # Tango RaaS v2 double (/raas/v2, /_sandbox/tango)
    install_api_docs(app, vendor_url="/_sandbox/assets", mount=True)
    app.add_middleware(SandboxMiddleware, state=state)
    return app
