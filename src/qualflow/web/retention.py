"""Keep the event log and the response cache from growing forever.

``inbound_events`` records every delivery (accepted or rejected) and ``response_cache`` every
response fetched in bulk; both are only needed for a while. :func:`prune_once` deletes what is
older than the retention settings; :func:`retention_lifespan` runs it in every web process, at
start and then every ``QUALFLOW_PRUNE_INTERVAL_MINUTES``, whether or not the engine runs there,
and :func:`prune_until_stopped` in every ``qualflow worker``.
Several processes pruning the same database at once is harmless (the deletes are idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from qualflow.engine.models import CachedResponse, InboundEvent
from qualflow.settings import Settings
from qualflow.store.base import utcnow

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "Pruned",
    "prune_cached_responses",
    "prune_inbound_events",
    "prune_once",
    "prune_until_stopped",
    "retention_lifespan",
]

log = logging.getLogger(__name__)

#: Rows deleted per statement, so a large backlog never holds a long lock.
BATCH = 5000


@dataclass(frozen=True)
class Pruned:
    inbound_events: int
    cached_responses: int


def _delete_in_batches(
    factory: sessionmaker[Session],
    key: InstrumentedAttribute[Any],
    conditions: list[ColumnElement[bool]],
    batch: int,
) -> int:
    """Delete the rows of ``key``'s table matching ``conditions``, ``batch`` rows per short
    transaction, so a large backlog never holds a lock for long (on SQLite, the whole
    database's). An idle pass only reads: it never takes SQLite's write lock."""
    total = 0
    while True:
        with factory() as session:
            keys = list(session.scalars(select(key).where(*conditions).order_by(key).limit(batch)))
            if not keys:
                return total
            # The conditions again: a row changed since (a response fetched anew) is kept.
            deleted = session.execute(delete(key.class_).where(key.in_(keys), *conditions))
            session.commit()
        total += int(deleted.rowcount or 0)  # type: ignore[attr-defined]
        if len(keys) < batch:
            return total


def prune_inbound_events(
    factory: sessionmaker[Session], older_than: timedelta, *, batch: int = BATCH
) -> int:
    """Delete recorded deliveries received before ``older_than`` ago.

    Accepted events not dispatched yet are kept whatever their age: a run still depends on them.
    """
    cutoff = utcnow() - older_than
    conditions = [InboundEvent.received_at < cutoff, InboundEvent.status != "accepted"]
    return _delete_in_batches(factory, InboundEvent.id, conditions, batch)


def prune_cached_responses(
    factory: sessionmaker[Session], older_than: timedelta, *, batch: int = BATCH
) -> int:
    """Delete responses fetched before ``older_than`` ago. A run that still needs one fetches
    it again (a cache miss), so none is kept for a queued run."""
    cutoff = utcnow() - older_than
    return _delete_in_batches(
        factory, CachedResponse.response_id, [CachedResponse.fetched_at < cutoff], batch
    )


def prune_once(settings: Settings, factory: sessionmaker[Session]) -> Pruned:
    """One pass of both prunes with the retention settings (0 days/hours: keep forever)."""
    events = 0
    if settings.inbound_events_retention_days > 0:
        keep = timedelta(days=settings.inbound_events_retention_days)
        events = prune_inbound_events(factory, keep, batch=BATCH)
    responses = 0
    if settings.response_cache_retention_hours > 0:
        keep = timedelta(hours=settings.response_cache_retention_hours)
        responses = prune_cached_responses(factory, keep, batch=BATCH)
    return Pruned(inbound_events=events, cached_responses=responses)


def _prune_and_log(settings: Settings, factory: sessionmaker[Session]) -> None:
    try:
        pruned = prune_once(settings, factory)
    except SQLAlchemyError as exc:
        log.warning("pruning old events failed (retrying later): %s", exc.__class__.__name__)
        return
    if pruned.inbound_events or pruned.cached_responses:
        log.info(
            "pruned %d inbound events and %d cached responses",
            pruned.inbound_events,
            pruned.cached_responses,
        )


async def _prune_forever(settings: Settings, factory: sessionmaker[Session]) -> None:
    interval = settings.prune_interval_minutes * 60
    while True:
        # Not abandoned on cancellation: shutdown waits for a pass in progress to finish.
        await anyio.to_thread.run_sync(_prune_and_log, settings, factory)
        await asyncio.sleep(interval)


def prune_until_stopped(
    settings: Settings, factory: sessionmaker[Session], stop: threading.Event
) -> None:
    """Prune at once and then every ``QUALFLOW_PRUNE_INTERVAL_MINUTES`` until ``stop`` is set:
    for a process without the web app (``qualflow worker``), run in a thread of its own."""
    if settings.prune_interval_minutes <= 0:
        return
    while not stop.is_set():
        _prune_and_log(settings, factory)
        stop.wait(settings.prune_interval_minutes * 60)


@asynccontextmanager
async def retention_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """A lifespan (for :func:`qualflow.web.app.add_lifespan`) pruning in the background."""
    store = app.state.store
    if store.settings.prune_interval_minutes <= 0:
        yield
        return
    task = asyncio.create_task(
        _prune_forever(store.settings, store.sessionmaker), name="qualflow-prune"
    )
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
