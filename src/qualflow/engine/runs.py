"""Run history: list and filter runs, show one with its steps, replay a failed run, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Row, func, select, update

from qualflow.engine.control import Control
from qualflow.engine.errors import ConflictError, NotFoundError
from qualflow.engine.models import Run, RunAttempt, RunStep
from qualflow.engine.run_filters import check_run_filters
from qualflow.engine.services import EngineServices
from qualflow.store.base import utcnow
from qualflow.store.db import session_scope
from qualflow.store.paging import Page, page_of

REPLAYABLE = ("failed", "cancelled")
CANCELLABLE = ("queued", "running")


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


class RunOut(BaseModel):
    id: str
    automation_id: int
    automation_version: int
    trigger_type: str
    trigger_summary: str
    status: str = Field(description="queued, running, succeeded, failed, cancelled or skipped")
    error: str | None
    attempt: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None

    @classmethod
    def of(cls, run: Run | Row[*tuple[Any, ...]]) -> RunOut:
        """From a run, or a row of :data:`LISTED` (what a list selects of each run)."""
        return cls(
            id=run.id,
            automation_id=run.automation_id,
            automation_version=run.automation_version,
            trigger_type=run.trigger_type,
            trigger_summary=run.trigger_summary,
            status=run.status,
            error=run.error,
            attempt=run.attempt,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_ms=_ms(run.started_at, run.finished_at),
        )


#: The columns a list shows of each run: not its trigger payload (a JSON document per run).
LISTED = (
    Run.id,
    Run.automation_id,
    Run.automation_version,
    Run.trigger_type,
    Run.trigger_summary,
    Run.status,
    Run.error,
    Run.attempt,
    Run.created_at,
    Run.started_at,
    Run.finished_at,
)


class StepOut(BaseModel):
    position: int
    key: str
    action: str
    status: str = Field(description="running, succeeded, failed, skipped or stopped")
    input: dict[str, Any] | None
    output: Any
    error: str | None
    attempts: int
    run_attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class AttemptOut(BaseModel):
    number: int
    status: str
    error: str | None
    from_position: int
    requested_by: str | None
    started_at: datetime
    finished_at: datetime | None


class RunDetail(RunOut):
    trigger: dict[str, Any]
    steps: list[StepOut]
    attempts: list[AttemptOut]


#: One page of runs, newest first.
RunPage = Page[RunOut]


class Runs:
    """Queries and commands over run history."""

    def __init__(self, services: EngineServices, control: Control | None = None) -> None:
        self.services = services
        self.control = control or Control(services.config)

    def query(
        self,
        *,
        automation_id: int | None = None,
        status: str | list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> RunPage:
        """Newest first. ``status`` may be one status or several."""
        filters = check_run_filters(status, since, until)
        statuses, since, until = filters.statuses, filters.since, filters.until
        conditions: list[Any] = []
        if automation_id is not None:
            conditions.append(Run.automation_id == automation_id)
        if statuses:
            conditions.append(Run.status.in_(statuses))
        if since is not None:
            conditions.append(Run.created_at >= since)
        if until is not None:
            conditions.append(Run.created_at < until)
        with self.services.sessionmaker() as session:
            rows = session.execute(
                select(*LISTED)
                .where(*conditions)
                .order_by(Run.created_at.desc(), Run.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            return page_of(
                [RunOut.of(r) for r in rows],
                lambda: (
                    session.scalar(select(func.count()).select_from(Run).where(*conditions)) or 0
                ),
                limit=limit,
                offset=offset,
            )

    def get(self, run_id: str) -> RunDetail:
        with self.services.sessionmaker() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id!r} does not exist")
            steps = session.scalars(
                select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.position)
            )
            attempts = session.scalars(
                select(RunAttempt).where(RunAttempt.run_id == run_id).order_by(RunAttempt.number)
            )
            return RunDetail(
                **RunOut.of(run).model_dump(),
                trigger=run.trigger_payload,
                steps=[
                    StepOut(
                        position=s.position,
                        key=s.key,
                        action=s.action,
                        status=s.status,
                        input=s.input_summary,
                        output=s.output,
                        error=s.error,
                        attempts=s.attempts,
                        run_attempt=s.run_attempt,
                        started_at=s.started_at,
                        finished_at=s.finished_at,
                        duration_ms=_ms(s.started_at, s.finished_at),
                    )
                    for s in steps
                ],
                attempts=[
                    AttemptOut(
                        number=a.number,
                        status=a.status,
                        error=a.error,
                        from_position=a.from_position,
                        requested_by=a.requested_by,
                        started_at=a.started_at,
                        finished_at=a.finished_at,
                    )
                    for a in attempts
                ],
            )

    def replay(self, run_id: str, *, actor: str | None = None) -> RunDetail:
        """Run a failed (or cancelled) run again from the step that did not finish.

        Steps that finished are not repeated (the new attempt continues after their rows);
        the failed attempt stays in the run's history.
        """
        with self.services.sessionmaker() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id!r} does not exist")
            if run.status not in REPLAYABLE:
                raise ConflictError(
                    f"run {run_id!r} is {run.status}; only failed or cancelled runs can be replayed"
                )
            failed = session.scalar(
                select(RunStep)
                .where(RunStep.run_id == run_id, RunStep.status.in_(("failed", "running")))
                .order_by(RunStep.position)
                .limit(1)
            )
            attempt = run.attempt
            automation_id, version = run.automation_id, run.automation_version
            trigger = dict(run.trigger_payload or {})
            finished = len(
                session.scalars(
                    select(RunStep.position).where(
                        RunStep.run_id == run_id, RunStep.status.in_(("succeeded", "skipped"))
                    )
                ).all()
            )
        # The run goes on from its first unfinished step: the failed one, or (for a run
        # cancelled between steps) the one after the last that finished.
        position = failed.position if failed is not None else finished
        new_workflow = f"{run_id}#{attempt + 1}"
        with session_scope(self.services.sessionmaker) as session:
            claimed = session.execute(
                update(Run)
                .where(Run.id == run_id, Run.attempt == attempt, Run.status.in_(REPLAYABLE))
                .values(
                    status="running",
                    error=None,
                    finished_at=None,
                    attempt=attempt + 1,
                    workflow_id=new_workflow,
                )
            ).rowcount  # type: ignore[attr-defined]
            if not claimed:
                raise ConflictError(f"run {run_id!r} changed meanwhile; try again")
            session.add(
                RunAttempt(
                    run_id=run_id,
                    number=attempt + 1,
                    workflow_id=new_workflow,
                    status="running",
                    from_position=position,
                    requested_by=actor,
                    started_at=utcnow(),
                )
            )
        self.control.enqueue_run(new_workflow, run_id, automation_id, version, trigger)
        return self.get(run_id)

    def cancel(self, run_id: str, *, actor: str | None = None) -> RunDetail:
        """Stop a queued or running run; a step in progress finishes, no later step starts."""
        with self.services.sessionmaker() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id!r} does not exist")
            if run.status not in CANCELLABLE:
                raise ConflictError(
                    f"run {run_id!r} is {run.status}; it can no longer be cancelled"
                )
            workflow_id = run.workflow_id
        self.control.cancel(workflow_id)
        reason = f"cancelled by {actor}" if actor else "cancelled"
        now = utcnow()
        with session_scope(self.services.sessionmaker) as session:
            session.execute(
                update(Run)
                .where(
                    Run.id == run_id, Run.workflow_id == workflow_id, Run.status.in_(CANCELLABLE)
                )
                .values(status="cancelled", error=reason, finished_at=now)
            )
            session.execute(
                update(RunAttempt)
                .where(RunAttempt.run_id == run_id, RunAttempt.workflow_id == workflow_id)
                .values(status="cancelled", error=reason, finished_at=now)
            )
        return self.get(run_id)
