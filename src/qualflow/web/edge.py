"""The HTTP edge: Qualtrics event-subscription webhooks and Qualtrics-style JSON events.

Each delivery is checked (signature or token, size, content type, shape), then recorded in
``inbound_events`` — accepted or rejected, with the reason — before the answer is sent. Accepted
events become runs behind the edge (see :mod:`qualflow.engine.dispatch`), so a burst is absorbed
at the speed of one grouped database commit, not at the speed of the runs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from jsonpath_ng import JSONPath
from jsonpath_ng.ext.parser import parse as parse_jsonpath
from starlette.types import ASGIApp, Receive, Scope, Send

from qualflow.engine.dispatch import run_id_for
from qualflow.engine.documents import require_utf8
from qualflow.engine.inbound import Endpoint
from qualflow.engine.runtime import Engine, engine_for, running_engine
from qualflow.engine.survey_triggers import survey_trigger_payload
from qualflow.qualtrics.webhooks import (
    CompletedResponse,
    PartialResponse,
    WebhookParseError,
    WebhookVerificationError,
    parse_event,
)
from qualflow.web.deps import (
    ApiError,
    api_error_response,
    error_response,
    media_type,
    read_limited,
    status_code_name,
)

MAX_JSON_EVENT_BYTES = 100 * 1024
MAX_WEBHOOK_BYTES = 64 * 1024
MAX_RECORDED_BODY = 2048
#: A body must arrive whole within this: a sender trickling bytes (slowloris) would otherwise
#: hold a connection and a request for as long as it likes (the server sets no such limit).
BODY_TIMEOUT_SECONDS = 30.0
MAX_IDEMPOTENCY_KEY = 150
#: ``runs.id`` and ``inbound_events.dedupe_key`` are 200 characters; PostgreSQL refuses longer.
MAX_RUN_ID = 200
#: Deeper documents are refused: the parser, the JSONPath fields and the database's JSON
#: encoder all recurse once per level.
MAX_JSON_EVENT_DEPTH = 100

#: The edge's routes carry this tag: their callers (Qualtrics, other systems) are programs.
EDGE_TAG = "edge"
router = APIRouter(tags=[EDGE_TAG])


def _engine(request: Request) -> Engine:
    engine = getattr(request.app.state, "qualflow_engine", None) or running_engine()
    if engine is None:
        # Nothing can be recorded: ask the sender to try again later rather than lose it.
        raise ApiError(503, "unavailable", "the engine is not running; try again shortly")
    return engine


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body (None when larger than ``limit``); ``TimeoutError`` when it does not arrive
    within :data:`BODY_TIMEOUT_SECONDS`."""
    async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
        return await read_limited(request, limit)


def _slow_body_reason() -> str:
    return f"the body did not arrive within {BODY_TIMEOUT_SECONDS:g} seconds"


@dataclass
class _Refusal:
    """Records a refused delivery with its reason, then answers with that reason; knows the
    body and the endpoint once the handler has them."""

    request: Request
    engine: Engine
    source: str
    token: str | None
    body: bytes = b""
    endpoint: Endpoint | None = None

    async def __call__(
        self, status_code: int, reason: str, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        endpoint, body = self.endpoint, self.body
        await self.engine.recorder.record(
            source=self.source,
            status="rejected",
            reason=reason,
            # No endpoint's token holds a NUL (and PostgreSQL refuses one): shown replaced.
            token=self.token.replace("\x00", "\ufffd")[:64] if self.token else None,
            automation_id=endpoint.automation_id if endpoint else None,
            payload={"body": body[:MAX_RECORDED_BODY].decode("utf-8", errors="replace")},
            size=len(body),
            remote=_remote(self.request),
        )
        return error_response(status_code, status_code_name(status_code), reason, headers=headers)


# -- JSON events ------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _compiled(path: str) -> JSONPath:
    return parse_jsonpath(path)


def _refuse_constant(name: str) -> NoReturn:
    # Python's parser accepts NaN/Infinity, but they are not JSON: PostgreSQL refuses to store
    # them and other consumers of the event cannot read them back.
    raise ValueError(f"{name} is not a JSON value")


def _depth(document: Any) -> int:
    """How deeply arrays and objects nest in ``document`` (iterative: no recursion limit)."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, level = pending.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in value)
    return deepest


def parse_event_document(body: bytes) -> Any:
    """The posted JSON document; ``ValueError`` with the reason for anything that is not
    plain JSON of at most :data:`MAX_JSON_EVENT_DEPTH` levels."""
    too_deep = f"nested deeper than {MAX_JSON_EVENT_DEPTH} levels"
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(too_deep) from None
    if _depth(document) > MAX_JSON_EVENT_DEPTH:
        raise ValueError(too_deep)
    # A string UTF-8 cannot encode (an unpaired surrogate) only comes from a \u escape:
    # checked when the body has a backslash (0x5C in UTF-8, -16 and -32, all parsed).
    if b"\\" in body:
        require_utf8(document)
    return document


def extract_fields(document: Any, fields: dict[str, str]) -> dict[str, Any]:
    """Evaluate each JSONPath; no match gives None, one match its value, several a list."""
    extracted: dict[str, Any] = {}
    for name, path in fields.items():
        matches = [m.value for m in _compiled(path).find(document)]
        extracted[name] = None if not matches else matches[0] if len(matches) == 1 else matches
    return extracted


def _presented_token(request: Request, auth_mode: str) -> tuple[str | None, str | None]:
    """The token the caller presented, or (None, why not)."""
    if auth_mode in ("any", "token"):
        header = request.headers.get("x-api-token")
        if header:
            return header.strip(), None
    if auth_mode in ("any", "basic"):
        authorization = request.headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None, "malformed Basic credentials"
            username, sep, password = decoded.partition(":")
            if not sep or not username:
                return None, "Basic credentials must be username:token"
            return password, None
    expected = {
        "any": "an X-API-TOKEN header or Basic credentials",
        "token": "an X-API-TOKEN header",
        "basic": "Basic credentials (username:token)",
    }[auth_mode]
    return None, f"authentication required: send {expected}"


JSON_EVENT_PATH = "/inbound-event/v1/events/json/triggers"
WEBHOOK_PREFIX = "/hooks/qualtrics/"


@router.post(
    JSON_EVENT_PATH,
    summary="Trigger an automation with a JSON event",
    responses={
        200: {"description": "Recorded; the run starts shortly."},
        400: {"description": "Missing urlTokenId or malformed JSON."},
        401: {"description": "Missing or wrong token."},
        404: {"description": "No automation has this urlTokenId."},
        408: {"description": "The body did not arrive within 30 seconds."},
        409: {"description": "The automation is disabled."},
        413: {"description": "Body larger than 100 KB."},
        415: {"description": "Body is not JSON."},
    },
)
async def json_event(request: Request, urlTokenId: str | None = None) -> JSONResponse:
    engine = _engine(request)
    source = "json_event"
    token = urlTokenId
    refuse = _Refusal(request, engine, source, token)
    try:
        body = await _read_body(request, MAX_JSON_EVENT_BYTES)
    except TimeoutError:
        return await refuse(408, _slow_body_reason())
    if body is None:
        return await refuse(413, f"the event is larger than {MAX_JSON_EVENT_BYTES // 1024} KB")
    refuse.body = body
    content_type = media_type(request)
    if content_type != "application/json" and not content_type.endswith("+json"):
        return await refuse(
            415, f"content type must be application/json, not {content_type or 'missing'!r}"
        )
    if not token:
        return await refuse(400, "the urlTokenId query parameter is required")
    endpoint = engine.endpoints.lookup(token)
    if endpoint is None or endpoint.kind != "json_event":
        return await refuse(404, "no automation has this urlTokenId")
    refuse.endpoint = endpoint
    presented, problem = _presented_token(request, endpoint.auth)
    if presented is None or not endpoint.token_matches(presented):
        return await refuse(
            401,
            problem or "the token is not valid for this trigger",
            {"WWW-Authenticate": 'Basic realm="qualflow"'},
        )
    try:
        document = parse_event_document(body)
    except ValueError as exc:  # also bad UTF-8 and JSONDecodeError
        return await refuse(400, f"malformed JSON: {exc}")
    if not endpoint.enabled:
        return await refuse(409, f"automation {endpoint.automation_name!r} is disabled")
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        return await refuse(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    fields = extract_fields(document, endpoint.fields)
    event_id = await engine.recorder.record(
        source=source,
        status="accepted",
        token=token,
        automation_id=endpoint.automation_id,
        dedupe_key=f"event:{key}" if key else None,
        payload={
            "type": "json_event",
            "summary": "JSON event" + (f" {key}" if key else ""),
            "fields": fields,
            "document": document,
        },
        size=len(body),
        remote=_remote(request),
    )
    return JSONResponse({"status": "accepted", "eventId": event_id})


# -- Qualtrics event-subscription webhooks -----------------------------------------------------


@router.post(
    WEBHOOK_PREFIX + "{token}",
    summary="Receive a Qualtrics event-subscription delivery",
    responses={
        200: {"description": "Recorded (or acknowledged and ignored); the run starts shortly."},
        400: {"description": "Malformed delivery, or a survey this subscription is not for."},
        401: {"description": "Missing or wrong HMAC signature."},
        404: {"description": "No subscription has this URL."},
        408: {"description": "The body did not arrive within 30 seconds."},
        409: {"description": "The automation is disabled."},
        413: {"description": "Body larger than 64 KB."},
    },
)
async def qualtrics_webhook(request: Request, token: str) -> JSONResponse:
    engine = _engine(request)
    source = "qualtrics_webhook"
    refuse = _Refusal(request, engine, source, token)
    try:
        body = await _read_body(request, MAX_WEBHOOK_BYTES)
    except TimeoutError:
        return await refuse(408, _slow_body_reason())
    if body is None:
        return await refuse(413, f"the delivery is larger than {MAX_WEBHOOK_BYTES // 1024} KB")
    refuse.body = body
    endpoint = engine.endpoints.lookup(token)
    if endpoint is None or endpoint.kind != "survey_response":
        return await refuse(
            404, "unknown subscription: no automation receives webhooks at this URL"
        )
    refuse.endpoint = endpoint
    try:
        event = parse_event(body, shared_key=endpoint.shared_key)
    except WebhookVerificationError as exc:
        return await refuse(401, f"signature check failed: {exc}")
    except WebhookParseError as exc:
        return await refuse(400, f"malformed delivery: {exc}")
    if event.survey_id != endpoint.survey_id:
        return await refuse(
            400,
            f"unknown survey {event.survey_id!r}: this subscription is for {endpoint.survey_id!r}",
        )
    if not endpoint.enabled:
        return await refuse(409, f"automation {endpoint.automation_name!r} is disabled")
    wanted = isinstance(event, CompletedResponse) or (
        isinstance(event, PartialResponse) and endpoint.include_partial
    )
    if not wanted:
        # Acknowledged so Qualtrics does not retry, and recorded so it is visible.
        event_id = await engine.recorder.record(
            source=source,
            status="ignored",
            token=token,
            automation_id=endpoint.automation_id,
            reason=f"{event.kind} events do not start this automation",
            payload={"topic": event.topic},
            size=len(body),
            remote=_remote(request),
        )
        return JSONResponse({"status": "ignored", "eventId": event_id})
    assert isinstance(event, CompletedResponse | PartialResponse)
    dedupe_key = f"{event.survey_id}:{event.response_id}"
    unkeyable = _unkeyable_response(event, run_id_for(endpoint.automation_id, dedupe_key))
    if unkeyable:
        return await refuse(400, f"malformed delivery: {unkeyable}")
    recorded = event.completed_date.isoformat() if event.completed_date else None
    event_id = await engine.recorder.record(
        source=source,
        status="accepted",
        token=token,
        automation_id=endpoint.automation_id,
        dedupe_key=dedupe_key,
        payload=survey_trigger_payload(
            event.survey_id,
            event.response_id,
            kind="completed" if isinstance(event, CompletedResponse) else "partial",
            recorded_at=recorded,
            source="webhook",
            recipient_id=event.recipient_id,
        ),
        size=len(body),
        remote=_remote(request),
    )
    return JSONResponse({"status": "accepted", "eventId": event_id})


def _unkeyable_response(event: CompletedResponse | PartialResponse, run_id: str) -> str | None:
    """Why the response cannot key a run (the database would refuse it), or None."""
    for name, value in (("ResponseID", event.response_id), ("RecipientID", event.recipient_id)):
        if value and "\x00" in value:
            return f"webhook field {name!r} holds a NUL character"
    if len(run_id) > MAX_RUN_ID:
        allowed = len(event.response_id) - (len(run_id) - MAX_RUN_ID)
        return f"webhook field 'ResponseID' is longer than {allowed} characters"
    return None


# -- serving the two routes -------------------------------------------------------------------


class EdgeFastPath:
    """ASGI middleware answering webhook and JSON-event deliveries with the handlers above,
    straight from the ASGI scope.

    A delivery needs none of what the app's routing does for its other routes (matching
    against every UI and API route, dependency solving, validation): skipping it more than
    halves the CPU a delivery costs, which is what bounds the edge's rate during a burst.
    The routes stay declared on :data:`router` for the OpenAPI document; their answers are
    the same either way.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = _fast_handler(scope) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except ApiError as exc:
            response = api_error_response(exc)
        await response(scope, receive, send)


def _fast_handler(scope: Scope) -> Callable[[Request], Awaitable[JSONResponse]] | None:
    if scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if path == JSON_EVENT_PATH:
        return lambda request: json_event(
            request, urlTokenId=request.query_params.get("urlTokenId")
        )
    if path.startswith(WEBHOOK_PREFIX):
        token = path[len(WEBHOOK_PREFIX) :]
        if token and "/" not in token:
            return lambda request: qualtrics_webhook(request, token)
    return None


def install(app: FastAPI) -> None:
    """Serve the webhook and JSON-event routes on ``app`` (documented, and fast)."""
    app.include_router(router)
    app.add_middleware(EdgeFastPath)


# -- running the engine inside the web app -----------------------------------------------------


def engine_lifespan(
    *, executor_id: str | None = None, worker: bool = True
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan (for :func:`qualflow.web.app.add_lifespan`) running the engine in the app.

    ``worker=True`` is the embedded default (web + worker in one process); ``False`` makes a
    web-only process that records events and queues runs for ``qualflow worker`` processes. An
    engine already running in the process (e.g. the demo's) is reused.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        existing = getattr(app.state, "qualflow_engine", None) or running_engine()
        if existing is not None:
            app.state.qualflow_engine = existing
            yield
            return
        store = app.state.store
        engine = engine_for(store.settings, store=store, executor_id=executor_id, worker=worker)
        # Started off the server's event loop, so runs get DBOS's own loop and thread instead
        # of competing with the HTTP edge for this one.
        await asyncio.to_thread(engine.start)
        app.state.qualflow_engine = engine
        try:
            yield
        finally:
            app.state.qualflow_engine = None
            await asyncio.to_thread(engine.stop)

    return lifespan
