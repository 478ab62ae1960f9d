"""REST: automations — CRUD (each edit a new version), enable/disable, versions, run now.

Step configs are validated against their action's model; every problem is reported at once
(422 with one ``details`` entry per field). The JSON-event API token is shown once, when the
automation is created or its token rotated; no other answer contains a secret. Secrets in step
configs are stored encrypted and shown as ``••••`` plus their last 4 characters; sending that
masked form back keeps the saved secret (see :mod:`qualflow.web.api.step_secrets`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field, WithJsonSchema
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from qualflow.accounts.dependencies import require
from qualflow.accounts.permissions import MANAGE, VIEW
from qualflow.accounts.principal import Principal
from qualflow.connections.service import visible_connections
from qualflow.engine.actions import registered_actions
from qualflow.engine.automations import (
    AutomationCreated,
    AutomationOut,
    Automations,
    VersionOut,
)
from qualflow.engine.config import EngineConfig
from qualflow.engine.definitions import AutomationDefinition
from qualflow.engine.documents import require_utf8
from qualflow.engine.errors import ConflictError, DefinitionError, EngineError, NotFoundError
from qualflow.engine.runtime import running_engine
from qualflow.engine.services import EngineServices
from qualflow.store.runtime import Store as StoreType
from qualflow.web.api.created import set_location
from qualflow.web.api.paging import DEFAULT_LIMIT, Limit, Page, page_of
from qualflow.web.api.step_secrets import (
    mask_automation,
    mask_version,
    seal_definition,
)
from qualflow.web.deps import (
    ApiError,
    DbSession,
    Offset,
    ResourceId,
    error_responses,
    get_store,
)

router = APIRouter(prefix="/automations", tags=["automations"])
actions_router = APIRouter(prefix="/actions", tags=["automations"])

Viewer = Annotated[Principal, Depends(require("automations", VIEW))]
Manager = Annotated[Principal, Depends(require("automations", MANAGE))]

_READ_ERRORS = error_responses(401, 403, 404)
_WRITE_ERRORS = error_responses(401, 403, 404, 409, 422)


def engine_services(request: Request) -> EngineServices:
    """The running engine's services, or (web-only process) services over the app's store."""
    engine = getattr(request.app.state, "qualflow_engine", None) or running_engine()
    if engine is not None:
        services: EngineServices = engine.services
        return services
    cached: EngineServices | None = getattr(request.app.state, "engine_api_services", None)
    if cached is None:
        store = get_store(request)
        config = EngineConfig(
            database_url=store.settings.database_url,
            public_base_url=store.settings.public_base_url,
            worker=False,
        )
        from qualflow.connections.clients import client_factory

        cached = EngineServices(
            config=config,
            sessionmaker=store.sessionmaker,
            client_factory=client_factory(store.sessionmaker),
        )
        request.app.state.engine_api_services = cached
    return cached


Services = Annotated[EngineServices, Depends(engine_services)]
Store = Annotated[StoreType, Depends(get_store)]


def check_connection(
    db: Session, principal: Principal, definition: Any, saved_connection_id: int | None = None
) -> None:
    """The definition's connection must exist and be one the caller may use (422 otherwise);
    an edit that keeps the automation's current connection is always allowed."""
    connection_id = definition.get("connection_id") if isinstance(definition, dict) else None
    if not isinstance(connection_id, int) or isinstance(connection_id, bool):
        return  # absent, or malformed: the definition's validation reports it
    if connection_id == saved_connection_id:
        return
    if connection_id not in {c.id for c in visible_connections(db, principal)}:
        message = f"no connection {connection_id} that you may use"
        raise ApiError(
            422,
            "validation_error",
            f"invalid automation definition: connection_id: {message}",
            details=[{"field": "connection_id", "message": message}],
        )


def api_error(exc: EngineError | ValueError) -> ApiError:
    """The API answer for an engine error."""
    if isinstance(exc, DefinitionError):
        details = [
            {"field": ".".join(str(p) for p in err.get("loc", [])), "message": err["msg"]}
            for err in exc.errors
        ]
        summary = "; ".join(
            f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in details
        )
        return ApiError(422, "validation_error", f"{exc.message}: {summary}", details=details)
    if isinstance(exc, NotFoundError):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, ConflictError):
        return ApiError(409, "conflict", str(exc))
    return ApiError(422, "validation_error", str(exc))


class RunStarted(BaseModel):
    run_id: str


class TokenRotated(BaseModel):
    api_token: str = Field(description="The new JSON-event token; shown this once.")


class ActionOut(BaseModel):
    name: str
    description: str
    config_schema: dict[str, Any]


@router.get(
    "",
    response_model=Page[AutomationOut],
    responses=error_responses(401, 403, 422),
    summary="List automations, by id",
)
def list_automations(
    services: Services,
    _principal: Viewer,
    enabled: bool | None = None,
    trigger_type: Annotated[
        str | None, Query(pattern="^(survey_response|json_event|schedule)$")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Page[AutomationOut]:
    """The automations by id (oldest first), optionally filtered by enabled state and trigger type,
    one page at a time (`limit`, `offset`); `total` counts every match. Secrets in step configs are
    masked."""
    service = Automations(services)
    automations = service.query(
        enabled=enabled, trigger_type=trigger_type, limit=limit, offset=offset
    )
    return page_of(
        [mask_automation(automation) for automation in automations],
        lambda: service.count(enabled=enabled, trigger_type=trigger_type),
        limit=limit,
        offset=offset,
    )


@router.post(
    "",
    response_model=AutomationCreated,
    status_code=status.HTTP_201_CREATED,
    responses=_WRITE_ERRORS,
    summary="Create an automation (disabled until enabled)",
)
def create_automation(
    request: Request,
    response: Response,
    services: Services,
    store: Store,
    db: DbSession,
    principal: Manager,
    definition: Annotated[
        dict[str, Any],
        # Validated by the engine (every problem at once), documented as what PUT takes.
        WithJsonSchema({"$ref": "#/components/schemas/AutomationDefinition"}),
        Body(
            openapi_examples={
                "nps-alert": {
                    "value": {
                        "name": "Detractor alert",
                        "connection_id": 1,
                        "trigger": {"type": "survey_response", "survey_id": "SV_1ZHgwYzcQXcUTHg"},
                        "steps": [
                            {"action": "qualtrics.get_response", "key": "response"},
                            {"action": "condition", "config": {"expression": "values.QID2 <= 6"}},
                            {
                                "action": "notify.email",
                                "config": {
                                    "to": ["cx@example.org"],
                                    "subject": "Detractor: {{ values.QID2 }}",
                                    "body": "{{ labels.QID3_TEXT }}",
                                },
                            },
                        ],
                    }
                },
            },
            description="An automation definition; see the AutomationDefinition schema.",
        ),
    ],
) -> AutomationCreated:
    """Save a new automation from its definition (see the AutomationDefinition schema); it stays
    disabled until enabled. Every problem of the definition is reported at once (422, one
    `details` entry per field). A JSON-event automation's API token is in this answer only."""
    check_connection(db, principal, definition)
    try:
        sealed = seal_definition(definition, store.secret_box)
        created = Automations(services).create(sealed, actor=principal.email)
    except (EngineError, ValueError) as exc:
        raise api_error(exc) from None
    set_location(request, response, get_automation, automation_id=created.id)
    return AutomationCreated.model_validate(
        {**mask_automation(created).model_dump(), "api_token": created.api_token}
    )


@router.get(
    "/{automation_id}",
    response_model=AutomationOut,
    responses=_READ_ERRORS,
    summary="Show an automation",
)
def get_automation(
    automation_id: ResourceId, services: Services, _principal: Viewer
) -> AutomationOut:
    """One automation: its current definition (secrets masked), state and version. 404 when it does
    not exist."""
    try:
        return mask_automation(Automations(services).get(automation_id))
    except EngineError as exc:
        raise api_error(exc) from None


@router.put(
    "/{automation_id}",
    response_model=AutomationOut,
    responses=_WRITE_ERRORS,
    summary="Edit an automation (saved as a new version)",
)
async def update_automation(
    automation_id: ResourceId,
    services: Services,
    store: Store,
    db: DbSession,
    principal: Manager,
    definition: AutomationDefinition,
) -> AutomationOut:
    """Replace the definition; the automation keeps its id and the edit is saved as a new version.
    Sending a masked secret back keeps the saved one. 422 lists every problem of the definition."""
    service = Automations(services)
    try:
        saved = await run_in_threadpool(service.get, automation_id)
    except (EngineError, ValueError) as exc:
        raise api_error(exc) from None
    submitted = definition.model_dump(mode="json")
    await run_in_threadpool(check_connection, db, principal, submitted, saved.connection_id)
    try:
        sealed = seal_definition(submitted, store.secret_box, saved.steps)
        updated = await service.update_async(automation_id, sealed, actor=principal.email)
    except (EngineError, ValueError) as exc:
        raise api_error(exc) from None
    return mask_automation(updated)


@router.delete(
    "/{automation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_WRITE_ERRORS,
    summary="Delete an automation and its run history",
)
async def delete_automation(
    automation_id: ResourceId, services: Services, _principal: Manager
) -> Response:
    """Delete the automation with its versions and run history. 409 when it cannot be deleted in its
    current state."""
    try:
        await Automations(services).delete_async(automation_id)
    except EngineError as exc:
        raise api_error(exc) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{automation_id}/enable",
    response_model=AutomationOut,
    responses=_WRITE_ERRORS,
    summary="Enable (creates the Qualtrics subscription or the schedule)",
)
async def enable_automation(
    automation_id: ResourceId, services: Services, _principal: Manager
) -> AutomationOut:
    """Start the automation: a survey-response trigger creates its Qualtrics subscription, a
    schedule is registered. Answers the automation; 409 when it cannot be enabled in its current
    state."""
    try:
        return mask_automation(await Automations(services).set_enabled_async(automation_id, True))
    except EngineError as exc:
        raise api_error(exc) from None


@router.post(
    "/{automation_id}/disable",
    response_model=AutomationOut,
    responses=_WRITE_ERRORS,
    summary="Disable (deletes the Qualtrics subscription or the schedule)",
)
async def disable_automation(
    automation_id: ResourceId, services: Services, _principal: Manager
) -> AutomationOut:
    """Stop the automation: its Qualtrics subscription or schedule is removed. Answers the
    automation."""
    try:
        return mask_automation(await Automations(services).set_enabled_async(automation_id, False))
    except EngineError as exc:
        raise api_error(exc) from None


@router.get(
    "/{automation_id}/versions",
    response_model=Page[VersionOut],
    responses=error_responses(401, 403, 404, 422),
    summary="Every saved version, newest first",
)
def automation_versions(
    automation_id: ResourceId,
    services: Services,
    _principal: Viewer,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Page[VersionOut]:
    """Every saved definition of the automation, newest first, with who saved it and when (secrets
    masked), one page at a time (`limit`, `offset`); `total` counts every version. 404 when the
    automation does not exist."""
    service = Automations(services)
    try:
        versions = service.versions(automation_id, limit=limit, offset=offset)
    except EngineError as exc:
        raise api_error(exc) from None
    return page_of(
        [mask_version(v) for v in versions],
        lambda: service.count_versions(automation_id),
        limit=limit,
        offset=offset,
    )


@router.post(
    "/{automation_id}/rotate-token",
    response_model=TokenRotated,
    responses=_WRITE_ERRORS,
    summary="Issue a new JSON-event API token",
)
def rotate_token(
    automation_id: ResourceId, services: Services, _principal: Manager
) -> TokenRotated:
    """Issue a new API token for a JSON-event automation. The new token is in this answer only; the
    old one stops working."""
    try:
        return TokenRotated(api_token=Automations(services).rotate_token(automation_id))
    except EngineError as exc:
        raise api_error(exc) from None


@router.post(
    "/{automation_id}/runs",
    response_model=RunStarted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_WRITE_ERRORS, **error_responses(503)},
    summary="Start a run now, with optional trigger data",
)
def run_now(
    automation_id: ResourceId,
    services: Services,
    principal: Manager,
    data: Annotated[dict[str, Any] | None, Body()] = None,
) -> RunStarted:
    """Queue a run of the automation now with the given trigger data (any JSON object, or none) and
    answer its id; follow it with GET /runs/{run_id}. 503 when no engine runs in this process."""
    if running_engine() is None:
        raise ApiError(503, "unavailable", "the engine is not running in this process")
    try:
        require_utf8(data)
    except ValueError as exc:
        message = f"trigger data: {exc}"
        raise ApiError(
            422, "validation_error", message, details=[{"field": "body", "message": str(exc)}]
        ) from None
    try:
        return RunStarted(
            run_id=Automations(services).run_now(automation_id, data, actor=principal.email)
        )
    except EngineError as exc:
        raise api_error(exc) from None


@actions_router.get(
    "",
    response_model=list[ActionOut],
    responses=error_responses(401, 403),
    summary="The actions steps can use, with their config schemas",
)
def list_actions(_principal: Viewer) -> list[ActionOut]:
    """Every action a step can use, with its description and the JSON schema of its config."""
    return [
        ActionOut(name=a.name, description=a.description, config_schema=a.config_schema())
        for a in registered_actions()
    ]
