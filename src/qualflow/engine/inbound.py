"""Recording inbound events, fast: many concurrent deliveries share one database commit.

The HTTP edge must record a delivery before answering, and answer quickly even in bursts. One
INSERT + COMMIT per request would make the database's commit rate the edge's limit, so
:class:`EventRecorder` groups the deliveries that arrive while a commit is in flight into the
next one (group commit): each request still waits until *its* row is durable.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select

from qualflow.engine.definitions import (
    AutomationDefinition,
    JsonEventTrigger,
    SurveyResponseTrigger,
)
from qualflow.engine.models import Automation, AutomationVersion, InboundEvent, TriggerEndpoint
from qualflow.engine.services import EngineServices
from qualflow.store.base import utcnow

MAX_BATCH = 512


@dataclass
class _Pending:
    row: dict[str, Any]
    future: asyncio.Future[int]


@dataclass
class _LoopState:
    pending: list[_Pending] = field(default_factory=list)
    flushing: bool = False


class EventRecorder:
    """Durably record inbound events with group commit.

    While one commit is in flight, new events queue up and go into the next one. The flushing
    task exists only while there is something to write, so no task outlives its event loop.
    """

    def __init__(
        self, services: EngineServices, *, on_recorded: Callable[[int], None] | None = None
    ) -> None:
        self._services = services
        self._on_recorded = on_recorded
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(self, **row: Any) -> int:
        """Insert one ``inbound_events`` row; returns its id once committed."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        row.setdefault("received_at", utcnow())
        future: asyncio.Future[int] = loop.create_future()
        state.pending.append(_Pending(row, future))
        if not state.flushing:
            state.flushing = True
            task = loop.create_task(self._flush(state), name="qualflow-recorder")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush(self, state: _LoopState) -> None:
        try:
            while state.pending:
                batch = state.pending[:MAX_BATCH]
                del state.pending[:MAX_BATCH]
                try:
                    ids = await asyncio.to_thread(self._insert, [p.row for p in batch])
                except Exception as exc:
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                for pending, event_id in zip(batch, ids, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(event_id)
                accepted = sum(1 for p in batch if p.row.get("status") == "accepted")
                if self._on_recorded is not None and accepted:
                    self._on_recorded(accepted)
        finally:
            state.flushing = False

    def _insert(self, rows: list[dict[str, Any]]) -> list[int]:
        columns = {c.name for c in InboundEvent.__table__.columns} - {"id"}
        normalized = [{name: row.get(name) for name in columns} for row in rows]
        for row in normalized:
            row["size"] = row["size"] or 0
        with self._services.sessionmaker() as session:
            result = session.execute(
                insert(InboundEvent).returning(InboundEvent.id, sort_by_parameter_order=True),
                normalized,
            )
            ids = [r[0] for r in result]
            session.commit()
        return ids


@dataclass(frozen=True)
class Endpoint:
    """What the edge needs to know about one inbound URL, cached."""

    token: str
    kind: str
    automation_id: int
    automation_name: str
    enabled: bool
    secret_hash: str | None = None
    shared_key: str | None = None
    survey_id: str | None = None
    include_partial: bool = False
    fields: dict[str, str] = field(default_factory=dict)
    auth: str = "any"

    def token_matches(self, token: str) -> bool:
        if not self.secret_hash:
            return False
        digest = hashlib.sha256(token.encode()).hexdigest()
        return hmac.compare_digest(digest, self.secret_hash)


class EndpointDirectory:
    """Token → :class:`Endpoint`, cached for a few seconds (changes elsewhere show up quickly)."""

    def __init__(self, services: EngineServices, *, ttl: float = 3.0) -> None:
        self._services = services
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Endpoint | None]] = {}

    def invalidate(self) -> None:
        self._cache.clear()

    def lookup(self, token: str) -> Endpoint | None:
        if "\x00" in token:
            # No token holds one, and PostgreSQL refuses it even as a query parameter.
            return None
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        endpoint = self._load(token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now, endpoint)
        return endpoint

    def _load(self, token: str) -> Endpoint | None:
        with self._services.sessionmaker() as session:
            row = session.execute(
                select(TriggerEndpoint, Automation, AutomationVersion)
                .join(Automation, Automation.id == TriggerEndpoint.automation_id)
                .join(
                    AutomationVersion,
                    (AutomationVersion.automation_id == Automation.id)
                    & (AutomationVersion.version == Automation.version),
                )
                .where(TriggerEndpoint.token == token)
            ).first()
            if row is None:
                return None
            endpoint, automation, snapshot = row
            trigger = AutomationDefinition.model_validate(snapshot.definition).trigger
            return Endpoint(
                token=endpoint.token,
                kind=endpoint.kind,
                automation_id=automation.id,
                automation_name=automation.name,
                enabled=automation.enabled,
                secret_hash=endpoint.secret_hash,
                shared_key=endpoint.shared_key,
                survey_id=endpoint.survey_id,
                include_partial=isinstance(trigger, SurveyResponseTrigger)
                and trigger.include_partial,
                fields=dict(trigger.fields) if isinstance(trigger, JsonEventTrigger) else {},
                auth=trigger.auth if isinstance(trigger, JsonEventTrigger) else "any",
            )
