"""The run workflow: one DBOS workflow per run; each step's checkpoint is its history row.

DBOS makes the run durable: the workflow is recorded before it starts and resumed after a crash
(by the same worker on restart, or by another through ``runs recover``). The steps are
checkpointed in ``run_steps``, the table the run history is read from, so a step costs one
write instead of three (a DBOS step would add a read before and a write after it, for an
identical record). A resumed or replayed run reads its finished steps' rows once and continues
after them; the plan comes from an immutable automation version. An action failing is a
*result* of its step, written to its row, so a replay starts again at exactly that step. The
last step writes the run's outcome in the same transaction as its own row.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from dbos import DBOS
from sqlalchemy import (
    JSON,
    Connection,
    Executable,
    Integer,
    String,
    bindparam,
    insert,
    select,
    text,
)

from qualflow.engine.actions import ActionContext, get_action
from qualflow.engine.config import RUN_WORKFLOW
from qualflow.engine.definitions import StepSpec, step_keys
from qualflow.engine.errors import (
    ActionError,
    DefinitionError,
    FatalError,
    RetriableError,
    SkipStep,
    StopRun,
)
from qualflow.engine.models import Automation, AutomationVersion, Run, RunAttempt
from qualflow.engine.services import EngineServices, current_services
from qualflow.store.base import UTCDateTime, utcnow
from qualflow.store.redact import is_sensitive_key

log = logging.getLogger(__name__)

#: Keep stored step outputs and errors small enough to list quickly.
MAX_STORED_OUTPUT = 64 * 1024
MAX_ERROR = 4000

_OUTCOME = {"failed": "failed", "stopped": "skipped"}
#: Step statuses after which the run goes on to the next step (a resumed run reuses them).
_CONTINUING = ("succeeded", "skipped")
_FINAL = ("succeeded", "failed", "skipped", "cancelled")


@DBOS.workflow(name=RUN_WORKFLOW, max_recovery_attempts=50)
async def run_automation(
    run_id: str, automation_id: int, version: int, trigger: dict[str, Any]
) -> str:
    """Execute one run of an automation; returns its final status."""
    workflow_id = DBOS.workflow_id or run_id
    start = await asyncio.to_thread(_start, run_id, automation_id, version, trigger, workflow_id)
    if start.final is not None:
        return start.final
    if start.error is not None:
        await asyncio.to_thread(_finish, run_id, workflow_id, "failed", start.error)
        return "failed"
    steps = start.plan["steps"]
    if not steps:
        await asyncio.to_thread(_finish, run_id, workflow_id, "succeeded", None)
        return "succeeded"
    outputs: dict[str, Any] = {}
    status = "succeeded"
    for position, step in enumerate(steps):
        finished = start.finished.get(position)
        if finished is not None and finished[0] == step["key"]:
            # Done before a crash, or before the failure a replay starts after.
            outputs[step["key"]] = finished[1]
            continue
        try:
            result = await _execute_step(
                run_id, workflow_id, position, start.plan, step, trigger, outputs
            )
        except Exception as exc:
            # Not an action's verdict (those are results): the engine itself failed, e.g. the
            # database went away. Say so on the run rather than leave it "running".
            error = f"internal error in step {step['key']!r}: {type(exc).__name__}: {exc}"
            log.exception("run %s failed inside the engine", run_id)
            await asyncio.to_thread(_finish, run_id, workflow_id, "failed", error[:MAX_ERROR])
            return "failed"
        if result["status"] in _OUTCOME:
            status = _OUTCOME[result["status"]]
            break
        if result.get("halted"):
            # Cancelled (or handed to a replay) while the step ran: no later step starts.
            return "cancelled"
        outputs[step["key"]] = result.get("output")
    return status


# -- start ------------------------------------------------------------------------------------


def _plan(services: EngineServices, automation_id: int, version: int) -> dict[str, Any] | None:
    """The steps of one automation version (immutable, so cached per engine)."""
    key = (automation_id, version)
    cached = services.plans.get(key)
    if cached is not None:
        return cached
    with services.sessionmaker() as session:
        row = session.execute(
            select(Automation.name, AutomationVersion.definition)
            .join(AutomationVersion, AutomationVersion.automation_id == Automation.id)
            .where(Automation.id == automation_id, AutomationVersion.version == version)
        ).first()
    if row is None:
        return None
    name, definition = row
    specs = [StepSpec.model_validate(s) for s in definition.get("steps", [])]
    keys = step_keys(specs)
    plan = {
        "automation_id": automation_id,
        "automation_name": name,
        "connection_id": definition.get("connection_id"),
        "version": version,
        "steps": [
            {"key": step_key, "action": spec.action, "config": spec.config}
            for step_key, spec in zip(keys, specs, strict=True)
        ],
    }
    if len(services.plans) > 1000:
        services.plans.clear()
    services.plans[key] = plan
    return plan


@dataclass
class _Start:
    """What a run's workflow starts from."""

    plan: dict[str, Any] = field(default_factory=dict)
    #: Finished steps of an interrupted or replayed run: position → (key, output).
    finished: dict[int, tuple[str, Any]] = field(default_factory=dict)
    #: Set when this workflow already recorded the run's outcome (recovered after it).
    final: str | None = None
    error: str | None = None


def _start(
    run_id: str, automation_id: int, version: int, trigger: dict[str, Any], workflow_id: str
) -> _Start:
    """Mark the run running (idempotent) and return its plan and any finished steps."""
    services = current_services()
    plan = _plan(services, automation_id, version)
    if plan is None:
        return _Start(error=f"automation {automation_id} version {version} no longer exists")
    now = utcnow()
    with services.autocommit() as conn:
        updated = conn.execute(
            _MARK_RUNNING, {"run_id": run_id, "workflow_id": workflow_id, "now": now}
        ).rowcount
    if updated:
        # First start of a queued run: no step has run yet.
        return _Start(plan=plan)
    with services.connect() as conn:
        row = conn.execute(_RUN_OWNER, {"run_id": run_id}).first()
        if row is not None:
            status, owner = row
            if owner != workflow_id or status in _FINAL:
                # Recorded already by this workflow, or the run has moved on to a replay.
                return _Start(plan=plan, final=status if status in _FINAL else "cancelled")
            finished = {
                position: (key, output)
                for position, key, output in conn.execute(
                    _FINISHED_STEPS, {"run_id": run_id, "continuing": list(_CONTINUING)}
                )
            }
            return _Start(plan=plan, finished=finished)
        # Started without prepare_runs (e.g. directly): create its rows now.
        conn.execute(
            insert(Run).values(
                id=run_id,
                automation_id=automation_id,
                automation_version=version,
                trigger_type=str(trigger.get("type", "manual")),
                trigger_summary=str(trigger.get("summary", ""))[:500],
                trigger_payload=trigger,
                status="running",
                attempt=1,
                workflow_id=workflow_id,
                created_at=now,
                started_at=now,
            )
        )
        conn.execute(
            insert(RunAttempt).values(
                run_id=run_id,
                number=1,
                workflow_id=workflow_id,
                status="running",
                from_position=0,
                started_at=now,
            )
        )
    return _Start(plan=plan)


# -- steps ------------------------------------------------------------------------------------


def _retry_delay(services: EngineServices, attempt: int, error: RetriableError | None) -> float:
    if error is not None and error.retry_after is not None:
        return min(max(error.retry_after, 0.0), services.config.retry_max_delay)
    base = services.config.retry_initial_delay * (2 ** (attempt - 1))
    # Jitter spreads retries of many runs hitting the same outage.
    return float(min(base, services.config.retry_max_delay) * random.uniform(0.8, 1.2))


def classify(exc: BaseException) -> ActionError:
    """Map any exception raised by an action onto what the engine should do with it."""
    if isinstance(exc, ActionError):
        return exc
    retriable = getattr(exc, "retriable", None)
    if isinstance(retriable, bool):
        # Qualtrics client errors say themselves whether trying again can help.
        retry_after = getattr(exc, "retry_after", None)
        if retriable:
            return RetriableError(
                str(exc) or type(exc).__name__,
                retry_after=retry_after if isinstance(retry_after, int | float) else None,
            )
        return FatalError(str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.TransportError | TimeoutError | ConnectionError):
        return RetriableError(f"{type(exc).__name__}: {exc}")
    return FatalError(f"unexpected error {type(exc).__name__}: {exc}")


def _jsonable(value: Any) -> Any:
    """The output as stored and handed to later steps: JSON-compatible, size-bounded."""
    try:
        text = json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise FatalError(f"action output is not JSON-serialisable: {exc}") from None
    if len(text) > MAX_STORED_OUTPUT:
        raise FatalError(f"action output is larger than {MAX_STORED_OUTPUT} bytes")
    return json.loads(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_SECRET_NAME_WORDS = ("secret", "password", "token", "key", "auth")


def _secret_looking(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_NAME_WORDS) or is_sensitive_key(name)


def _input_summary(config: dict[str, Any]) -> dict[str, Any]:
    """The step's config as shown in history; secret-looking values are masked.

    Entries of a mapping (e.g. ``http.request``'s headers: ``Authorization``, ``Cookie``) are
    masked by the same rule as the config's own keys.
    """
    summary: dict[str, Any] = {}
    for key, value in config.items():
        if _secret_looking(key):
            summary[key] = "***"
        else:
            if isinstance(value, dict):
                value = {
                    name: "***" if _secret_looking(str(name)) else item
                    for name, item in value.items()
                }
            text = json.dumps(value, default=str)
            summary[key] = value if len(text) <= 500 else text[:497] + "..."
    return summary


def _validated(
    services: EngineServices, plan: dict[str, Any], position: int, step: dict[str, Any]
) -> tuple[Any, Any]:
    """The step's action and validated config (cached: an automation version is immutable)."""
    key = (int(plan["automation_id"]), int(plan.get("version", 0)), position)
    cached = services.step_configs.get(key)
    if cached is not None and cached[0] == step["action"]:
        return cached[1], cached[2]
    spec = get_action(step["action"])
    config = spec.validate_config(step["config"])
    if len(services.step_configs) > 5000:
        services.step_configs.clear()
    services.step_configs[key] = (step["action"], spec, config)
    return spec, config


async def _execute_step(
    run_id: str,
    workflow_id: str,
    position: int,
    plan: dict[str, Any],
    step: dict[str, Any],
    trigger: dict[str, Any],
    outputs: dict[str, Any],
) -> dict[str, Any]:
    services = current_services()
    started = utcnow()
    last = position == len(plan["steps"]) - 1
    record = _StepRecord(run_id, workflow_id, position, step, started)
    try:
        spec, config = _validated(services, plan, position, step)
    except DefinitionError as exc:
        problem = f"{exc.message}: {exc.errors}"
        await record.write("failed", None, problem, 0, outcome=("failed", problem))
        return {"status": "failed", "error": problem}
    attempt = 0
    output: Any = None
    error: str | None = None
    while True:
        attempt += 1
        ctx = ActionContext(
            run_id=run_id,
            automation_id=int(plan["automation_id"]),
            automation_name=str(plan.get("automation_name", "")),
            automation_version=int(plan.get("version", 0)),
            connection_id=plan.get("connection_id"),
            step_key=step["key"],
            position=position,
            attempt=attempt,
            trigger=trigger,
            outputs=dict(outputs),
            services=services,
        )
        try:
            output = _jsonable(await spec.func(ctx, config))
            status = "succeeded"
        except Exception as exc:
            outcome = classify(exc)
            error = outcome.reason[:MAX_ERROR]
            if isinstance(outcome, SkipStep):
                status = "skipped"
            elif isinstance(outcome, StopRun):
                status = "stopped"
            elif (
                isinstance(outcome, RetriableError) and attempt < services.config.step_max_attempts
            ):
                if await record.write("running", None, error, attempt):
                    return {"status": "running", "error": error, "halted": True}
                await asyncio.sleep(_retry_delay(services, attempt, outcome))
                continue
            else:
                status = "failed"
                if isinstance(outcome, RetriableError):
                    error = f"gave up after {attempt} attempts: {error}"
        break
    run_outcome: tuple[str, str | None] | None = None
    if status in _OUTCOME:
        run_outcome = (_OUTCOME[status], error)
    elif last:
        run_outcome = ("succeeded", None)
    halted = await record.write(
        status, output, error, attempt, outcome=run_outcome,
        writes=ctx.step_writes if status == "succeeded" else (),
    )  # fmt: skip
    return {"status": status, "output": output, "error": error, "halted": halted}


class _StepRecord:
    """Writes a step's history row (and, for the run's last step, the run's outcome)."""

    def __init__(
        self,
        run_id: str,
        workflow_id: str,
        position: int,
        step: dict[str, Any],
        started: datetime,
    ) -> None:
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.position = position
        self.step = step
        self.started = started

    async def write(
        self,
        status: str,
        output: Any,
        error: str | None,
        attempts: int,
        *,
        outcome: tuple[str, str | None] | None = None,
        writes: Sequence[tuple[Executable, dict[str, Any]]] = (),
    ) -> bool:
        """Write the row (with the action's ``writes``, in one transaction); True when the run
        was cancelled (or replayed) meanwhile."""
        return await asyncio.to_thread(
            self._write, status, output, error, attempts, outcome, writes
        )

    def _write(
        self,
        status: str,
        output: Any,
        error: str | None,
        attempts: int,
        outcome: tuple[str, str | None] | None,
        writes: Sequence[tuple[Executable, dict[str, Any]]],
    ) -> bool:
        services = current_services()
        params = {
            "run_id": self.run_id,
            "attempt_of": self.run_id,
            "position": self.position,
            "key": self.step["key"],
            "action": self.step["action"],
            "status": status,
            "input_summary": _input_summary(self.step.get("config") or {}),
            "output": output,
            "error": error,
            "attempts": attempts,
            "started_at": self.started,
            "finished_at": None if status == "running" else utcnow(),
        }
        # The row alone needs no transaction around it; with other writes it needs one.
        single = outcome is None and not writes
        with services.autocommit() if single else services.connect() as conn:
            for statement, values in writes:
                conn.execute(statement, values)
            if outcome is not None:
                conn.execute(_UPSERT_STEP, params)
                _write_outcome(conn, self.run_id, self.workflow_id, *outcome)
                return False
            # Cancelling a run marks its row; the workflow learns it here, before the next step
            # (the row's upsert returns the run's status and owner).
            row = conn.execute(_UPSERT_STEP_RETURNING_OWNER, params).first()
        return row is None or row[0] == "cancelled" or row[1] != self.workflow_id


# -- finish -----------------------------------------------------------------------------------


def _finish(run_id: str, workflow_id: str, status: str, error: str | None) -> None:
    services = current_services()
    with services.connect() as conn:
        _write_outcome(conn, run_id, workflow_id, status, error)


def _write_outcome(
    conn: Connection, run_id: str, workflow_id: str, status: str, error: str | None
) -> None:
    """Record the run's outcome (idempotent; a cancelled run stays cancelled)."""
    params = {
        "run_id": run_id,
        "workflow_id": workflow_id,
        "status": status,
        "error": error,
        "now": utcnow(),
    }
    conn.execute(_RUN_OUTCOME, params)
    conn.execute(_ATTEMPT_OUTCOME, params)


# The hot-path statements, written once (building SQLAlchemy expressions per call costs more
# CPU than the database work). Portable: SQLite and PostgreSQL both speak ON CONFLICT.
_TIME = UTCDateTime()

# Only a queued run becomes running: a recovered workflow whose last step already recorded the
# run's outcome replays that step from its checkpoint, so nothing would write the outcome again.
_MARK_RUNNING = text(
    "UPDATE runs SET status = 'running', started_at = :now "
    "WHERE id = :run_id AND workflow_id = :workflow_id AND status = 'queued'"
).bindparams(bindparam("now", type_=_TIME))

_UPSERT_STEP_SQL = (
    "INSERT INTO run_steps (run_id, position, key, action, status, run_attempt, input_summary,"
    " output, error, attempts, started_at, finished_at) "
    "VALUES (:run_id, :position, :key, :action, :status,"
    " (SELECT attempt FROM runs WHERE id = :attempt_of), :input_summary, :output, :error,"
    " :attempts, :started_at, :finished_at) "
    "ON CONFLICT (run_id, position) DO UPDATE SET key = excluded.key,"
    " action = excluded.action, status = excluded.status, run_attempt = excluded.run_attempt,"
    " input_summary = excluded.input_summary, output = excluded.output,"
    " error = excluded.error, attempts = excluded.attempts,"
    " started_at = excluded.started_at, finished_at = excluded.finished_at"
)
_STEP_PARAMS = (
    bindparam("input_summary", type_=JSON()),
    bindparam("output", type_=JSON(none_as_null=True)),
    bindparam("started_at", type_=_TIME),
    bindparam("finished_at", type_=_TIME),
)
_UPSERT_STEP = text(_UPSERT_STEP_SQL).bindparams(*_STEP_PARAMS)
#: The same upsert, answering with the run's status and owner (a round trip fewer than reading
#: them after it; SQLite and PostgreSQL both allow subqueries in RETURNING).
_UPSERT_STEP_RETURNING_OWNER = text(
    _UPSERT_STEP_SQL + " RETURNING (SELECT status FROM runs WHERE id = :attempt_of),"
    " (SELECT workflow_id FROM runs WHERE id = :attempt_of)"
).bindparams(*_STEP_PARAMS)

_RUN_OWNER = text("SELECT status, workflow_id FROM runs WHERE id = :run_id")

_FINISHED_STEPS = (
    text(
        "SELECT position, key, output FROM run_steps "
        "WHERE run_id = :run_id AND status IN :continuing"
    )
    .bindparams(bindparam("continuing", expanding=True))
    .columns(position=Integer(), key=String(), output=JSON(none_as_null=True))
)

_RUN_OUTCOME = text(
    "UPDATE runs SET status = :status, error = :error, finished_at = :now "
    "WHERE id = :run_id AND workflow_id = :workflow_id AND status <> 'cancelled'"
).bindparams(bindparam("now", type_=_TIME))

_ATTEMPT_OUTCOME = text(
    "UPDATE run_attempts SET status = :status, error = :error, finished_at = :now "
    "WHERE run_id = :run_id AND workflow_id = :workflow_id AND status <> 'cancelled'"
).bindparams(bindparam("now", type_=_TIME))
