"""Event subscriptions (``/API/v3/eventsubscriptions``) and inbound JSON events (workflows)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from qualflow.sandbox import errors
from qualflow.sandbox.errors import ApiError, bad_request, ok, ok_meta
from qualflow.sandbox.http import Routes, caller, json_body, json_object, offset_page, state_of
from qualflow.sandbox.state import User

router = Routes()  # under /API/v3
inbound_router = APIRouter()

_TOPIC_ROOTS = ("surveyengine.", "controlpanel.", "threesixty.", "*")


def _brand_admin(request: Request) -> User:
    """The caller, who must be a brand administrator: subscriptions are brand-wide."""
    user = caller(request)
    if not user.is_brand_admin:
        raise ApiError(
            403,
            errors.FORBIDDEN,
            "Event subscriptions can only be managed by a brand administrator.",
        )
    return user


@router.post("/eventsubscriptions")
async def create_subscription(request: Request) -> JSONResponse:
    state = state_of(request)
    owner = _brand_admin(request)
    body = await json_object(request)
    unknown = sorted(set(body) - {"topics", "publicationUrl", "encrypt", "sharedKey",
                                  "successEmailAddresses"})  # fmt: skip
    if unknown:
        raise bad_request(f"Invalid request: unknown field(s) {', '.join(unknown)}.")
    topics = body.get("topics")
    if not isinstance(topics, str) or not topics.strip():
        raise errors.invalid_param(
            "topics", "expected a topic string such as surveyengine.completedResponse.SV_…"
        )
    for topic in (t.strip() for t in topics.split(",")):
        bare = topic.split(".", 1)[1] if topic.startswith(f"{state.config.brand_id}.") else topic
        if not bare.startswith(_TOPIC_ROOTS):
            raise errors.invalid_param("topics", f"unknown topic {topic!r}")
    url = body.get("publicationUrl")
    if not isinstance(url, str):
        raise errors.invalid_param("publicationUrl", "expected an absolute http(s) URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise errors.invalid_param("publicationUrl", "expected an absolute http(s) URL")
    encrypt = body.get("encrypt", False)
    if not isinstance(encrypt, bool):
        raise errors.invalid_param("encrypt", "expected a boolean")
    if encrypt:
        raise bad_request(
            "encrypt=true is not supported by the sandbox (the payload encryption scheme is not "
            "documented); use sharedKey to have deliveries signed with HMAC-SHA512."
        )
    shared_key = body.get("sharedKey")
    if shared_key is not None and (not isinstance(shared_key, str) or not shared_key):
        raise errors.invalid_param("sharedKey", "expected a non-empty string")
    sub = state.add_subscription(
        topics=topics.strip(),
        publication_url=url,
        shared_key=shared_key,
        owner_id=owner.id,
    )
    return ok({"id": sub.id})


@router.get("/eventsubscriptions")
async def list_subscriptions(request: Request) -> JSONResponse:
    _brand_admin(request)
    state = state_of(request)
    with state.lock:
        items = [s.to_api() for s in state.subscriptions.values()]
    return ok(offset_page(request, items, state.config.page_size))


@router.get("/eventsubscriptions/{subscription_id}")
async def get_subscription(request: Request, subscription_id: str) -> JSONResponse:
    _brand_admin(request)
    state = state_of(request)
    with state.lock:
        return ok(state.get_subscription(subscription_id).to_api())


@router.delete("/eventsubscriptions/{subscription_id}")
async def delete_subscription(request: Request, subscription_id: str) -> JSONResponse:
    _brand_admin(request)
    state_of(request).delete_subscription(subscription_id)
    return ok_meta()


@inbound_router.post("/inbound-event/v1/events/json/triggers")
async def inbound_json_event(request: Request) -> JSONResponse:
    """A workflow JSON-event trigger: record the body, answer 202 with the envelope."""
    token_id = request.query_params.get("urlTokenId")
    if not token_id:
        raise errors.invalid_param("urlTokenId", "the trigger URL's urlTokenId is required")
    return await _record_json_event(request, token_id)


@inbound_router.post("/inbound-event/v1/events/JSON/triggers")
async def older_inbound_json_event(request: Request) -> JSONResponse:
    """The older trigger URL form (``?contextId=&userId=&brandId=&triggerId=``); the event is
    recorded under its ``triggerId``."""
    trigger_id = request.query_params.get("triggerId")
    if not trigger_id:
        raise errors.invalid_param("triggerId", "the trigger URL's triggerId is required")
    return await _record_json_event(request, trigger_id)


async def _record_json_event(request: Request, token_id: str) -> JSONResponse:
    state = state_of(request)
    content_type = request.headers.get("content-type", "")
    if not content_type.split(";")[0].strip().lower().endswith("json"):
        raise bad_request("Invalid request: JSON events must be sent as application/json.")
    body = await json_body(request)
    user = caller(request)
    state.record_inbound_event(token_id, user.id, body)
    return JSONResponse(errors.envelope(with_result=False, status=202), status_code=202)
