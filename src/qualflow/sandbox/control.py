"""``/_sandbox/…``: the sandbox's own control API (not part of Qualtrics; no auth).

Seed data, simulate respondents, inject faults, inspect webhook deliveries and received JSON
events, create users, reset.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from qualflow.sandbox import errors
from qualflow.sandbox.delivery import WebhookDispatcher
from qualflow.sandbox.errors import bad_request, not_found
from qualflow.sandbox.faults import FaultRule
from qualflow.sandbox.http import json_object, state_of
from qualflow.sandbox.tango_state import TangoState

router = APIRouter(prefix="/_sandbox")


def _dispatcher(request: Request) -> WebhookDispatcher:
    dispatcher: WebhookDispatcher = request.app.state.dispatcher
    return dispatcher


def _int(body: dict[str, Any], name: str, default: int, lo: int = 0, hi: int = 10_000_000) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise errors.invalid_param(name, f"expected an integer from {lo} to {hi}")
    return value


@router.get("/info")
async def info(request: Request) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        result = {
            "brandId": state.config.brand_id,
            "datacenter": state.config.datacenter,
            "users": len(state.users),
            "surveys": len(state.surveys),
            "responses": sum(len(r) for r in state.responses.values()),
            "subscriptions": len(state.subscriptions),
            "inboundEvents": len(state.inbound_events),
            "stateFile": str(state.path) if state.path else None,
        }
    return errors.ok(result)


@router.post("/users")
async def create_user(request: Request) -> JSONResponse:
    """Create a user with an API token (sandbox test helper; the token is returned once)."""
    state = state_of(request)
    body = await json_object(request)
    username = body.get("username")
    if not isinstance(username, str) or not username:
        raise errors.invalid_param("username", "expected a non-empty string")
    user, token = state.create_user(
        username,
        first_name=str(body.get("firstName", "Sandbox")),
        last_name=str(body.get("lastName", "User")),
        email=body.get("email") if isinstance(body.get("email"), str) else None,
    )
    return errors.ok({"userId": user.id, "username": user.username, "apiToken": token})


@router.post("/oauth-clients")
async def create_oauth_client(request: Request) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request, required=False)
    user_id = body.get("userId")
    if user_id is not None and not isinstance(user_id, str):
        raise errors.invalid_param("userId", "expected a user id")
    scopes = body.get("scopes")
    if scopes is not None and (
        not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)
    ):
        raise errors.invalid_param("scopes", "expected an array of strings")
    client_id, secret = state.add_oauth_client(user_id, scopes=scopes)
    return errors.ok({"clientId": client_id, "clientSecret": secret})


@router.post("/seed")
async def seed(request: Request) -> JSONResponse:
    """``{"builtin": true, "surveys": N, "responses": M, "seed": S, "ownerId": "UR_…"}`` →
    created ids. The surveys belong to ``ownerId`` (default: the first user with a token): a
    user sees only its own and shared surveys."""
    from qualflow.sandbox import respondents
    from qualflow.sandbox import seed as seeds

    state = state_of(request)
    body = await json_object(request, required=False)
    builtin = body.get("builtin", True)
    if not isinstance(builtin, bool):
        raise errors.invalid_param("builtin", "expected a boolean")
    count = _int(body, "surveys", 0, hi=10_000)
    per_survey = _int(body, "responses", 0, hi=1_000_000)
    rng_seed = _int(body, "seed", 0, hi=2**31)
    owner_id = body.get("ownerId")
    if owner_id is not None and (not isinstance(owner_id, str) or owner_id not in state.users):
        raise errors.invalid_param("ownerId", f"no sandbox user {owner_id!r}")
    before = set(state.surveys)
    # Seeding again reuses the owner's built-in surveys already there instead of adding copies.
    made = seeds.seed_builtin(state, owner_id=owner_id, reuse_existing=True) if builtin else []
    made += seeds.seed_generated(state, count, seed=rng_seed, owner_id=owner_id)
    total = 0
    if per_survey:
        for i, survey in enumerate(made):
            sim = respondents.Simulator(state, survey.id, seed=rng_seed + i)
            total += len(sim.run(per_survey))
    created = [s.id for s in made if s.id not in before]
    return errors.ok({"surveyIds": [s.id for s in made], "created": created, "responses": total})


@router.post("/surveys/{survey_id}/filters")
async def add_filter(request: Request, survey_id: str) -> JSONResponse:
    """Save a response filter: ``{"filterName", "conditions": [{"field", "operator", "value"}]}``
    (operators: eq, ne, in, notIn, gt, gte, lt, lte, exists, missing; all conditions must hold).
    Answers ``{"filterId"}``, for an export's ``filterId``."""
    state = state_of(request)
    body = await json_object(request)
    return errors.ok({"filterId": state.add_filter(survey_id, body).filter_id})


@router.post("/respond")
async def respond(request: Request) -> JSONResponse:
    """Simulate respondents: ``{"surveyId", "count", "seed"?, "abandonRate"?, ...}``."""
    from qualflow.sandbox import respondents

    state = state_of(request)
    body = await json_object(request)
    survey_id = body.get("surveyId")
    if not isinstance(survey_id, str) or not survey_id:
        raise errors.invalid_param("surveyId", "expected a survey id")
    count = _int(body, "count", 1, lo=1, hi=1_000_000)
    profile = respondents.Profile.from_json(body)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise errors.invalid_param("seed", "expected an integer")
    distribution_id = body.get("distributionId")
    if distribution_id is not None and not isinstance(distribution_id, str):
        raise errors.invalid_param("distributionId", "expected a distribution id")
    with state.lock:
        if distribution_id is not None:
            state.directory.distribution(distribution_id)
    sim = respondents.Simulator(
        state, survey_id, seed=seed, profile=profile, distribution_id=distribution_id
    )
    made = sim.run(count)
    return errors.ok(
        {
            "responseIds": [r.id for r in made],
            "completed": sum(1 for r in made if r.finished),
            "partial": sum(1 for r in made if not r.finished),
        }
    )


@router.get("/faults")
async def list_faults(request: Request) -> JSONResponse:
    return errors.ok(state_of(request).faults.to_json())


@router.post("/faults")
async def add_fault(request: Request) -> JSONResponse:
    """Add a rule: ``{"path": "/API/v3/surveys*", "status": 429, "rate": 1, "count": 2}``."""
    body = await json_object(request)
    rule = state_of(request).faults.add(FaultRule.from_json(body))
    return errors.ok(rule.to_json())


@router.delete("/faults/{rule_id}")
async def delete_fault(request: Request, rule_id: int) -> JSONResponse:
    if not state_of(request).faults.remove(rule_id):
        raise not_found(f"Fault rule {rule_id} not found.")
    return errors.ok_meta()


@router.delete("/faults")
async def clear_faults(request: Request) -> JSONResponse:
    state = state_of(request)
    state.faults.clear()
    with state.lock:
        state.fail_next_exports.clear()
    tango: TangoState | None = getattr(request.app.state, "tango", None)
    if tango is not None:  # None: no Tango call yet, so nothing injected there either
        tango.clear_injected()
    return errors.ok_meta()


@router.put("/faults/rate-limit")
async def set_rate_limit(request: Request) -> JSONResponse:
    """``{"perMinute": 3000}`` switches the brand limit on; ``{"perMinute": null}`` off."""
    body = await json_object(request)
    per_minute = body.get("perMinute")
    if per_minute is not None and (isinstance(per_minute, bool) or not isinstance(per_minute, int)):
        raise errors.invalid_param("perMinute", "expected an integer or null")
    state_of(request).faults.set_rate_limit(per_minute)
    return errors.ok({"perMinute": per_minute})


@router.post("/faults/exports")
async def fail_exports(request: Request) -> JSONResponse:
    """``{"surveyId": "SV_…" | null, "count": 1}``: the next exports end with status failed."""
    body = await json_object(request, required=False)
    survey_id = body.get("surveyId")
    if survey_id is not None and not isinstance(survey_id, str):
        raise errors.invalid_param("surveyId", "expected a survey id or null")
    count = _int(body, "count", 1, lo=1, hi=1000)
    state = state_of(request)
    if survey_id is not None and survey_id not in state.surveys:
        raise errors.invalid_param("surveyId", f"no survey {survey_id!r} in this sandbox")
    state.fail_exports(survey_id, count)
    return errors.ok_meta()


@router.get("/deliveries")
async def deliveries(request: Request) -> JSONResponse:
    q = request.query_params
    status = q.get("status")
    if status not in (None, "pending", "delivered", "failed", "cancelled"):
        raise errors.invalid_param("status", "expected pending, delivered, failed or cancelled")
    items = _dispatcher(request).list(subscription_id=q.get("subscriptionId"), status=status)
    return errors.ok({"elements": [d.to_json() for d in items], "nextPage": None})


@router.post("/deliveries/flush")
async def flush_deliveries(request: Request) -> JSONResponse:
    """Wait (up to ``timeout`` s, default 30) until no delivery is pending."""
    raw = request.query_params.get("timeout", "30")
    try:
        timeout = float(raw)
    except ValueError:
        raise errors.invalid_param("timeout", "expected seconds") from None
    done = await _dispatcher(request).drain(timeout)
    return errors.ok({"idle": done, "pending": _dispatcher(request).pending})


@router.get("/json-events")
async def json_events(request: Request) -> JSONResponse:
    state = state_of(request)
    token = request.query_params.get("urlTokenId")
    with state.lock:
        items = [e for e in state.inbound_events if token is None or e["urlTokenId"] == token]
    return errors.ok({"elements": items, "nextPage": None})


@router.delete("/json-events")
async def clear_json_events(request: Request) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        state.inbound_events.clear()
    state.mark_dirty()
    return errors.ok_meta()


@router.patch("/config")
async def patch_config(request: Request) -> JSONResponse:
    """Change behaviour knobs, e.g. ``{"export_duration": 2, "response_unavailable_reads": 2}``."""
    state = state_of(request)
    body = await json_object(request)
    fields = state.config.__dataclass_fields__
    for key, value in body.items():
        if key not in fields or key in ("brand_id",):
            raise bad_request(f"Invalid config field {key!r}.")
        if key == "proxy_notice_host":
            if value is not None and (not isinstance(value, str) or not value):
                raise errors.invalid_param(key, "expected a host name or null")
            state.config.proxy_notice_host = value
            continue
        current = getattr(state.config, key)
        if isinstance(value, bool) or not isinstance(value, type(current) | int):
            raise errors.invalid_param(key, f"expected {type(current).__name__}")
        setattr(state.config, key, type(current)(value))
    return errors.ok(dict(vars(state.config)))


@router.get("/config")
async def get_config(request: Request) -> JSONResponse:
    return errors.ok(dict(vars(state_of(request).config)))


@router.post("/reset")
async def reset(request: Request) -> JSONResponse:
    """Forget all data but keep the users and their tokens (so clients stay signed in)."""
    state = state_of(request)
    with state.lock:
        users, tokens = dict(state.users), dict(state.tokens)
        clients = dict(state.oauth_clients)
        state.reset()
        state.users.update(users)
        state.tokens.update(tokens)
        state.oauth_clients.update(clients)
    state.faults.clear()
    return errors.ok_meta()
