"""From accepted events to queued runs.

Every trigger ends here: :func:`start_runs` creates the run rows (status ``queued``) and enqueues
one DBOS workflow per run with the run id as workflow id. Both are idempotent, so a duplicate
webhook, a replayed delivery or the reconciliation poll finding a response again all land on the
run that already exists.

The :class:`Dispatcher` drains the ``inbound_events`` table the HTTP edge writes to: the edge
only records and answers, runs are queued behind it, and an event accepted just before a crash
is dispatched when the process comes back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dbos import DBOS, SetWorkflowID
from sqlalchemy import select, text

from qualflow.engine.config import RUN_QUEUE
from qualflow.engine.dispatch_sql import insert_ignoring_duplicates
from qualflow.engine.models import Automation, InboundEvent, Run, RunAttempt
from qualflow.engine.run_queue import QueuedRun, RunQueue
from qualflow.engine.services import EngineServices
from qualflow.engine.workflow import run_automation
from qualflow.store.base import utcnow
from qualflow.store.db import chunks, session_scope

log = logging.getLogger(__name__)

#: How far back the dispatcher looks to tell a burst of events from a trickle (seconds).
_RATE_WINDOW = 0.2


@dataclass(frozen=True)
class RunRequest:
    """A request to run an automation once for one triggering event."""

    automation_id: int
    #: What makes this event unique for the automation, e.g. ``SV_x:R_y`` for a response.
    dedupe_key: str
    #: The trigger payload handed to the run (``type`` and ``summary`` plus event data).
    trigger: dict[str, Any]
    inbound_event_id: int | None = None

    @property
    def run_id(self) -> str:
        return run_id_for(self.automation_id, self.dedupe_key)


def run_id_for(automation_id: int, dedupe_key: str) -> str:
    return f"{automation_id}:{dedupe_key}"


def prepare_runs(
    services: EngineServices,
    requests: Sequence[RunRequest],
    *,
    queue: RunQueue | None = None,
) -> list[tuple[RunRequest, int]]:
    """Create the run rows (``queued``) that do not exist yet; returns each runnable request
    with the automation version its run executes (a duplicate keeps its first version).

    With a ``queue`` that shares our database, the runs' workflows are queued in the same
    transaction (never from workflow code: there, enqueue from the workflow itself)."""
    if not requests:
        return []
    now = utcnow()
    with session_scope(services.sessionmaker) as session:
        ids = {r.automation_id for r in requests}
        versions = dict(
            session.execute(
                select(Automation.id, Automation.version).where(Automation.id.in_(ids))
            ).all()
        )
        runnable = [r for r in requests if r.automation_id in versions]
        insert_ignoring_duplicates(
            session,
            Run.__table__,  # type: ignore[arg-type]
            [
                {
                    "id": r.run_id,
                    "automation_id": r.automation_id,
                    "automation_version": versions[r.automation_id],
                    "trigger_type": str(r.trigger.get("type", "manual")),
                    "trigger_summary": str(r.trigger.get("summary", ""))[:500],
                    "trigger_payload": r.trigger,
                    "status": "queued",
                    "attempt": 1,
                    "workflow_id": r.run_id,
                    "created_at": now,
                }
                for r in runnable
            ],
        )
        insert_ignoring_duplicates(
            session,
            RunAttempt.__table__,  # type: ignore[arg-type]
            [
                {
                    "run_id": r.run_id,
                    "number": 1,
                    "workflow_id": r.run_id,
                    "status": "queued",
                    "from_position": 0,
                    "started_at": now,
                }
                for r in runnable
            ],
        )
        stored: dict[str, int] = {}
        for run_ids in chunks([r.run_id for r in runnable]):
            rows = session.execute(
                select(Run.id, Run.automation_version).where(Run.id.in_(run_ids))
            )
            stored.update((run_id, version) for run_id, version in rows)
        prepared = [(r, stored.get(r.run_id, versions[r.automation_id])) for r in runnable]
        if queue is not None:
            queue.enqueue_in(session, _workflows(prepared))
    return prepared


def _workflows(prepared: Sequence[tuple[RunRequest, int]]) -> list[QueuedRun]:
    """Each run's workflow id (the run id) and the arguments of :func:`run_automation`."""
    return [
        (request.run_id, (request.run_id, request.automation_id, version, request.trigger))
        for request, version in prepared
    ]


def start_runs(services: EngineServices, requests: Sequence[RunRequest]) -> list[str]:
    """Create (or find) the runs for these events and queue their workflows; returns run ids.

    Not for use inside a workflow (there, prepare in a step and enqueue from workflow code).
    """
    queue = services.run_queue
    if queue is not None and queue.shares_database:
        prepared = prepare_runs(services, requests, queue=queue)
    else:
        prepared = prepare_runs(services, requests)
        if queue is not None:
            queue.enqueue(_workflows(prepared))
        else:
            _enqueue(prepared)
    # Only now: an event whose run was not queued yet is dispatched again after a crash.
    _mark_dispatched(services, requests, {r.run_id for r, _ in prepared})
    return [r.run_id for r, _ in prepared]


def _enqueue(prepared: Sequence[tuple[RunRequest, int]]) -> None:
    """Queue one workflow per run through DBOS in this process, with the run id as workflow id
    (idempotent: a workflow that exists already is returned, not started again); for an engine
    without a :class:`RunQueue`."""
    for request, version in prepared:
        with SetWorkflowID(request.run_id):
            DBOS.enqueue_workflow(
                RUN_QUEUE,
                run_automation,
                request.run_id,
                request.automation_id,
                version,
                request.trigger,
            )


def _mark_dispatched(
    services: EngineServices, requests: Sequence[RunRequest], started: set[str]
) -> None:
    with_events = [r for r in requests if r.inbound_event_id is not None]
    if not with_events:
        return
    rows = [
        {
            "event_id": r.inbound_event_id,
            "new_status": "dispatched" if r.run_id in started else "rejected",
            "new_run_id": r.run_id if r.run_id in started else None,
            "new_reason": None if r.run_id in started else "the automation no longer exists",
        }
        for r in with_events
    ]
    with services.connect() as conn:
        conn.execute(_MARK_EVENT, rows)


# One statement for the whole batch (executemany), built once.
_MARK_EVENT = text(
    "UPDATE inbound_events SET status = :new_status, run_id = :new_run_id, "
    "reason = :new_reason WHERE id = :event_id"
)


def request_for_event(event: InboundEvent) -> RunRequest | None:
    """The run request an accepted inbound event stands for."""
    if event.automation_id is None:
        return None
    trigger = dict(event.payload or {})
    trigger.setdefault("event_id", event.id)
    return RunRequest(
        automation_id=event.automation_id,
        dedupe_key=event.dedupe_key or f"event:{event.id}",
        trigger=trigger,
        inbound_event_id=event.id,
    )


class Dispatcher:
    """Background thread turning accepted inbound events into queued runs."""

    def __init__(
        self,
        services: EngineServices,
        *,
        batch_size: int = 500,
        idle: float = 1.0,
        min_age: float = 0.0,
        settle: float = 0.05,
        max_defer: float = 0.1,
        burst_rate: float = 300.0,
        burst_defer: float = 2.0,
    ):
        """``min_age`` > 0 makes a backstop dispatcher (worker processes): it only takes events
        that the recording process left undispatched for that many seconds.

        While events keep arriving, dispatching waits for a ``settle`` seconds' lull,
        ``max_defer`` seconds at most, so runs are queued in large batches. During a burst
        (events arriving at ``burst_rate`` a second or faster) it waits up to ``burst_defer``
        seconds instead: runs would take the CPU the edge needs to absorb the burst, and they
        start right after it. A steady trickle never counts as a burst, so its runs wait
        ``max_defer`` at most.
        """
        self._services = services
        self._batch_size = batch_size
        self._idle = idle
        self._min_age = timedelta(seconds=min_age)
        self._settle = settle
        self._max_defer = max_defer
        self._burst_rate = burst_rate
        self._burst_defer = burst_defer
        #: (when, how many) of recent recorded batches, to tell a burst from a trickle.
        self._arrivals: deque[tuple[float, int]] = deque()
        self._arrivals_lock = threading.Lock()
        self._last_wake = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="qualflow-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self, count: int = 1) -> None:
        """Tell the dispatcher ``count`` new events were recorded (thread-safe, cheap)."""
        now = time.monotonic()
        self._last_wake = now
        with self._arrivals_lock:
            self._arrivals.append((now, count))
            while self._arrivals and self._arrivals[0][0] < now - _RATE_WINDOW:
                self._arrivals.popleft()
        self._wake.set()

    def _arrival_rate(self, now: float) -> float:
        """Events recorded per second over the last moments."""
        with self._arrivals_lock:
            recent = sum(count for at, count in self._arrivals if at >= now - _RATE_WINDOW)
        return recent / _RATE_WINDOW

    def dispatch_pending(self) -> int:
        """Dispatch one batch of accepted events; returns how many were handled."""
        with session_scope(self._services.sessionmaker) as session:
            events = list(
                session.scalars(
                    select(InboundEvent)
                    .where(
                        InboundEvent.status == "accepted",
                        InboundEvent.received_at <= utcnow() - self._min_age,
                    )
                    .order_by(InboundEvent.id)
                    .limit(self._batch_size)
                )
            )
        requests = [r for r in (request_for_event(e) for e in events) if r is not None]
        start_runs(self._services, requests)
        return len(events)

    def _settle_burst(self) -> None:
        """Wait until no event was recorded for ``settle`` seconds (``max_defer`` at most, or
        ``burst_defer`` while events arrive at ``burst_rate`` or faster)."""
        started = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            quiet_at = self._last_wake + self._settle
            if now >= quiet_at:
                return
            burst = self._arrival_rate(now) >= self._burst_rate
            deadline = started + (self._burst_defer if burst else self._max_defer)
            if now >= deadline:
                return
            self._stop.wait(min(quiet_at, deadline, now + _RATE_WINDOW / 2) - now)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self._idle)
            self._wake.clear()
            self._settle_burst()
            try:
                while not self._stop.is_set() and self.dispatch_pending() >= self._batch_size:
                    pass
            except Exception:
                # The events stay accepted and are retried on the next pass.
                log.exception("dispatching inbound events failed")
                self._stop.wait(1.0)
