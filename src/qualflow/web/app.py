"""The web application: UI, REST API under ``/api/v1``, webhook edge, ``/healthz``.

``create_app(settings)`` builds a complete hub: its lifespan opens the store (migrating the
embedded SQLite default), starts the engine (``settings.engine``: embedded, web-only or off; an
engine already running in the process, e.g. the demo's, is used as it is and left running) and
then enters every lifespan registered with :func:`add_lifespan`. Each area mounts its router with
one ``include_router`` line below.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qualflow import __version__
from qualflow.connections.clients import configure_clients, use_budget_database
from qualflow.incentives.api import OPENAPI_TAGS as INCENTIVE_TAGS
from qualflow.incentives.runtime import install_incentives
from qualflow.settings import EngineMode, Settings, get_settings
from qualflow.store.readiness import (
    DatabaseNotReady,
    invalid_settings_reason,
    open_ready_store,
)
from qualflow.store.redact import install_log_redaction
from qualflow.store.secrets import SecretDecryptionError
from qualflow.web import edge
from qualflow.web.api import accounts as accounts_api
from qualflow.web.api import automations as automations_api
from qualflow.web.api import connections as connections_api
from qualflow.web.api import runs as runs_api
from qualflow.web.api.created import LOCATION_HEADER_DOC
from qualflow.web.api_docs import install_api_docs
from qualflow.web.deps import (
    ApiError,
    ErrorResponse,
    api_error_response,
    error_response,
    error_responses,
    media_type,
    status_code_name,
)
from qualflow.web.retention import retention_lifespan
from qualflow.web.ui import install_ui
from qualflow.web.ui.errors import render_error

__all__ = ["API_PREFIX", "add_lifespan", "create_app"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

OPENAPI_TAGS = [
    {"name": "auth", "description": "Sign in to and out of the UI (session cookie)."},
    {"name": "me", "description": "The calling person: profile, password, personal API tokens."},
    {"name": "users", "description": "People and their permissions (admins only)."},
    {"name": "connections", "description": "Named Qualtrics connections (Connections area)."},
    {"name": "automations", "description": "Automations: a trigger and steps; their actions."},
    {"name": "runs", "description": "Run history of automations: inspect, replay, cancel."},
    *INCENTIVE_TAGS,
    {"name": "health", "description": "Liveness and database checks."},
]


#: What every operation of ``/api/v1`` has in common, at the top of the API reference.
API_CONVENTIONS = """\
Conventions every operation of `/api/v1` follows:

- **Errors** answer `{"error": {"code", "message", "details"?}}` (the `ErrorResponse` schema) with
  a stable `code`; a `validation_error` lists each refused parameter or field in `details`.
- **Bodies** are JSON objects sent as `application/json` (otherwise 415; the platform's reward
  request also takes a form); a body that is not valid JSON answers 422. An unknown field in a
  body is refused with 422 naming it, never ignored.
- **Lists that page** take `limit` (1-500, default 50) and `offset` (rows to skip); a value out of
  range is refused with 422, never clamped. Their `total` counts every row matching the filters.
- **Creating** answers 201 with a `Location` header giving the path of the new resource.
- **Secrets** (tokens, keys, passwords) are answered masked, except once when they are created or
  explicitly revealed.
"""


class Health(BaseModel):
    status: str
    database: str
    version: str


class _StartupRefusalInOneLine:
    """Tells the server an unusable database's one line instead of the traceback Starlette sends
    for a failed startup: uvicorn logs what it is told and exits non-zero, and logs no
    traceback of its own once told the startup failed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_refusal_in_one_line(message: Message) -> None:
            # Starlette sends "startup.failed" while handling the lifespan's exception.
            refusal = sys.exception()
            if message["type"] == "lifespan.startup.failed" and isinstance(
                refusal, DatabaseNotReady
            ):
                message = {**message, "message": str(refusal)}
            await send(message)

        await self.app(scope, receive, send_refusal_in_one_line)


def _settings_from_environment() -> Settings:
    """The environment's settings, or the one line ``qualflow serve`` prints for bad ones and
    exit 1: a server loading :func:`create_app` itself (``uvicorn --factory``) would show
    pydantic's traceback instead."""
    try:
        return get_settings()
    except ValidationError as exc:
        print(f"error: {invalid_settings_reason(exc)}", file=sys.stderr)
        # uvicorn ends quietly on SystemExit from a factory, as on its own factory errors.
        raise SystemExit(1) from None


def add_lifespan(app: FastAPI, lifespan: Lifespan) -> None:
    """Run ``lifespan(app)`` inside the app's lifespan, after the store is open (in order)."""
    app.state.extra_lifespans.append(lifespan)


def create_app(
    settings: Settings | None = None,
    *,
    qualtrics_transport: httpx.AsyncBaseTransport | None = None,
    engine: EngineMode | None = None,
    executor_id: str | None = None,
) -> FastAPI:
    """Build the qualflow web application.

    ``qualtrics_transport`` routes every Qualtrics call of this process through a transport
    (the demo and tests pass ``httpx.ASGITransport`` over the sandbox app). ``engine`` overrides
    ``settings.engine``; ``executor_id`` is the engine's stable id (for recovering its runs).
    """
    settings = settings or _settings_from_environment()
    engine_mode = engine or settings.engine

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_log_redaction()
        if qualtrics_transport is not None:
            configure_clients(transport=qualtrics_transport)
        store = open_ready_store(settings)
        app.state.store = store
        # Every process on one PostgreSQL database shares each connection's Qualtrics budget.
        use_budget_database(store.engine)
        try:
            async with AsyncExitStack() as stack:
                for extra in app.state.extra_lifespans:
                    await stack.enter_async_context(extra(app))
                yield
        finally:
            use_budget_database(None)
            store.close()
            app.state.store = None

    app = FastAPI(
        title="qualflow",
        version=__version__,
        summary="Self-hosted hub connecting a Qualtrics account to your research or CX stack.",
        description=API_CONVENTIONS,
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
        docs_url=None,  # served from vendored assets by install_api_docs, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = None
    app.state.extra_lifespans = []
    # Old inbound events and cached responses are pruned whether or not the engine runs here.
    add_lifespan(app, retention_lifespan)
    if engine_mode != "off":
        # First in, last out: every other area's lifespan runs with the engine up.
        add_lifespan(
            app, edge.engine_lifespan(executor_id=executor_id, worker=engine_mode == "embedded")
        )

    app.add_middleware(_StartupRefusalInOneLine)
    _install_error_handlers(app)
    _install_openapi(app)

    @app.get(
        "/healthz",
        tags=["health"],
        response_model=Health,
        responses=error_responses(503),
        summary="Check that the app is up and its database answers",
    )
    def healthz(request: Request) -> Health | JSONResponse:
        store = request.app.state.store
        try:
            with store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.warning("health check: database unavailable: %s", exc.__class__.__name__)
            return error_response(503, "database_unavailable", "the database does not answer")
        return Health(status="ok", database="ok", version=__version__)

    app.include_router(accounts_api.router, prefix=API_PREFIX)
    install_ui(app)
    install_api_docs(app, vendor_url="/static/vendor")
    app.include_router(connections_api.router, prefix=API_PREFIX)
    install_incentives(app)
    app.include_router(automations_api.router, prefix=API_PREFIX)
    app.include_router(automations_api.actions_router, prefix=API_PREFIX)
    app.include_router(runs_api.router, prefix=API_PREFIX)
    edge.install(app)  # webhooks and JSON events (outside /api/v1, as Qualtrics)
    return app


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    details = []
    parts = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            # FastAPI puts the character offset where the JSON broke after "body".
            offset = location[1] if len(location) > 1 else None
            where = "body"
            message = "the body is not valid JSON" + (
                f" (error at character {offset})" if offset is not None else ""
            )
            details.append({"field": where, "message": message, "type": error.get("type")})
            parts.append(message)
            continue
        if location and location[0] in ("body", "query", "path", "header", "cookie"):
            where = ".".join(location[1:]) or location[0]
        else:
            where = ".".join(location)
        message = str(error.get("msg", "invalid value"))
        details.append({"field": where, "message": message, "type": error.get("type")})
        parts.append(f"{where}: {message}" if where else message)
    return "invalid request: " + "; ".join(parts), details


def _non_json_body(request: Request, errors: list[dict[str, Any]]) -> str | None:
    """The media type of a body sent as something other than JSON to an operation that takes
    a JSON object (FastAPI then reports the whole body as the wrong type), else None."""
    sent_as = media_type(request)
    if not sent_as or sent_as == "application/json" or sent_as.endswith("+json"):
        return None
    whole_body = [e for e in errors if tuple(e.get("loc", ())) == ("body",)]
    return sent_as if whole_body else None


def _is_page(request: Request) -> bool:
    """A UI page or form, which a browser shows: neither the REST API nor the webhook edge,
    whose callers are programs."""
    route = request.scope.get("route")
    return (
        isinstance(route, APIRoute)
        and not request.url.path.startswith(f"{API_PREFIX}/")
        and edge.EDGE_TAG not in route.tags
    )


def _page_for_invalid_request(request: Request, errors: list[dict[str, Any]]) -> Response:
    if any(tuple(e.get("loc", ()))[:1] == ("path",) for e in errors):
        # /automations/abc names nothing that can exist.
        return render_error(request, 404, "Not found", f"{request.url.path} does not exist.")
    message, _ = _validation_message(errors)
    return render_error(request, 400, "This request is not valid", message)


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return api_error_response(exc)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.detail, dict) and {"code", "message"} <= exc.detail.keys():
            code, message = str(exc.detail["code"]), str(exc.detail["message"])
        else:
            code = status_code_name(exc.status_code)
            message = str(exc.detail)
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = list(jsonable_encoder(exc.errors()))
        if _is_page(request):
            return _page_for_invalid_request(request, errors)
        media_type = _non_json_body(request, errors)
        if media_type is not None:
            return error_response(
                415,
                "unsupported_media_type",
                f"the body must be JSON (Content-Type: application/json), not {media_type}",
            )
        message, details = _validation_message(errors)
        return error_response(422, "validation_error", message, details=details)

    async def undecryptable_secret(request: Request, exc: Exception) -> Response:
        # A key was dropped from the list after it encrypted this secret: an operator's
        # mistake a person can fix, so say which and how instead of "internal server error".
        log.error("a stored secret cannot be decrypted: %s", exc)
        message = (
            f"{exc}: restore the key that encrypted it (QUALFLOW_SECRET_KEYS or secret.keys "
            "in the data directory), or save that secret again"
        )
        if _is_page(request):
            return render_error(request, 500, "A stored secret cannot be read", message)
        return error_response(500, "secret_not_decryptable", message)

    async def unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal server error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(SecretDecryptionError, undecryptable_secret)
    app.add_exception_handler(Exception, unexpected_error)


def _install_openapi(app: FastAPI) -> None:
    """Document our error body for 422 instead of FastAPI's default validation schema, the
    400 (body not UTF-8) and 415 (not sent as JSON) of every operation with a JSON body, and
    the ``Location`` header of every 201."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in error_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault("ErrorResponse", error_schema)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict):
                    continue
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"] = _error_response_doc(
                        "Request failed validation: a parameter or field (each in `details`), "
                        "or a body that is not valid JSON"
                    )
                if "201" in responses:
                    responses["201"].setdefault("headers", {}).update(LOCATION_HEADER_DOC)
                body = operation.get("requestBody", {}).get("content", {})
                if "application/json" in body and "400" not in responses:
                    responses["400"] = _error_response_doc("The body is not UTF-8 text")
                if "application/json" in body and "415" not in responses:
                    responses["415"] = _error_response_doc("The body was not sent as JSON")
        _drop_unreferenced(schema, ("HTTPValidationError", "ValidationError"))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _error_response_doc(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }


def _drop_unreferenced(schema: dict[str, Any], names: tuple[str, ...]) -> None:
    components = schema.get("components", {}).get("schemas", {})
    for name in names:
        if name not in components:
            continue
        rest = {key: value for key, value in components.items() if key != name}
        others = json.dumps([schema.get("paths", {}), rest])
        if f"#/components/schemas/{name}" not in others:
            del components[name]
