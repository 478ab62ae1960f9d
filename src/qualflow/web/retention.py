"""Keep the event log and the response cache from growing forever.

``inbound_events`` records every delivery (accepted or rejected) and ``response_cache`` every
response fetched in bulk; both are only needed for a while. :func:`prune_once` deletes what is
older than the retention settings; :func:`retention_lifespan` runs it in every web process, at
start and then every ``QUALFLOW_PRUNE_INTERVAL_MINUTES``, whether or not the engine runs there.
Several processes pruning the same database at once is harmless (the deletes are idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

import anyio
from fastapi import FastAPI
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qualflow.engine.config import EngineConfig
from qualflow.engine.models import CachedResponse, InboundEvent
from qualflow.engine.responses import ResponseFetcher
from qualflow.engine.services import EngineServices
from qualflow.settings import Settings
from qualflow.store.base import utcnow

__all__ = ["Pruned", "prune_inbound_events", "prune_once", "retention_lifespan"]

log = logging.getLogger(__name__)

#: Rows deleted per statement, so a large backlog never holds a long lock.
BATCH = 5000


@dataclass(frozen=True)
class Pruned:
    inbound_events: int
    cached_responses: int


def prune_inbound_events(
    factory: sessionmaker[Session], older_than: timedelta, *, batch: int = BATCH
) -> int:
    """Delete recorded deliveries received before ``older_than`` ago.

    Accepted events not dispatched yet are kept whatever their age: a run still depends on them.
    """
    cutoff = utcnow() - older_than
    total = 0
    while True:
        with factory() as session:
            ids = list(
                session.scalars(
                    select(InboundEvent.id)
                    .where(InboundEvent.received_at < cutoff, InboundEvent.status != "accepted")
                    .order_by(InboundEvent.id)
                    .limit(batch)
                )
            )
            if not ids:
                return total
            session.execute(delete(InboundEvent).where(InboundEvent.id.in_(ids)))
            session.commit()
        total += len(ids)
        if len(ids) < batch:
            return total


def _any_cached_before(factory: sessionmaker[Session], older_than: timedelta) -> bool:
    # Looked up first so an idle pass never takes SQLite's write lock.
    with factory() as session:
        found = session.scalar(
            select(CachedResponse.response_id)
            .where(CachedResponse.fetched_at < utcnow() - older_than)
            .limit(1)
        )
    return found is not None


def prune_once(settings: Settings, factory: sessionmaker[Session]) -> Pruned:
    """One pass of both prunes with the retention settings (0 days/hours: keep forever)."""
    events = 0
    if settings.inbound_events_retention_days > 0:
        events = prune_inbound_events(
            factory, timedelta(days=settings.inbound_events_retention_days)
        )
    responses = 0
    keep = timedelta(hours=settings.response_cache_retention_hours)
    if settings.response_cache_retention_hours > 0 and _any_cached_before(factory, keep):
        services = EngineServices(
            config=EngineConfig(database_url=settings.database_url, worker=False),
            sessionmaker=factory,
        )
        responses = ResponseFetcher(services).prune(keep)
    return Pruned(inbound_events=events, cached_responses=responses)


async def _prune_forever(settings: Settings, factory: sessionmaker[Session]) -> None:
    interval = settings.prune_interval_minutes * 60
    while True:
        try:
            # Not abandoned on cancellation: shutdown waits for a pass in progress to finish.
            pruned = await anyio.to_thread.run_sync(prune_once, settings, factory)
        except SQLAlchemyError as exc:
            log.warning("pruning old events failed (retrying later): %s", exc.__class__.__name__)
        else:
            if pruned.inbound_events or pruned.cached_responses:
                log.info(
                    "pruned %d inbound events and %d cached responses",
                    pruned.inbound_events,
                    pruned.cached_responses,
                )
        await asyncio.sleep(interval)


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
