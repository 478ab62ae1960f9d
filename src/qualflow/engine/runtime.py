"""Engine lifecycle: configure DBOS, launch it in this process, stop it cleanly.

DBOS is process-global, so there is at most one running :class:`Engine` per process. The
embedded default runs it inside the web process (web + worker in one); ``qualflow worker``
runs it alone with a stable executor id so its unfinished runs can be recovered (by itself on
restart, or by another worker with ``qualflow runs recover``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbos import DBOS, DBOSConfig
from sqlalchemy import Engine as SAEngine
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from qualflow.engine.config import RUN_QUEUE, EngineConfig, default_executor_id
from qualflow.engine.run_queue import RunQueue
from qualflow.engine.services import ClientFactory, EngineServices, set_current_services
from qualflow.store import sqlite_writers
from qualflow.store.db import make_engine, make_sessionmaker, normalize_url
from qualflow.store.secrets import SecretBox, attach_secret_box

if TYPE_CHECKING:
    from qualflow.settings import Settings
    from qualflow.store.runtime import Store

log = logging.getLogger(__name__)

_running: Engine | None = None


def running_engine() -> Engine | None:
    """The engine started in this process, if any."""
    return _running


@contextmanager
def _uvloop_policy() -> Iterator[None]:
    """uvloop for the event loop DBOS creates while launching (its background loop, where a
    worker's runs execute), and the caller's policy back afterwards.

    A reward burst on PostgreSQL cost ~5% less worker CPU per reward on uvloop: each run hands
    its database work to threads and back several times, and uvloop's wake-ups are cheaper.
    DBOS builds that loop inside ``launch``, which returns only once it runs, so the policy
    is never left changed for anything else in the process. Where uvloop is missing (Windows),
    or event-loop policies are deprecated (Python 3.14), asyncio's own loop serves."""
    try:
        from uvloop import EventLoopPolicy
    except ImportError:
        yield
        return
    if sys.version_info >= (3, 14):
        yield
        return
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(EventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


class Engine:
    """The durable-execution runtime of one process."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        session_factory: sessionmaker[Session] | None = None,
        client_factory: ClientFactory | None = None,
        secret_box: SecretBox | None = None,
        extras: dict[str, Any] | None = None,
    ) -> None:
        """``session_factory`` defaults to a new database engine for ``config.database_url``
        (with ``secret_box`` attached, for the encrypted columns)."""
        self.config = config
        self._owns_db = session_factory is None
        if session_factory is None:
            db = _engine_database(config.database_url)
            if secret_box is not None:
                attach_secret_box(db, secret_box)
            session_factory = make_sessionmaker(db)
        if client_factory is None:
            from qualflow.connections.clients import client_factory as connection_clients

            client_factory = connection_clients(session_factory)
        self.services = EngineServices(
            config=config,
            sessionmaker=session_factory,
            client_factory=client_factory,
            extras=dict(extras or {}),
        )
        from qualflow.engine.dispatch import Dispatcher
        from qualflow.engine.inbound import EndpointDirectory, EventRecorder

        self.dispatcher = (
            Dispatcher(self.services)
            if config.edge
            else Dispatcher(self.services, idle=10.0, min_age=60.0)
        )
        self.recorder = EventRecorder(self.services, on_recorded=self.dispatcher.wake)
        self.endpoints = EndpointDirectory(self.services)
        self._system_engine: SAEngine | None = None
        self._owns_system_engine = False
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    def dbos_config(self) -> DBOSConfig:
        config: DBOSConfig = {
            "name": self.config.app_name,
            "system_database_url": self.config.resolved_system_database_url,
            "executor_id": self.config.executor_id,
            "application_version": self.config.application_version,
            "log_level": self.config.log_level,
            "scheduler_polling_interval_sec": self.config.scheduler_polling_interval,
            "notification_listener_polling_interval_sec": 0.05,
            # Ten connections per process serve DBOS's short transactions; PostgreSQL's
            # connection slots are shared by every web and worker process.
            "sys_db_pool_size": 10,
            "db_engine_kwargs": dict(_POOL_OPTIONS),
            "max_executor_threads": self.config.executor_threads,
        }
        if make_url(self.config.resolved_system_database_url).get_backend_name() == "sqlite":
            config["system_database_engine"] = self.system_engine()
        return config

    def system_engine(self) -> SAEngine:
        """The SQLAlchemy engine reaching DBOS's tables: DBOS's own on SQLite; on PostgreSQL
        our database's (the tables are in it, under DBOS's schema)."""
        if self._system_engine is None:
            url = self.config.resolved_system_database_url
            bind = self.services.sessionmaker.kw.get("bind")
            if make_url(url).get_backend_name() == "sqlite":
                self._system_engine, self._owns_system_engine = _sqlite_system_engine(url), True
            elif isinstance(bind, SAEngine) and _same_database(bind, url):
                self._system_engine, self._owns_system_engine = bind, False
            else:
                self._system_engine = create_engine(normalize_url(url), **_POOL_OPTIONS)
                self._owns_system_engine = True
        return self._system_engine

    def start(self) -> None:
        """Launch DBOS in this process, recover this executor's unfinished runs, start draining."""
        global _running
        if _running is not None:
            raise RuntimeError("an engine is already running in this process")
        _load_workflow_modules()
        _prepare_sqlite(self.config.resolved_system_database_url)
        set_current_services(self.services)
        try:
            DBOS(config=self.dbos_config())
            if not self.config.worker:
                # A web-only process records and queues runs; workers execute them.
                DBOS.listen_queues([])
            with _uvloop_policy():
                DBOS.launch()
            DBOS.register_queue(
                RUN_QUEUE,
                worker_concurrency=self.config.resolved_worker_concurrency,
                polling_interval_sec=self.config.resolved_queue_polling_interval,
                on_conflict="always_update",
            )
        except BaseException:
            DBOS.destroy()
            set_current_services(None)
            raise
        system_engine = self.system_engine()
        self.services.run_queue = RunQueue(
            self.config,
            system_engine,
            shares_database=system_engine is self.services.sessionmaker.kw.get("bind"),
        )
        self.dispatcher.start()
        self._started = True
        _running = self

    def stop(self) -> None:
        """Stop draining and shut DBOS down; unfinished runs resume on the next start."""
        global _running
        if not self._started:
            return
        self.dispatcher.stop()
        if self.services.run_queue is not None:
            self.services.run_queue.close()
            self.services.run_queue = None
        _stop_dequeuing()
        DBOS.destroy(workflow_completion_timeout_sec=0)
        if self._system_engine is not None and self._owns_system_engine:
            self._system_engine.dispose()
        self._system_engine = None
        from qualflow.notify.email import close_pools

        close_pools()
        set_current_services(None)
        self._started = False
        _running = None
        if self._owns_db:
            bind = self.services.sessionmaker.kw.get("bind")
            if bind is not None:
                bind.dispose()

    @contextmanager
    def running(self) -> Iterator[Engine]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def _stop_dequeuing(timeout: float = 10.0) -> None:
    """Stop DBOS's queue threads before ``DBOS.destroy``, which closes its event loop first and
    joins them after: a thread that claimed runs in between handed them to a closed loop (they
    waited, pending, for the next start's recovery, and Python warned of a coroutine never
    awaited). A run it starts now simply stops with the engine, like any run in flight."""
    from dbos import _dbos

    instance = getattr(_dbos, "_dbos_global_instance", None)
    for stop in getattr(instance, "background_thread_stop_events", ()):
        stop.set()
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        # DBOS names each queue's worker thread so; its manager thread joins them too.
        if thread.name.startswith("queue-worker-"):
            thread.join(max(0.0, deadline - time.monotonic()))


def _load_workflow_modules() -> None:
    """Import every module declaring DBOS workflows; they must be registered before launch."""
    import qualflow.engine.builtin
    import qualflow.engine.scheduling
    import qualflow.engine.survey_triggers
    import qualflow.engine.workflow  # noqa: F401


#: No ping before each checkout (a round trip per transaction on the hot path); connections are
#: recycled instead, and a dropped one fails its statement, which DBOS and steps retry.
_POOL_OPTIONS = {"pool_pre_ping": False, "pool_recycle": 300, "pool_size": 10, "max_overflow": 0}


def _engine_database(url: str) -> SAEngine:
    """The engine's own pool on our database: small (steps hold a connection for one short
    write) so PostgreSQL's connection slots stay available for the other processes, and fixed:
    a step waits for a connection rather than opening one that is closed on its return (with
    8 overflow connections, a burst of 2,000 runs opened and closed some 260 of them, each a
    new PostgreSQL backend; on SQLite each re-runs its PRAGMAs)."""
    if make_url(url).get_backend_name() == "sqlite":
        return make_engine(url, pool_size=16, max_overflow=0)
    return create_engine(
        normalize_url(url), pool_size=16, max_overflow=0, pool_pre_ping=False, pool_recycle=300
    )


def _same_database(bind: SAEngine, url: str) -> bool:
    ours, theirs = bind.url, make_url(url)
    return (ours.host, ours.port, ours.database, ours.username) == (
        theirs.host,
        theirs.port,
        theirs.database,
        theirs.username,
    )


def _sqlite_system_engine(url: str) -> SAEngine:
    """DBOS's SQLite engine, set up as DBOS sets up its own, plus WAL-friendly durability.

    Like DBOS: IMMEDIATE transactions (writers serialise instead of failing on upgrade), a
    generous busy timeout and foreign keys. Added: ``synchronous=NORMAL``, which in WAL mode
    keeps every commit atomic and the database consistent across crashes, but fsyncs at
    checkpoints instead of at every commit — the difference between ~30 and thousands of
    checkpoints per second on an ordinary disk. (A power loss may lose the last commits; a
    process crash, the failure durable execution is about, loses nothing.) Writers of this
    process take turns on an in-process lock instead of sleeping in SQLite's busy handler.
    """
    engine = create_engine(
        url,
        connect_args=sqlite_writers.connect_args(),
        pool_size=20,
        max_overflow=0,
        pool_timeout=30,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = "IMMEDIATE"
        dbapi_connection.execute("PRAGMA busy_timeout=30000")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    return engine


def _prepare_sqlite(url: str) -> None:
    """Put DBOS's SQLite file in WAL mode (persistent), so readers never block its writer."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    path = Path(parsed.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def engine_for(
    settings: Settings,
    *,
    store: Store | None = None,
    executor_id: str | None = None,
    worker: bool = True,
    edge: bool = True,
    worker_concurrency: int | None = None,
) -> Engine:
    """An engine configured from the hub's settings (database, public URL, SMTP).

    With ``store`` (an opened :class:`~qualflow.store.runtime.Store`) its sessions and secret
    box are shared; otherwise the engine opens the database itself.
    """
    from qualflow.notify.email import SmtpSettings

    extras: dict[str, Any] = {}
    if settings.smtp_host:
        extras["smtp"] = SmtpSettings(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            sender=settings.smtp_from,
        )
    config = EngineConfig(
        database_url=settings.database_url,
        executor_id=executor_id or default_executor_id(),
        public_base_url=settings.public_base_url,
        worker=worker,
        edge=edge,
    )
    if worker_concurrency:
        config = dataclasses.replace(config, worker_concurrency=worker_concurrency)
    from qualflow.store.secrets import secret_box_for

    # The engine opens its own pool (sized for its concurrency) on the same database.
    box = store.secret_box if store is not None else secret_box_for(settings)
    return Engine(config, secret_box=box, extras=extras)
