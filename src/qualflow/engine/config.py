"""How the engine is configured: databases, executor identity, queue and retry tuning."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from qualflow import __version__

RUN_QUEUE = "qualflow-runs"
#: The registered name of the run workflow (what a DBOS client enqueues by name).
RUN_WORKFLOW = "qualflow.run"


def default_executor_id() -> str:
    """A readable executor id: host name plus process id (use a stable one for workers)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def system_database_url_for(database_url: str) -> str:
    """Where DBOS keeps its checkpoints, next to our own tables.

    SQLite: a sibling file (``qualflow.db`` → ``qualflow-dbos.db``), so DBOS's writes and ours
    never wait on one file lock. PostgreSQL: the same database; DBOS uses its own ``dbos`` schema.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ValueError("the engine needs a file-backed SQLite database, not an in-memory one")
        path = Path(database)
        sibling = path.with_name(f"{path.stem}-dbos{path.suffix or '.db'}")
        return f"sqlite:///{sibling}"
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings; :meth:`from_settings` reads them from the hub's Settings."""

    database_url: str
    system_database_url: str | None = None
    executor_id: str = "local"
    application_version: str = f"qualflow-{__version__}"
    public_base_url: str = "http://127.0.0.1:8000"
    #: Process runs in this process (False for a web-only process in a scale-out deployment).
    worker: bool = True
    #: Turn recorded inbound events into runs as they arrive (processes serving the HTTP edge).
    #: Without it (``qualflow worker``) the process only picks up events left undispatched.
    edge: bool = True
    #: Runs executing at once in this process; by default 64 in a process that also serves the
    #: web edge (the embedded hub) and 128 in a ``qualflow worker``, which takes queued runs
    #: only when it polls: with 64, its slots emptied between polls and a burst drained ~8%
    #: slower.
    worker_concurrency: int | None = None
    #: Threads of the engine's event loop for blocking work: DBOS's writes to its tables and
    #: the runs' database calls. Few on purpose: unbounded (DBOS's default), a burst of runs
    #: grew ~50 threads per process that spent more CPU handing the GIL to each other than
    #: they saved: 8 drained a reward burst on PostgreSQL ~20% faster. Slow work (SMTP) has
    #: threads of its own.
    executor_threads: int = 8
    #: How often an idle worker looks for queued runs (seconds); by default 0.05 in a process
    #: that queues its own runs (the embedded hub) and 0.1 in a ``qualflow worker``, where each
    #: look costs a few milliseconds of CPU and several processes look at once.
    queue_polling_interval: float | None = None
    #: How often new or changed schedules are noticed (seconds).
    scheduler_polling_interval: float = 10.0
    #: Attempts per step before a retriable error fails the run, and the backoff between them.
    step_max_attempts: int = 5
    retry_initial_delay: float = 1.0
    retry_max_delay: float = 60.0
    #: Name DBOS gives this application in its system database.
    app_name: str = "qualflow"
    log_level: str = "WARNING"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def resolved_queue_polling_interval(self) -> float:
        if self.queue_polling_interval is not None:
            return self.queue_polling_interval
        return 0.05 if self.edge else 0.1

    @property
    def resolved_worker_concurrency(self) -> int:
        if self.worker_concurrency is not None:
            return self.worker_concurrency
        return 64 if self.edge else 128

    @property
    def resolved_system_database_url(self) -> str:
        return self.system_database_url or system_database_url_for(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"
