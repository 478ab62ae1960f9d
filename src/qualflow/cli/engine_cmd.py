"""Engine commands: ``serve``, ``worker``, ``runs``, ``automations``.

``serve`` runs the web app with the engine inside (the embedded default) or web-only
(``--no-worker``, for scale-out with ``qualflow worker`` processes on PostgreSQL). The other
commands work on the database the settings point at, without a running server. Bad input ends
with a one-line ``error: …`` on stderr: exit code 2 for a bad option value (before the database is
opened), 1 for anything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qualflow.cli.common import (
    EXIT_USAGE,
    MAX_ID,
    fail,
    hub_store,
    load_settings,
    parse_statuses,
    print_listing,
    register_actions,
)

if TYPE_CHECKING:
    from qualflow.engine.automations import AutomationOut
    from qualflow.engine.runs import RunDetail
    from qualflow.engine.services import EngineServices

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)
runs_app = typer.Typer(
    no_args_is_help=True, help="Run history: list, show, replay, cancel, recover."
)
automations_app = typer.Typer(
    no_args_is_help=True, help="Automations: list, show, enable, disable."
)
app.add_typer(runs_app, name="runs")
app.add_typer(automations_app, name="automations")

_out = Console()

#: The help of 'runs ls --status'. It names qualflow.engine.run_filters.RUN_STATUSES as a literal
#: because importing any of qualflow.engine loads its package (and SQLAlchemy), which no help
#: page may (tests/test_cli_startup.py checks both that and that the two agree).
_RUNS_LS_STATUS_HELP = (
    "Only runs in this status (repeat or comma-separate for several): "
    "queued, running, succeeded, failed, cancelled, skipped. Default: all."
)

RunIdArgument = Annotated[str, typer.Argument(help="Run id (see 'runs ls').", show_default=False)]
AutomationIdArgument = Annotated[
    int,
    typer.Argument(
        min=1, max=MAX_ID, help="Automation id (see 'automations ls').", show_default=False
    ),
]


@contextmanager
def _services() -> Iterator[EngineServices]:
    """Engine services over the configured database (no engine is started)."""
    register_actions()
    from qualflow.connections.clients import client_factory
    from qualflow.engine.config import EngineConfig
    from qualflow.engine.services import EngineServices

    settings = load_settings()
    with hub_store(settings) as store:
        config = EngineConfig(
            database_url=settings.database_url,
            public_base_url=settings.public_base_url,
            worker=False,
        )
        yield EngineServices(
            config=config,
            sessionmaker=store.sessionmaker,
            client_factory=client_factory(store.sessionmaker),
        )


@contextmanager
def _engine_errors() -> Iterator[None]:
    from qualflow.engine.errors import EngineError

    try:
        yield
    except typer.Exit:
        raise
    except (EngineError, ValueError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        errors = getattr(exc, "errors", None)
        if errors:
            message += ": " + "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', []))}: {e['msg']}" for e in errors
            )
        fail(message)
    except Exception as exc:
        # Database or system-database trouble: one line, not a traceback.
        fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _executor_id(value: str | None, role: str) -> str:
    """The ``--executor-id`` given, or this host's stable one for ``role`` when none is given; a
    blank one (an unset shell variable?) is a usage error, not the default."""
    if value is None:
        return _stable_id(role)
    if not value.strip():
        fail("--executor-id is empty: give the worker's id (or leave the option out)", EXIT_USAGE)
    return value


def _json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


# -- serve / worker ---------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default QUALFLOW_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default QUALFLOW_PORT).")
    ] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Also execute runs in this process.")
    ] = True,
    executor_id: Annotated[
        str | None, typer.Option(help="Stable id of this process's engine (for recovery).")
    ] = None,
) -> None:
    """Serve the web app (UI, REST API, webhook edge) with the engine."""
    register_actions()
    import uvicorn

    from qualflow.gc_tuning import tune_for_long_running_process
    from qualflow.web.app import create_app

    executor = _executor_id(executor_id, "serve")
    settings = load_settings()
    # Opened once here so a key or database problem is one error line, not uvicorn's
    # "Application startup failed" traceback from the app's own opening of the store.
    with hub_store(settings):
        pass
    host = host or settings.host
    port = port if port is not None else settings.port
    _check_can_listen(host, port)
    app_ = create_app(
        settings,
        engine=settings.engine if worker else "web",
        executor_id=executor,
    )
    tune_for_long_running_process()
    uvicorn.run(app_, host=host, port=port)


def _check_can_listen(host: str, port: int) -> None:
    """Fail in one line when ``host:port`` cannot be listened on (before anything starts)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        fail(f"cannot listen on {host}: {getattr(exc, 'strerror', None) or exc}")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def _stable_id(role: str) -> str:
    import socket

    return f"{socket.gethostname()}-{role}"


@app.command()
def worker(
    executor_id: Annotated[
        str | None,
        typer.Option(
            help="Stable id of this worker: on restart it resumes its unfinished runs. Give each "
            "worker on a host its own (default: <hostname>-worker)."
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, max=1000, help="Runs executed at once by this worker (default 128)."),
    ] = None,
) -> None:
    """Execute queued runs until stopped (SIGTERM/Ctrl-C finish cleanly)."""
    register_actions()
    import threading

    from qualflow.engine.runtime import engine_for
    from qualflow.engine.worker import run_worker
    from qualflow.web.retention import prune_until_stopped

    name = _executor_id(executor_id, "worker")
    settings = load_settings()
    with hub_store(settings) as store:
        engine = engine_for(
            settings,
            store=store,
            executor_id=name,
            worker=True,
            edge=False,
            worker_concurrency=concurrency,
        )
        # Workers fill the response cache: they prune as web processes do, so workers alone
        # (while no web process runs) keep it from growing.
        stop = threading.Event()
        pruner = threading.Thread(
            target=prune_until_stopped,
            args=(settings, store.sessionmaker, stop),
            name="qualflow-prune",
            daemon=True,
        )
        pruner.start()
        try:
            run_worker(
                engine, stop=stop, ready=lambda: typer.echo(f"worker {name} ready", err=True)
            )
        finally:
            stop.set()
            pruner.join()


# -- runs ------------------------------------------------------------------------------------


@runs_app.command("ls")
def runs_ls(
    automation: Annotated[
        int | None, typer.Option(min=1, max=MAX_ID, help="Only this automation's runs.")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            help=_RUNS_LS_STATUS_HELP,
            show_default=False,
        ),
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="Created at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Created before (ISO 8601).")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=500, help="Show at most this many, the newest first.")
    ] = 20,
    offset: Annotated[
        int,
        typer.Option(
            min=0, max=MAX_ID, help="Skip this many of the newest first (paging, with --limit)."
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List runs, newest first."""
    from qualflow.engine.run_filters import check_run_filters

    # As 'incentives rewards ls --status' reads them: 'failed,cancelled', any case; checked with
    # the dates below, by the same check Runs.query makes, before the database is opened.
    given = parse_statuses(status, lambda statuses: statuses)
    try:
        filters = check_run_filters(given, since, until, as_options=True)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    from qualflow.engine.runs import Runs

    with _services() as services, _engine_errors():
        page = Runs(services).query(
            automation_id=automation,
            status=filters.statuses,
            since=filters.since,
            until=filters.until,
            limit=limit,
            offset=offset,
        )
    if as_json:
        _json(page.model_dump(mode="json"))
        return
    shown = f"{page.offset + 1}-{page.offset + len(page.items)}" if page.offset else len(page.items)
    table = Table(title=f"runs ({shown} of {page.total})")
    for column in ("run", "automation", "status", "trigger", "created", "duration", "error"):
        table.add_column(column)
    for run in page.items:
        table.add_row(
            run.id,
            f"{run.automation_id} v{run.automation_version}",
            run.status,
            run.trigger_summary,
            run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{run.duration_ms} ms" if run.duration_ms is not None else "",
            (run.error or "")[:60],
        )
    filtered = automation is not None or bool(given) or since is not None or until is not None
    if page.total and not page.items:
        empty = f"No runs past --offset {offset}: {page.total} match."
    elif filtered:
        empty = "No runs match these filters."
    else:
        empty = (
            "No runs yet: an enabled automation starts one each time its trigger fires "
            "(qualflow automations ls)."
        )
    print_listing(_out, table, empty)


@runs_app.command("show")
def runs_show(
    run_id: RunIdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a run with its steps."""
    from qualflow.engine.runs import Runs

    with _services() as services, _engine_errors():
        run = Runs(services).get(run_id)
    if as_json:
        _json(run.model_dump(mode="json"))
        return
    _print_run(run)


def _print_run(run: RunDetail) -> None:
    _out.print(
        f"[bold]{run.id}[/bold]  {run.status}  (automation {run.automation_id} "
        f"v{run.automation_version}, attempt {run.attempt})"
    )
    # Summaries and errors are data: "[...]" in them is not rich markup.
    _out.print(f"trigger: {run.trigger_summary}", markup=False)
    if run.error:
        _out.print(f"error: {run.error}", style="red", markup=False)
    table = Table()
    for column in ("#", "step", "action", "status", "attempts", "duration", "error / output"):
        table.add_column(column)
    for step in run.steps:
        detail = step.error or json.dumps(step.output, default=str)
        table.add_row(
            str(step.position),
            escape(step.key),
            step.action,
            step.status,
            str(step.attempts),
            f"{step.duration_ms} ms" if step.duration_ms is not None else "",
            escape(detail[:80]),
        )
    _out.print(table)


@runs_app.command("replay")
def runs_replay(run_id: RunIdArgument) -> None:
    """Run a failed or cancelled run again from the step that did not finish."""
    from qualflow.engine.control import Control
    from qualflow.engine.runs import Runs

    with _services() as services, _engine_errors(), Control(services.config) as control:
        run = Runs(services, control).replay(run_id, actor="cli")
    typer.echo(f"run {run.id} replaying (attempt {run.attempt})")


@runs_app.command("cancel")
def runs_cancel(run_id: RunIdArgument) -> None:
    """Cancel a queued or running run."""
    from qualflow.engine.control import Control
    from qualflow.engine.runs import Runs

    with _services() as services, _engine_errors(), Control(services.config) as control:
        run = Runs(services, control).cancel(run_id, actor="cli")
    typer.echo(f"run {run.id} {run.status}")


@runs_app.command("recover")
def runs_recover(
    executor_id: Annotated[
        str, typer.Option(help="The dead executor (worker) whose unfinished runs to hand over.")
    ],
) -> None:
    """Hand a dead worker's unfinished runs to the live workers.

    Only for an executor that is really gone: a live one would find its runs taken over.
    """
    from qualflow.engine.config import default_executor_id
    from qualflow.engine.control import Control

    if not executor_id.strip():
        fail("--executor-id is empty: give the id of the dead worker", EXIT_USAGE)
    if executor_id == default_executor_id():
        fail("refusing to recover this very process's executor id", EXIT_USAGE)
    from sqlalchemy.exc import OperationalError, ProgrammingError

    with _services() as services, _engine_errors(), Control(services.config) as control:
        try:
            pending = control.pending_of(executor_id)
        except (OperationalError, ProgrammingError) as exc:
            if "workflow_status" not in str(exc):
                raise
            # The engine creates its tables when it first starts: no run was ever executed.
            typer.echo(f"0 run(s) of {executor_id}: no run has been executed on this database")
            return
        for workflow_id in pending:
            control.resume(workflow_id)
    typer.echo(f"{len(pending)} run(s) of {executor_id} handed to the live workers")


# -- automations -----------------------------------------------------------------------------


@automations_app.command("ls")
def automations_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List automations."""
    from qualflow.engine.automations import Automations
    from qualflow.web.api.step_secrets import mask_automation

    with _services() as services, _engine_errors():
        # Step secrets are shown the way the API shows them: never even in sealed form.
        items = [mask_automation(a) for a in Automations(services).query(limit=500)]
    if as_json:
        _json([a.model_dump(mode="json") for a in items])
        return
    table = Table(title="automations")
    for column in ("id", "name", "trigger", "steps", "enabled", "version"):
        table.add_column(column)
    for a in items:
        table.add_row(
            str(a.id),
            escape(a.name),
            escape(_trigger_text(a)),
            ", ".join(s["action"] for s in a.steps),
            "yes" if a.enabled else "no",
            str(a.version),
        )
    print_listing(
        _out,
        table,
        "No automations yet: create one in the web UI (Automations → New automation) or with "
        "POST /api/v1/automations.",
    )


def _trigger_text(automation: AutomationOut) -> str:
    trigger = automation.trigger
    kind = str(trigger.get("type"))
    if kind == "survey_response":
        return f"responses to {trigger.get('survey_id')}"
    if kind == "schedule":
        return f"cron {trigger.get('cron')}"
    return "JSON events"


@automations_app.command("show")
def automations_show(
    automation_id: AutomationIdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show an automation's current definition."""
    from qualflow.engine.automations import Automations
    from qualflow.web.api.step_secrets import mask_automation

    with _services() as services, _engine_errors():
        automation = mask_automation(Automations(services).get(automation_id))
    if as_json:
        _json(automation.model_dump(mode="json"))
        return
    _out.print(
        f"[bold]{escape(automation.name)}[/bold] (#{automation.id}, version {automation.version}, "
        f"{'enabled' if automation.enabled else 'disabled'})"
    )
    _out.print(f"trigger: {_trigger_text(automation)}", markup=False)
    if automation.endpoint is not None:
        _out.print(f"inbound URL: {automation.endpoint.url}", markup=False)
    for position, step in enumerate(automation.steps):
        # Configs are data: "[...]" in them is not rich markup, and a line is never broken.
        config = json.dumps(step.get("config") or {}, ensure_ascii=False)
        _out.print(f"  {position}. {step['action']} {config}", markup=False, soft_wrap=True)


@automations_app.command("enable")
def automations_enable(automation_id: AutomationIdArgument) -> None:
    """Enable (creates the Qualtrics subscription or the schedule)."""
    from qualflow.engine.automations import Automations
    from qualflow.engine.control import Control

    with _services() as services, _engine_errors(), Control(services.config) as control:
        automation = Automations(services, control).set_enabled(automation_id, True)
    typer.echo(f"automation {automation.id} enabled")


@automations_app.command("disable")
def automations_disable(automation_id: AutomationIdArgument) -> None:
    """Disable (deletes the Qualtrics subscription or the schedule)."""
    from qualflow.engine.automations import Automations
    from qualflow.engine.control import Control

    with _services() as services, _engine_errors(), Control(services.config) as control:
        automation = Automations(services, control).set_enabled(automation_id, False)
    typer.echo(f"automation {automation.id} disabled")
