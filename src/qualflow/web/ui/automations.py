"""Automation pages: list, detail (trigger, steps, recent runs, versions), editor, commands."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session, aliased
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.principal import Principal
from qualflow.connections.errors import ConnectionsError
from qualflow.connections.models import Connection
from qualflow.connections.service import visible_connections as connections_visible_to
from qualflow.connections.surveys import AvailableSurvey, list_surveys
from qualflow.engine.actions import get_action
from qualflow.engine.automations import AutomationOut, Automations
from qualflow.engine.errors import ConflictError, DefinitionError, NotFoundError
from qualflow.engine.models import Automation, Run
from qualflow.web.api.step_secrets import seal_definition
from qualflow.web.deps import get_db, get_store
from qualflow.web.ui import flash
from qualflow.web.ui.access import UiNotFound, ensure, ui_require
from qualflow.web.ui.automation_form import (
    TRIGGER_TYPES,
    EditorState,
    blank_step,
    definition_json,
    errors_from_definition_error,
    parse_editor_form,
    redact_definition,
    saved_position,
    state_from_definition,
    step_config_errors,
    without_model_prefix,
)
from qualflow.web.ui.csrf import check_csrf
from qualflow.web.ui.engine_access import automations_service, runs_service
from qualflow.web.ui.numbers import page_number
from qualflow.web.ui.rendering import render, render_fragment
from qualflow.web.ui.suggestions import suggestions_for

router = APIRouter()

Db = Annotated[Session, Depends(get_db)]
Viewer = Annotated[Principal, Depends(ui_require(Area.AUTOMATIONS, Level.VIEW))]
Manager = Annotated[Principal, Depends(ui_require(Area.AUTOMATIONS, Level.MANAGE))]
CsrfChecked = Depends(check_csrf)

PAGE_SIZE = 50
#: The steps a new automation starts with: the common "fetch, filter, tell someone" shape.
STARTER_STEPS = ("qualtrics.get_response", "notify.email")


def visible_connections(db: Session, principal: Principal) -> list[Connection]:
    """Connections this person may use (the connections package decides who sees what)."""
    return list(connections_visible_to(db, principal))


def _load(request: Request, automation_id: int) -> AutomationOut:
    try:
        return automations_service(request).get(automation_id)
    except NotFoundError:
        back = request.url_for("ui_automations").path
        raise UiNotFound(f"Automation {automation_id}", back, "Back to automations") from None


def trigger_summary(trigger: dict[str, Any]) -> str:
    kind = trigger.get("type")
    if kind == "survey_response":
        partial = " (incl. partial)" if trigger.get("include_partial") else ""
        return f"Response to {trigger.get('survey_id')}{partial}"
    if kind == "json_event":
        return "JSON event posted to its inbound URL"
    if kind == "schedule":
        tz = f" ({trigger['timezone']})" if trigger.get("timezone") else ""
        return f"Cron {trigger.get('cron')}{tz}"
    return str(kind)


# -- list -------------------------------------------------------------------------------------


@router.get("/automations", name="ui_automations")
def automations_page(
    request: Request, principal: Viewer, db: Db, page: str | None = None
) -> Response:
    total = db.scalar(select(func.count()).select_from(Automation)) or 0
    last_page = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    number = min(page_number(page, PAGE_SIZE), last_page)
    items = automations_service(request).query(limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    connections = {c.id: c.name for c in visible_connections(db, principal)}
    last_runs: dict[int, Row[*tuple[Any, ...]]] = {}
    counts: dict[int, int] = {}
    if items:
        ids = [a.id for a in items]
        # Each automation's newest run: one step down its (automation, created) index, instead
        # of reading every run of the page's automations for their newest time and then
        # joining back on it.
        newest = aliased(Run)
        newest_id = (
            select(newest.id)
            .where(newest.automation_id == Automation.id)
            .order_by(newest.created_at.desc(), newest.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        for run in db.execute(
            select(Run.automation_id, Run.id, Run.status, Run.created_at).where(
                Run.id.in_(select(newest_id).where(Automation.id.in_(ids)))
            )
        ):
            last_runs[run.automation_id] = run
        per_automation = (
            select(Run.automation_id, func.count())
            .where(Run.automation_id.in_(ids))
            .group_by(Run.automation_id)
        )
        counts = {automation_id: count for automation_id, count in db.execute(per_automation)}
    return render(
        request,
        "automations/list.html",
        principal=principal,
        nav="automations",
        automations=items,
        connections=connections,
        last_runs=last_runs,
        run_counts=counts,
        trigger_summary=trigger_summary,
        total=total,
        page=number,
        last_page=last_page,
    )


# -- editor -----------------------------------------------------------------------------------


def _editor(
    request: Request,
    principal: Principal,
    db: Session,
    state: EditorState,
    *,
    automation: AutomationOut | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "automations/edit.html",
        principal=principal,
        nav="automations",
        state=state,
        automation=automation,
        errors=errors or {},
        connections=visible_connections(db, principal),
        trigger_types=TRIGGER_TYPES,
        suggestions=suggestions_for(request, principal),
        status_code=status_code,
    )


def _json_editor(
    request: Request,
    principal: Principal,
    *,
    text: str,
    automation: AutomationOut | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "automations/edit_json.html",
        principal=principal,
        nav="automations",
        text=text,
        automation=automation,
        problems=errors or [],
        status_code=status_code,
    )


def _form_fields(form: FormData) -> tuple[dict[str, str], list[str]]:
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "step"}
    uids = [v for v in form.getlist("step") if isinstance(v, str)]
    return fields, uids


def _check_connection(db: Session, principal: Principal, definition: dict[str, Any]) -> str | None:
    connection_id = definition.get("connection_id")
    if connection_id is None:
        return None
    if connection_id not in {c.id for c in visible_connections(db, principal)}:
        return "Choose one of your connections."
    return None


@router.get("/automations/new", name="ui_automation_new")
def new_automation(request: Request, principal: Manager, db: Db, mode: str = "form") -> Response:
    state = EditorState(steps=[blank_step(action) for action in STARTER_STEPS])
    connections = visible_connections(db, principal)
    if connections:
        state.connection_id = str(connections[0].id)
    if mode == "json":
        skeleton = {
            "name": "",
            "description": "",
            "connection_id": connections[0].id if connections else None,
            "trigger": {"type": "survey_response", "survey_id": "SV_…"},
            "steps": [{"action": "qualtrics.get_response", "config": {}}],
        }
        return _json_editor(request, principal, text=definition_json(skeleton))
    return _editor(request, principal, db, state)


@router.get("/automations/_step", name="ui_automation_step")
def step_fragment(
    request: Request, principal: Manager, action: str, uid: str | None = None
) -> Response:
    """One step's editor (a new step, or an existing one after its action changed)."""
    step = blank_step(action)
    if uid and uid.isalnum():
        step.uid = uid
    return render_fragment(
        request,
        "automations/_step.html",
        principal=principal,
        step=step,
        errors={},
        actions=EditorState().actions,
    )


@router.get("/automations/_surveys", name="ui_automation_surveys")
async def survey_options(
    request: Request, principal: Manager, db: Db, connection_id: str = ""
) -> Response:
    """``<option>``s of the surveys the chosen connection sees (the survey ID field's list)."""
    connection = next(
        (c for c in visible_connections(db, principal) if str(c.id) == connection_id), None
    )
    surveys: list[AvailableSurvey] = []
    problem = None
    if connection is not None:
        try:
            surveys = await list_surveys(connection)
        except ConnectionsError as exc:
            problem = exc.message
    return render_fragment(
        request,
        "automations/_survey_options.html",
        principal=principal,
        surveys=surveys,
        problem=problem,
        connection=connection,
    )


def _saved_configs(
    fields: dict[str, str], uids: list[str], automation: AutomationOut
) -> dict[str, dict[str, Any]]:
    """Each submitted step's saved config (its secrets are kept when left empty), by uid.

    A step the edit page loaded from the saved version keeps its own, wherever it was moved.
    A form that was not rendered by the edit page (a script posting its own uids) is matched
    by position, as the steps stand.
    """
    positions: dict[str, int | None] = {uid: saved_position(uid) for uid in uids}
    if all(position is None for position in positions.values()):
        positions = {uid: position for position, uid in enumerate(uids)}
    saved: dict[str, dict[str, Any]] = {}
    for uid, position in positions.items():
        if position is None or position >= len(automation.steps):
            continue
        step = automation.steps[position]
        if step.get("action") == fields.get(f"step-{uid}-action"):
            saved[uid] = dict(step.get("config") or {})
    return saved


def _save(
    request: Request,
    principal: Principal,
    db: Session,
    form: FormData,
    automation: AutomationOut | None,
) -> Response:
    fields, uids = _form_fields(form)
    saved: dict[str, dict[str, Any]] = {}
    if automation is not None:
        saved = _saved_configs(fields, uids, automation)
    definition, state, errors = parse_editor_form(fields, uids, saved)
    problem = _check_connection(db, principal, definition)
    if problem:
        errors["connection_id"] = problem
    if not uids:
        errors["steps"] = "Add at least one step."
    service = automations_service(request)
    box = get_store(request).secret_box
    if not errors:
        try:
            definition = seal_definition(
                definition, box, automation.steps if automation is not None else None
            )
            if automation is None:
                created = service.create(definition, actor=principal.email)
                return _after_create(request, principal, db, created.id, created.api_token)
            service.update(automation.id, definition, actor=principal.email)
        except DefinitionError as exc:
            errors = errors_from_definition_error(exc, state)
            for name, message in step_config_errors(state, definition).items():
                errors.setdefault(name, message)
        else:
            target = request.url_for("ui_automation", automation_id=automation.id).path
            response = RedirectResponse(target, status_code=303)
            flash.add(request, response, "success", "Automation saved.")
            return response
    return _editor(
        request, principal, db, state, automation=automation, errors=errors, status_code=400
    )


def _after_create(
    request: Request, principal: Principal, db: Session, automation_id: int, token: str | None
) -> Response:
    if token:
        # The JSON-event token is shown exactly once, so render instead of redirecting.
        return _detail(request, principal, db, automation_id, new_token=token, status_code=201)
    target = request.url_for("ui_automation", automation_id=automation_id).path
    response = RedirectResponse(target, status_code=303)
    flash.add(
        request, response, "success", "Automation created. It is disabled until you enable it."
    )
    return response


@router.post("/automations/new", name="ui_automation_create", dependencies=[CsrfChecked])
async def create_automation(request: Request, principal: Manager, db: Db) -> Response:
    form = await request.form()
    # The engine's calls are blocking (database, DBOS): keep them off the event loop.
    return await run_in_threadpool(_save, request, principal, db, form, None)


def _save_json(
    request: Request, principal: Principal, db: Session, text: str, automation: AutomationOut | None
) -> Response:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        return _json_editor(
            request, principal, text=text, automation=automation, errors=[problem], status_code=400
        )
    problems: list[str] = []
    if isinstance(data, dict):
        connection_problem = _check_connection(db, principal, data)
        if connection_problem:
            problems.append(f"connection_id: {connection_problem}")
    if not problems:
        service = automations_service(request)
        try:
            if isinstance(data, dict):
                # Masked secrets left as they were keep the saved ones.
                data = seal_definition(
                    data,
                    get_store(request).secret_box,
                    automation.steps if automation is not None else None,
                )
            if automation is None:
                created = service.create(data, actor=principal.email)
                return _after_create(request, principal, db, created.id, created.api_token)
            service.update(automation.id, data, actor=principal.email)
        except DefinitionError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e.get('loc', [])) or 'definition'}: "
                f"{without_model_prefix(str(e.get('msg') or 'invalid value'))}"
                for e in exc.errors
            ]
        else:
            target = request.url_for("ui_automation", automation_id=automation.id).path
            response = RedirectResponse(target, status_code=303)
            flash.add(request, response, "success", "Automation saved.")
            return response
    return _json_editor(
        request, principal, text=text, automation=automation, errors=problems, status_code=400
    )


@router.post("/automations/new.json", name="ui_automation_create_json", dependencies=[CsrfChecked])
async def create_automation_json(request: Request, principal: Manager, db: Db) -> Response:
    form = await request.form()
    text = form.get("definition")
    definition = text if isinstance(text, str) else ""
    return await run_in_threadpool(_save_json, request, principal, db, definition, None)


# -- one automation ---------------------------------------------------------------------------


def _detail(
    request: Request,
    principal: Principal,
    db: Session,
    automation_id: int,
    *,
    new_token: str | None = None,
    status_code: int = 200,
) -> Response:
    automation = _load(request, automation_id)
    versions = automations_service(request).versions(automation_id)
    runs = runs_service(request).query(automation_id=automation_id, limit=10)
    # A connection this person may not see is named by its id only (the page says so).
    connection = next(
        (c for c in visible_connections(db, principal) if c.id == automation.connection_id), None
    )
    steps = []
    for position, step in enumerate(redact_definition({"steps": automation.steps})["steps"]):
        try:
            description = get_action(step["action"]).description
        except DefinitionError:
            description = "This action is not available in this installation."
        steps.append({"position": position, **step, "description": description})
    return render(
        request,
        "automations/detail.html",
        principal=principal,
        nav="automations",
        automation=automation,
        steps=steps,
        versions=versions,
        runs=runs,
        connection=connection,
        trigger_summary=trigger_summary(automation.trigger),
        trigger_types=TRIGGER_TYPES,
        new_token=new_token,
        status_code=status_code,
    )


@router.get("/automations/{automation_id}", name="ui_automation")
def automation_page(request: Request, principal: Viewer, db: Db, automation_id: int) -> Response:
    return _detail(request, principal, db, automation_id)


@router.get("/automations/{automation_id}/edit", name="ui_automation_edit")
def edit_automation(
    request: Request, principal: Manager, db: Db, automation_id: int, mode: str = "form"
) -> Response:
    automation = _load(request, automation_id)
    definition = _definition_of(automation)
    if mode == "json":
        text = definition_json(redact_definition(definition))
        return _json_editor(request, principal, text=text, automation=automation)
    # Masked like every other page: a header credential is a JSON field the form shows as text.
    state = state_from_definition(redact_definition(definition))
    return _editor(request, principal, db, state, automation=automation)


def _definition_of(automation: AutomationOut) -> dict[str, Any]:
    return {
        "name": automation.name,
        "description": automation.description,
        "connection_id": automation.connection_id,
        "trigger": automation.trigger,
        "steps": automation.steps,
    }


@router.post(
    "/automations/{automation_id}/edit", name="ui_automation_update", dependencies=[CsrfChecked]
)
async def update_automation(
    request: Request, principal: Manager, db: Db, automation_id: int
) -> Response:
    automation = await run_in_threadpool(_load, request, automation_id)
    form = await request.form()
    return await run_in_threadpool(_save, request, principal, db, form, automation)


@router.post(
    "/automations/{automation_id}/edit.json",
    name="ui_automation_update_json",
    dependencies=[CsrfChecked],
)
async def update_automation_json(
    request: Request, principal: Manager, db: Db, automation_id: int
) -> Response:
    automation = await run_in_threadpool(_load, request, automation_id)
    form = await request.form()
    text = form.get("definition")
    definition = text if isinstance(text, str) else ""
    return await run_in_threadpool(_save_json, request, principal, db, definition, automation)


def _command(
    request: Request,
    principal: Principal,
    automation_id: int,
    done: str,
    command: Any,
    *,
    redirect_to: str | None = None,
) -> Response:
    _load(request, automation_id)
    target = redirect_to or request.url_for("ui_automation", automation_id=automation_id).path
    response = RedirectResponse(target, status_code=303)
    try:
        result = command(automations_service(request))
    except (ConflictError, DefinitionError) as exc:
        flash.add(request, response, "error", str(exc))
    else:
        flash.add(request, response, "success", done.format(result=result))
    return response


@router.post(
    "/automations/{automation_id}/enable", name="ui_automation_enable", dependencies=[CsrfChecked]
)
def enable_automation(request: Request, principal: Manager, automation_id: int) -> Response:
    return _command(
        request,
        principal,
        automation_id,
        "Automation enabled: its trigger is live.",
        lambda s: s.set_enabled(automation_id, True),
        redirect_to=_back(request),
    )


@router.post(
    "/automations/{automation_id}/disable", name="ui_automation_disable", dependencies=[CsrfChecked]
)
def disable_automation(request: Request, principal: Manager, automation_id: int) -> Response:
    return _command(
        request,
        principal,
        automation_id,
        "Automation disabled: its trigger no longer starts runs.",
        lambda s: s.set_enabled(automation_id, False),
        redirect_to=_back(request),
    )


def _back(request: Request) -> str | None:
    """Return to the list (the same page of it) when the button was pressed there."""
    referer = urlsplit(request.headers.get("referer", ""))
    listing = request.url_for("ui_automations").path
    if referer.path != listing:
        return None
    return f"{listing}?{referer.query}" if referer.query else listing


@router.post(
    "/automations/{automation_id}/run", name="ui_automation_run", dependencies=[CsrfChecked]
)
def run_automation_now(request: Request, principal: Viewer, automation_id: int) -> Response:
    ensure(principal, Area.RUNS, Level.MANAGE, "start runs")
    _load(request, automation_id)
    run_id = automations_service(request).run_now(automation_id, actor=principal.email)
    response = RedirectResponse(request.url_for("ui_run", run_id=run_id).path, status_code=303)
    flash.add(request, response, "success", "Run started.")
    return response


@router.post(
    "/automations/{automation_id}/rotate-token",
    name="ui_automation_rotate_token",
    dependencies=[CsrfChecked],
)
def rotate_token(request: Request, principal: Manager, db: Db, automation_id: int) -> Response:
    _load(request, automation_id)
    try:
        token = automations_service(request).rotate_token(automation_id)
    except ConflictError as exc:
        response = RedirectResponse(
            request.url_for("ui_automation", automation_id=automation_id).path, status_code=303
        )
        flash.add(request, response, "error", str(exc))
        return response
    return _detail(request, principal, db, automation_id, new_token=token)


@router.post(
    "/automations/{automation_id}/delete", name="ui_automation_delete", dependencies=[CsrfChecked]
)
def delete_automation(request: Request, principal: Manager, automation_id: int) -> Response:
    automation = _load(request, automation_id)
    service: Automations = automations_service(request)
    try:
        service.delete(automation_id)
    except ConflictError as exc:
        target = request.url_for("ui_automation", automation_id=automation_id).path
        response = RedirectResponse(target, status_code=303)
        flash.add(request, response, "error", f"Could not delete: {exc}")
        return response
    response = RedirectResponse(request.url_for("ui_automations").path, status_code=303)
    flash.add(request, response, "success", f"Automation “{automation.name}” deleted.")
    return response


@router.get("/automations/{automation_id}/versions/{version}", name="ui_automation_version")
def automation_version(
    request: Request, principal: Viewer, automation_id: int, version: int
) -> Response:
    automation = _load(request, automation_id)
    versions = automations_service(request).versions(automation_id)
    chosen = next((v for v in versions if v.version == version), None)
    if chosen is None:
        back = request.url_for("ui_automation", automation_id=automation_id).path
        raise UiNotFound(f"Version {version} of “{automation.name}”", back, "Back to automation")
    return render(
        request,
        "automations/version.html",
        principal=principal,
        nav="automations",
        automation=automation,
        version=chosen,
        versions=versions,
        definition=redact_definition(chosen.definition),
    )
