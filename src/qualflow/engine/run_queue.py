"""Queueing run workflows in batches: one transaction for a whole batch instead of one each.

DBOS's in-process ``enqueue_workflow`` commits every workflow on its own. A burst of webhooks
becomes hundreds of runs at once, so the dispatcher queues them through DBOS's client API,
which writes into a transaction the caller owns: on PostgreSQL (DBOS's tables live in the same
database, under their own schema) that is the very transaction creating the runs' rows, so a
run and its workflow are committed together; on SQLite (DBOS keeps a sibling file) it is one
transaction on that file per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from dbos import DBOSClient, EnqueueOptions
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from qualflow.engine.config import RUN_QUEUE, RUN_WORKFLOW, EngineConfig

#: (workflow id, workflow arguments) of one run to queue.
QueuedRun = tuple[str, tuple[Any, ...]]


def run_options(config: EngineConfig, workflow_id: str) -> EnqueueOptions:
    """How a run's workflow is queued, whoever queues it (dispatcher, replay, CLI)."""
    return {
        "queue_name": RUN_QUEUE,
        "workflow_name": RUN_WORKFLOW,
        "workflow_id": workflow_id,
        "app_version": config.application_version,
    }


class RunQueue:
    """Writes run workflows onto DBOS's run queue inside transactions it is handed.

    ``shares_database``: ``system_engine`` is our own database's engine (PostgreSQL with DBOS's
    tables in it), so the transaction creating the runs' rows can queue them too.
    """

    def __init__(
        self, config: EngineConfig, system_engine: Engine, *, shares_database: bool
    ) -> None:
        self._config = config
        self._system_engine = system_engine
        self.shares_database = shares_database
        self._client: DBOSClient | None = None
        self._lock = threading.Lock()

    def _dbos(self) -> DBOSClient:
        with self._lock:
            if self._client is None:
                self._client = DBOSClient(
                    system_database_engine=self._system_engine,
                    application_name=self._config.app_name,
                )
            return self._client

    def enqueue_in(self, transaction: Connection | Session, runs: Iterable[QueuedRun]) -> None:
        """Queue each run in ``transaction`` (which must reach DBOS's tables); a workflow id
        queued already is left as it is."""
        client = self._dbos()
        for workflow_id, args in runs:
            client.enqueue_in_transaction(
                transaction, run_options(self._config, workflow_id), *args
            )

    def enqueue(self, runs: Iterable[QueuedRun]) -> None:
        """Queue the runs in one transaction of their own."""
        runs = list(runs)
        if not runs:
            return
        with self._system_engine.begin() as connection:
            self.enqueue_in(connection, runs)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.destroy()
