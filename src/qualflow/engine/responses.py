"""Fetching survey responses within the brand's API budget.

Qualtrics webhooks carry only ids, so each run needs one GET for its response — at 3,000
requests per minute that caps a brand at 50 runs/s. :class:`ResponseFetcher` serves responses
from the ``response_cache`` table when they are there, with single GETs while demand is low, and,
when more runs are waiting than the budget can serve one by one, with ONE export per survey over
the recordedDate window of the waiting responses: every response in the export is cached and
the waiting runs are served from it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select

from qualflow.engine.dispatch_sql import insert_ignoring_duplicates
from qualflow.engine.errors import RetriableError
from qualflow.engine.models import CachedResponse
from qualflow.engine.services import EngineServices
from qualflow.qualtrics import AsyncClient, ExportOptions
from qualflow.store.base import utcnow
from qualflow.store.db import chunks, session_scope

log = logging.getLogger(__name__)

#: Slack around the recordedDate window: webhook dates have one-second precision.
WINDOW_SLACK = timedelta(seconds=2)


_CACHED_PAYLOAD = select(CachedResponse.payload).where(
    CachedResponse.response_id == bindparam("response_id")
)


_CACHED_IDS = select(CachedResponse.response_id).where(
    CachedResponse.response_id.in_(bindparam("ids", expanding=True))
)


_CACHED_PAYLOADS = select(CachedResponse.response_id, CachedResponse.payload).where(
    CachedResponse.response_id.in_(bindparam("ids", expanding=True))
)


def parse_recorded(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


@dataclass
class _Batch:
    waiting: dict[str, list[asyncio.Future[dict[str, Any]]]] = field(default_factory=dict)
    earliest: datetime | None = None
    latest: datetime | None = None
    task: asyncio.Task[None] | None = None
    #: When its export started; responses asked for meanwhile that it must contain wait for it
    #: (``late``: None when it did not have them after all).
    exported_at: datetime | None = None
    late: dict[str, list[asyncio.Future[dict[str, Any] | None]]] = field(default_factory=dict)
    #: Set once enough responses wait for its export to start it before the window ends.
    full: asyncio.Event = field(default_factory=asyncio.Event)

    def contains(self, recorded: datetime) -> bool:
        """Whether its export holds every response recorded at ``recorded``: inside the
        window and recorded before the export began (webhook dates have whole seconds)."""
        if self.exported_at is None or self.earliest is None or self.latest is None:
            return False
        return (
            self.earliest - WINDOW_SLACK <= recorded < self.latest + WINDOW_SLACK
            and recorded + timedelta(seconds=1) < self.exported_at
        )

    def add(
        self, response_id: str, recorded: datetime, future: asyncio.Future[dict[str, Any]]
    ) -> None:
        self.waiting.setdefault(response_id, []).append(future)
        self.earliest = recorded if self.earliest is None else min(self.earliest, recorded)
        self.latest = recorded if self.latest is None else max(self.latest, recorded)


def _fail(futures: Iterable[asyncio.Future[Any]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)


#: How long this process remembers an exported response: long enough for the runs waiting for
#: its export, and never longer than the shortest retention of the ``response_cache`` table
#: (one hour), so no respondent's answers outlive it in a long-running worker's memory.
RECENT_TTL_SECONDS = 600.0


class ResponseFetcher:
    """Response fetching for one process (one event loop), shared by every run."""

    def __init__(
        self,
        services: EngineServices,
        *,
        single_limit: int = 8,
        batch_window: float = 0.5,
        export_at: int = 64,
        max_batch: int = 5000,
        recent_limit: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        #: Concurrent single GETs per connection before new requests wait for a bulk export.
        self.single_limit = single_limit
        #: A batch exports when its window ends or once this many responses wait, whichever
        #: comes first: a burst's runs ask at once, and waiting out the window left them (and
        #: the CPU) idle for it; a trickle still gathers a window's worth per export.
        self.batch_window = batch_window
        self.export_at = export_at
        self.max_batch = max_batch
        self._singles: dict[int, int] = defaultdict(int)
        self._batches: dict[tuple[int, str], _Batch] = {}
        #: Batches whose export is under way, per (connection, survey).
        self._exporting: dict[tuple[int, str], list[_Batch]] = {}
        self.stats = {"cache_hits": 0, "single_gets": 0, "exports": 0, "exported_responses": 0}
        #: The latest exported responses of this process, newest last: the runs waiting for
        #: them read them without a database round trip (the table serves everyone else).
        #: Each entry holds when it was remembered (``clock``), oldest first.
        self._recent: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._recent_lock = threading.Lock()
        self.recent_limit = recent_limit
        self._clock = clock

    async def get(
        self,
        client: AsyncClient,
        connection_id: int,
        survey_id: str,
        response_id: str,
        recorded_at: datetime | None,
    ) -> dict[str, Any]:
        """The response as Qualtrics returns it (``responseId``, ``values``, ``labels``…)."""
        cached = self._remembered([response_id]).get(response_id)
        if cached is None:
            cached = await asyncio.to_thread(self._cached, response_id)
        if cached is not None:
            self.stats["cache_hits"] += 1
            return cached
        if recorded_at is None or (
            self._singles[connection_id] < self.single_limit
            and not self._bulk_under_way(connection_id, survey_id)
        ):
            return await self._single(client, connection_id, survey_id, response_id)
        return await self._batched(client, connection_id, survey_id, response_id, recorded_at)

    def _bulk_under_way(self, connection_id: int, survey_id: str) -> bool:
        """Whether an export of the survey is gathering or running: demand outran single GETs,
        so later requests join the exports too. A single GET costs the worker far more CPU
        than its share of an export; taking a free single slot whenever one came up made ~15%
        of a burst's responses single GETs."""
        key = (connection_id, survey_id)
        return key in self._batches or key in self._exporting

    # -- cache ------------------------------------------------------------------------------

    def _cached(self, response_id: str) -> dict[str, Any] | None:
        with self.services.connect() as conn:
            payload = conn.execute(_CACHED_PAYLOAD, {"response_id": response_id}).scalar()
        return dict(payload) if payload is not None else None

    def _cached_many(self, response_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The cached ones among ``response_ids`` (memory first, then the table)."""
        found = self._remembered(response_ids)
        missing = [r for r in response_ids if r not in found]
        if not missing:
            return found
        with self.services.connect() as conn:
            for ids in chunks(missing, 500):
                rows = conn.execute(_CACHED_PAYLOADS, {"ids": ids})
                found.update((response_id, dict(payload)) for response_id, payload in rows)
        return found

    def store(
        self, connection_id: int | None, survey_id: str, responses: list[dict[str, Any]]
    ) -> None:
        """Cache responses (e.g. from an export); existing entries are kept."""
        now = utcnow()
        rows = [
            {
                "response_id": r["responseId"],
                "survey_id": survey_id,
                "connection_id": connection_id,
                "payload": r,
                "recorded_at": parse_recorded((r.get("values") or {}).get("recordedDate")),
                "fetched_at": now,
            }
            for r in responses
            if r.get("responseId")
        ]
        for batch in chunks(rows, 500):
            with session_scope(self.services.sessionmaker) as session:
                # In a burst every worker's export covers the same seconds, so most of its
                # rows are cached already; encoding them again only to be skipped cost more
                # than asking which ones are there.
                cached = set(
                    session.scalars(_CACHED_IDS, {"ids": [row["response_id"] for row in batch]})
                )
                insert_ignoring_duplicates(
                    session,
                    CachedResponse.__table__,  # type: ignore[arg-type]
                    [row for row in batch if row["response_id"] not in cached],
                )
        self._remember(rows[-self.recent_limit :])

    def _remembered(self, response_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Those of ``response_ids`` in this process's memory of recent exports."""
        fresh_since = self._clock() - RECENT_TTL_SECONDS
        with self._recent_lock:
            found = {r: self._recent.get(r) for r in response_ids}
        return {
            r: entry[1]
            for r, entry in found.items()
            if entry is not None and entry[0] > fresh_since
        }

    def _remember(self, rows: list[dict[str, Any]]) -> None:
        recent = self._recent
        now = self._clock()
        with self._recent_lock:
            for row in rows:
                recent[row["response_id"]] = (now, row["payload"])
                recent.move_to_end(row["response_id"])
            while recent and (
                len(recent) > self.recent_limit
                or next(iter(recent.values()))[0] <= now - RECENT_TTL_SECONDS
            ):
                recent.popitem(last=False)

    def remembered_count(self) -> int:
        """How many responses this process holds in memory (expired ones leave as new arrive)."""
        with self._recent_lock:
            return len(self._recent)

    # -- single GET -------------------------------------------------------------------------

    async def _single(
        self, client: AsyncClient, connection_id: int, survey_id: str, response_id: str
    ) -> dict[str, Any]:
        self._singles[connection_id] += 1
        try:
            response = await client.responses.get(survey_id, response_id)
        finally:
            self._singles[connection_id] -= 1
        self.stats["single_gets"] += 1
        payload = response.model_dump(mode="json", exclude_none=True)
        payload.setdefault("responseId", response_id)
        return payload

    # -- bulk export ------------------------------------------------------------------------

    async def _batched(
        self,
        client: AsyncClient,
        connection_id: int,
        survey_id: str,
        response_id: str,
        recorded_at: datetime,
    ) -> dict[str, Any]:
        key = (connection_id, survey_id)
        for running in self._exporting.get(key, ()):
            if running.contains(recorded_at):
                # An export already under way holds it: wait for that one, not a new export.
                late: asyncio.Future[dict[str, Any] | None] = (
                    asyncio.get_running_loop().create_future()
                )
                running.late.setdefault(response_id, []).append(late)
                found = await late
                if found is not None:
                    return found
                break
        batch = self._batches.get(key)
        if batch is None or len(batch.waiting) >= self.max_batch:
            batch = _Batch()
            self._batches[key] = batch
            batch.task = asyncio.get_running_loop().create_task(
                self._run_batch(client, connection_id, survey_id, batch)
            )
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        batch.add(response_id, recorded_at, future)
        if len(batch.waiting) >= self.export_at:
            batch.full.set()
        return await future

    async def _run_batch(
        self, client: AsyncClient, connection_id: int, survey_id: str, batch: _Batch
    ) -> None:
        with suppress(TimeoutError):  # the window ended first
            await asyncio.wait_for(batch.full.wait(), self.batch_window)
        key = (connection_id, survey_id)
        if self._batches.get(key) is batch:
            del self._batches[key]
        try:
            assert batch.earliest is not None
            assert batch.latest is not None
            # Another process's export (or an earlier batch's) may hold them all by now.
            by_id = await asyncio.to_thread(self._cached_many, list(batch.waiting))
            self.stats["cache_hits"] += len(by_id)
            if len(by_id) < len(batch.waiting):
                batch.exported_at = utcnow()
                self._exporting.setdefault(key, []).append(batch)
                try:
                    responses = await self.export_window(
                        client,
                        survey_id,
                        batch.earliest - WINDOW_SLACK,
                        batch.latest + WINDOW_SLACK,
                    )
                    await asyncio.to_thread(self.store, connection_id, survey_id, responses)
                finally:
                    self._exporting[key].remove(batch)
                    if not self._exporting[key]:
                        del self._exporting[key]
                by_id.update((r["responseId"], r) for r in responses if r.get("responseId"))
        except Exception as exc:
            for futures in batch.waiting.values():
                _fail(futures, exc)
            for lates in batch.late.values():
                _fail(lates, exc)
            return
        for response_id, lates in batch.late.items():
            for late in lates:
                if not late.done():
                    late.set_result(by_id.get(response_id))
        for response_id, futures in batch.waiting.items():
            found = by_id.get(response_id)
            for future in futures:
                if future.done():
                    continue
                if found is not None:
                    future.set_result(found)
                else:
                    future.set_exception(
                        RetriableError(f"response {response_id} was not in the export yet")
                    )

    async def export_window(
        self, client: AsyncClient, survey_id: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Every response recorded in [start, end), via one export."""
        async with self.exported(client, survey_id, start, end) as path:
            responses = await asyncio.to_thread(lambda: list(read_exported(path)))
        self.stats["exported_responses"] += len(responses)
        return responses

    @asynccontextmanager
    async def exported(
        self, client: AsyncClient, survey_id: str, start: datetime, end: datetime
    ) -> AsyncIterator[Path]:
        """One NDJSON export of the responses recorded in [start, end), in a temporary file
        while the block runs. Read it with :func:`read_exported`, as often as needed, one
        response in memory at a time."""
        options = ExportOptions(format="ndjson", compress=False, start_date=start, end_date=end)
        with tempfile.TemporaryDirectory(prefix="qualflow-export-") as tmp:
            done = await client.exports.run(
                survey_id,
                options,
                dest=Path(tmp) / "export.ndjson",
                poll_interval=0.2,
                max_poll_interval=2.0,
            )
            self.stats["exports"] += 1
            yield done.path


def read_exported(path: Path) -> Iterator[dict[str, Any]]:
    """The responses of an NDJSON export file, one at a time."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                response = json.loads(line)
            except ValueError:
                raise RetriableError(f"line {number} of the export is not JSON") from None
            if isinstance(response, dict):
                yield response
