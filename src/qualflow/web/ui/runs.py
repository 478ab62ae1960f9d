"""Run history pages: the filtered list (live), one run with its steps, replay and cancel."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.principal import Principal
from qualflow.engine.errors import ConflictError, NotFoundError
from qualflow.engine.models import RUN_STATUSES, Automation
from qualflow.engine.runs import CANCELLABLE, REPLAYABLE, RunDetail, RunPage
from qualflow.store.base import utcnow
from qualflow.web.deps import get_db, get_store
from qualflow.web.ui import flash
from qualflow.web.ui.access import UiNotFound, ensure, ui_require
from qualflow.web.ui.csrf import check_csrf
from qualflow.web.ui.engine_access import runs_service
from qualflow.web.ui.numbers import page_number, whole_number
from qualflow.web.ui.rendering import render, render_fragment

router = APIRouter()

Db = Annotated[Session, Depends(get_db)]
RunsViewer = Annotated[Principal, Depends(ui_require(Area.RUNS, Level.VIEW))]

PAGE_SIZE = 25
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
#: How often a live view looks for changes, and how long one stream lasts before the browser
#: reconnects (bounded so servers can shut down and proxies never hold a stream forever).
LIVE_INTERVAL = 1.0
LIVE_MAX_SECONDS = 300.0


class RunFilters:
    """The list's query string, parsed leniently: an unknown value means "no filter"."""

    def __init__(
        self,
        automation: str | None = None,
        status: str | None = None,
        window: str | None = None,
        page: str | None = None,
    ) -> None:
        self.automation_id = whole_number(automation)
        self.status = status if status in RUN_STATUSES else None
        self.window = window if window in WINDOWS else None
        self.page = page_number(page, PAGE_SIZE)

    def query(self, **overrides: Any) -> str:
        values = {
            "automation": self.automation_id,
            "status": self.status,
            "window": self.window,
            "page": self.page if self.page > 1 else None,
            **overrides,
        }
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    @property
    def active(self) -> bool:
        return any((self.automation_id, self.status, self.window))


def _automation_names(db: Session) -> dict[int, str]:
    query = select(Automation.id, Automation.name).order_by(Automation.name)
    return {id_: name for id_, name in db.execute(query)}


def _load_page(request: Request, filters: RunFilters) -> RunPage:
    since = utcnow() - WINDOWS[filters.window] if filters.window else None
    return runs_service(request).query(
        automation_id=filters.automation_id,
        status=filters.status,
        since=since,
        limit=PAGE_SIZE,
        offset=(filters.page - 1) * PAGE_SIZE,
    )


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


async def live_events(
    request: Request,
    event: str,
    snapshot: Callable[[], tuple[str, str]],
    *,
    stop_when: Callable[[], bool] = lambda: False,
) -> AsyncIterator[ServerSentEvent]:
    """Send ``event`` with fresh HTML whenever ``snapshot()``'s fingerprint changes.

    ``snapshot`` runs in a worker thread (it queries the database) and returns
    ``(fingerprint, html)``; the first snapshot is sent at once. When
    ``stop_when()`` holds, a ``done`` event tells the page to close the stream (``sse-close``).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIVE_MAX_SECONDS
    # The state may have moved between rendering the page and connecting: start with it.
    seen, html = await run_in_threadpool(snapshot)
    yield ServerSentEvent(raw_data=html, event=event, retry=2000)
    while not stop_when():
        if loop.time() >= deadline or await request.is_disconnected():
            return
        await asyncio.sleep(LIVE_INTERVAL)
        fingerprint, html = await run_in_threadpool(snapshot)
        if fingerprint != seen:
            seen = fingerprint
            yield ServerSentEvent(raw_data=html, event=event)
    yield ServerSentEvent(raw_data="", event="done")


# -- list --------------------------------------------------------------------------------------


def _list_context(request: Request, db: Session, filters: RunFilters) -> dict[str, Any]:
    page = _load_page(request, filters)
    last_page = max((page.total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    if filters.page > last_page:
        # An old link past the end (runs purged since): the last page, not "no runs yet".
        filters.page = last_page
        page = _load_page(request, filters)
    names = _automation_names(db)
    return {
        "page": page,
        "filters": filters,
        "names": names,
        "statuses": RUN_STATUSES,
        "windows": {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days"},
        "last_page": last_page,
    }


@router.get("/runs", name="ui_runs")
def runs_page(
    request: Request,
    principal: RunsViewer,
    db: Db,
    automation: str | None = None,
    status: str | None = None,
    window: str | None = None,
    page: str | None = None,
) -> Response:
    filters = RunFilters(automation, status, window, page)
    context = _list_context(request, db, filters)
    return render(request, "runs/list.html", principal=principal, nav="runs", **context)


@router.get("/runs/live", name="ui_runs_live", response_class=EventSourceResponse)
async def runs_live(
    request: Request,
    principal: RunsViewer,
    automation: str | None = None,
    status: str | None = None,
    window: str | None = None,
    page: str | None = None,
) -> AsyncIterator[ServerSentEvent]:
    filters = RunFilters(automation, status, window, page)

    def snapshot() -> tuple[str, str]:
        with get_store(request).sessionmaker() as db:
            context = _list_context(request, db, filters)
            html = render_fragment(request, "runs/_rows.html", principal=principal, **context)
        rows = [(r.id, r.status, r.attempt) for r in context["page"].items]
        return _fingerprint(rows, context["page"].total), bytes(html.body).decode()

    async for item in live_events(request, "runs", snapshot):
        yield item


# -- one run ----------------------------------------------------------------------------------


def _load_run(request: Request, run_id: str) -> RunDetail:
    try:
        return runs_service(request).get(run_id)
    except NotFoundError:
        raise UiNotFound(f"Run {run_id}", request.url_for("ui_runs").path, "Back to runs") from None


def _detail_context(request: Request, db: Session, run: RunDetail) -> dict[str, Any]:
    return {
        "run": run,
        "automation_name": db.scalar(
            select(Automation.name).where(Automation.id == run.automation_id)
        ),
        "replayable": run.status in REPLAYABLE,
        "cancellable": run.status in CANCELLABLE,
    }


@router.get("/runs/{run_id:path}/live", name="ui_run_live", response_class=EventSourceResponse)
async def run_live(
    request: Request, principal: RunsViewer, run_id: str
) -> AsyncIterator[ServerSentEvent]:
    await run_in_threadpool(_load_run, request, run_id)
    finished = False

    def snapshot() -> tuple[str, str]:
        nonlocal finished
        run = _load_run(request, run_id)
        finished = run.status not in CANCELLABLE
        steps = [(s.position, s.status, s.attempts, s.run_attempt) for s in run.steps]
        with get_store(request).sessionmaker() as db:
            context = _detail_context(request, db, run)
        html = render_fragment(request, "runs/_detail_body.html", principal=principal, **context)
        return _fingerprint(run.status, run.attempt, steps), bytes(html.body).decode()

    async for item in live_events(request, "run", snapshot, stop_when=lambda: finished):
        yield item


@router.get("/runs/{run_id:path}", name="ui_run")
def run_page(request: Request, principal: RunsViewer, db: Db, run_id: str) -> Response:
    run = _load_run(request, run_id)
    context = _detail_context(request, db, run)
    return render(request, "runs/detail.html", principal=principal, nav="runs", **context)


def _run_command(
    request: Request, principal: Principal, run_id: str, verb: str, command: Callable[[], Any]
) -> Response:
    ensure(principal, Area.RUNS, Level.MANAGE, f"{verb} runs")
    _load_run(request, run_id)
    target = request.url_for("ui_run", run_id=run_id).path
    response = RedirectResponse(target, status_code=303)
    try:
        command()
    except ConflictError as exc:
        flash.add(request, response, "error", f"Could not {verb} the run: {exc}")
    else:
        past = {"replay": "Replay started", "cancel": "Run cancelled"}[verb]
        flash.add(request, response, "success", f"{past}.")
    return response


@router.post("/runs/{run_id:path}/replay", name="ui_run_replay", dependencies=[Depends(check_csrf)])
def replay_run(request: Request, principal: RunsViewer, run_id: str) -> Response:
    service = runs_service(request)
    return _run_command(
        request, principal, run_id, "replay", lambda: service.replay(run_id, actor=principal.email)
    )


@router.post("/runs/{run_id:path}/cancel", name="ui_run_cancel", dependencies=[Depends(check_csrf)])
def cancel_run(request: Request, principal: RunsViewer, run_id: str) -> Response:
    service = runs_service(request)
    return _run_command(
        request, principal, run_id, "cancel", lambda: service.cancel(run_id, actor=principal.email)
    )
