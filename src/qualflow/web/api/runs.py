"""REST: run history — list and filter, show one with its steps, replay, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from qualflow.accounts.dependencies import require
from qualflow.accounts.permissions import MANAGE, VIEW
from qualflow.accounts.principal import Principal
from qualflow.engine.errors import EngineError
from qualflow.engine.run_filters import RunFilterError
from qualflow.engine.runs import RunDetail, RunPage, Runs
from qualflow.web.api.automations import Services, api_error
from qualflow.web.api.paging import DEFAULT_LIMIT, Limit, parameter_error
from qualflow.web.deps import MAX_ID, Offset, error_responses

router = APIRouter(prefix="/runs", tags=["runs"])

Viewer = Annotated[Principal, Depends(require("runs", VIEW))]
Manager = Annotated[Principal, Depends(require("runs", MANAGE))]


@router.get(
    "",
    response_model=RunPage,
    responses=error_responses(401, 403, 422),
    summary="List runs, newest first",
)
def list_runs(
    services: Services,
    _principal: Viewer,
    automation_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status: Annotated[
        list[str] | None,
        Query(
            description="One or more of: queued, running, succeeded, failed, cancelled, skipped."
        ),
    ] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601).")] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> RunPage:
    """Runs, newest first, optionally filtered by automation, status and creation time, one page at
    a time (`limit`, `offset`); `total` counts every match."""
    try:
        return Runs(services).query(
            automation_id=automation_id,
            status=status,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    except RunFilterError as exc:
        # The query refuses an unknown status, or an until not after since.
        raise parameter_error(exc.field, str(exc)) from None
    except EngineError as exc:
        raise api_error(exc) from None


@router.get(
    "/{run_id}",
    response_model=RunDetail,
    responses=error_responses(401, 403, 404),
    summary="A run with its steps (inputs, outputs, errors, attempts, timings)",
)
def get_run(run_id: str, services: Services, _principal: Viewer) -> RunDetail:
    """One run with its trigger data and each step's inputs, outputs, errors, attempts and timings
    (secrets masked). 404 when it does not exist."""
    try:
        return Runs(services).get(run_id)
    except EngineError as exc:
        raise api_error(exc) from None


@router.post(
    "/{run_id}/replay",
    response_model=RunDetail,
    responses=error_responses(401, 403, 404, 409),
    summary="Run a failed or cancelled run again from the step that did not finish",
)
def replay_run(run_id: str, services: Services, principal: Manager) -> RunDetail:
    """Queue a failed or cancelled run again from the step that did not finish, and answer it. 409
    when the run is not failed or cancelled."""
    try:
        return Runs(services).replay(run_id, actor=principal.email)
    except EngineError as exc:
        raise api_error(exc) from None


@router.post(
    "/{run_id}/cancel",
    response_model=RunDetail,
    responses=error_responses(401, 403, 404, 409),
    summary="Cancel a queued or running run",
)
def cancel_run(run_id: str, services: Services, principal: Manager) -> RunDetail:
    """Cancel a queued or running run and answer it. 409 when the run has already ended."""
    try:
        return Runs(services).cancel(run_id, actor=principal.email)
    except EngineError as exc:
        raise api_error(exc) from None
