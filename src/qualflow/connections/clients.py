"""Qualtrics clients for connections: one rate limiter per connection, its budget shared.

Qualtrics limits a brand to 3,000 requests per minute across every caller, so every client made
for one connection draws from one :class:`ConnectionLimiter` (``connection.requests_per_minute``,
retuned in place when it changes). On PostgreSQL — the scale-out mode, where a web process and
workers run at once — that limiter draws from the connection's budget stored in the database
(:mod:`qualflow.connections.budget`), so all processes together stay within the quota; on SQLite
(one embedded process) it is an in-process token bucket. Two ways to get a client:

* :func:`client_for` — a new :class:`~qualflow.qualtrics.AsyncClient`; use it as
  ``async with client_for(connection) as qualtrics: …`` (it is closed on exit);
* :func:`client_factory` — for the engine: an ``await factory(connection_id)`` that reuses one
  client per connection and event loop (do not close those; ``factory.aclose_loop()`` does).

Which database holds the budgets: the one given to :func:`use_budget_database`, else the one of
the newest :func:`client_factory` (a process has one database); :func:`client_for` also uses the
database of the session its connection was loaded in.

:func:`configure_clients` sets the transport every client of this process uses (the demo and the
tests route Qualtrics calls to the sandbox app in-process with ``httpx.ASGITransport``).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import httpx
from sqlalchemy import Connection as SqlConnection
from sqlalchemy import Engine
from sqlalchemy.orm import Session, object_session, sessionmaker

from qualflow.connections.budget import (
    BudgetPlan,
    BudgetUnavailable,
    SharedBudget,
    budget_key,
    shares_budgets,
)
from qualflow.connections.errors import ConnectionNotFound, InvalidConnection
from qualflow.connections.models import DEFAULT_REQUESTS_PER_MINUTE, Connection
from qualflow.qualtrics import AsyncClient, OAuthCredentials, RateLimiter, RetryPolicy

__all__ = [
    "INTERACTIVE_RATE_LIMIT_WAIT",
    "ConnectionClientFactory",
    "ConnectionLimiter",
    "Credentials",
    "client_factory",
    "client_for",
    "client_for_credentials",
    "configure_clients",
    "invalidate_clients",
    "limiter_for",
    "use_budget_database",
]


@dataclass(frozen=True)
class Credentials:
    """Where a Qualtrics account lives and how to authenticate (not stored as such)."""

    datacenter: str | None = None
    base_url: str | None = None
    api_token: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = None
    oauth_scope: str | None = None

    @classmethod
    def of(cls, connection: Connection) -> Credentials:
        return cls(
            datacenter=connection.datacenter,
            base_url=connection.base_url,
            api_token=connection.api_token,
            oauth_client_id=connection.oauth_client_id,
            oauth_client_secret=connection.oauth_client_secret,
            oauth_scope=connection.oauth_scope,
        )

    def fingerprint(self) -> str:
        """A digest that changes whenever any field changes (for cache keys, never shown)."""
        material = "\x00".join(str(value) for value in vars(self).values())
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def client_kwargs(self) -> dict[str, object]:
        oauth = None
        if self.oauth_client_id or self.oauth_client_secret:
            if not (self.oauth_client_id and self.oauth_client_secret):
                raise InvalidConnection("OAuth needs both a client id and a client secret")
            oauth = OAuthCredentials(
                client_id=self.oauth_client_id,
                client_secret=self.oauth_client_secret,
                scope=self.oauth_scope or None,
            )
        if oauth is not None and self.api_token:
            raise InvalidConnection("give an API token or OAuth client credentials, not both")
        if oauth is None and not self.api_token:
            raise InvalidConnection("an API token or OAuth client credentials are required")
        return {
            "datacenter": self.datacenter or None,
            "base_url": self.base_url or None,
            "api_token": self.api_token or None,
            "oauth": oauth,
        }


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.transport: httpx.AsyncBaseTransport | None = None
        self.timeout: float = 30.0
        self.limiters: dict[int, ConnectionLimiter] = {}
        #: Where connections' budgets live (PostgreSQL: shared by every process).
        self.budget_database: Engine | None = None
        #: Bumped when a connection's credentials change, so cached clients are rebuilt.
        self.generations: dict[int, int] = {}


_registry = _Registry()


def configure_clients(
    *, transport: httpx.AsyncBaseTransport | None = None, timeout: float | None = None
) -> None:
    """Set the transport (and timeout) of every Qualtrics client made from now on."""
    with _registry.lock:
        _registry.transport = transport
        if timeout is not None:
            _registry.timeout = timeout


def use_budget_database(database: Engine | None) -> None:
    """Draw every connection's budget from ``database`` from now on.

    On PostgreSQL every process using that database shares each connection's budget; on
    SQLite, or with ``None``, each process limits on its own. Call it once the store is open
    (:func:`client_factory` does it for its sessions' database).
    """
    with _registry.lock:
        _registry.budget_database = database
        limiters = list(_registry.limiters.items())
    if database is not None:
        for connection_id, limiter in limiters:
            limiter.share_budget(database, budget_key(connection_id))


class ConnectionLimiter(RateLimiter):
    """The one limiter of a connection in this process.

    Every client made for the connection draws from this limiter for the life of the process;
    when the connection's ``requests_per_minute`` changes, it is retuned in place (what was
    spent stays spent), so clients made before and after the edit never hold two budgets for
    one brand. Once :meth:`share_budget` names a PostgreSQL database, requests draw from the
    connection's budget there, shared with every other process; the token bucket this class
    inherits serves only SQLite, and any moment the database cannot be reached.
    """

    def __init__(
        self,
        requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(requests_per_minute, burst=burst, clock=clock)
        self._shared: SharedBudget | None = None

    @property
    def shared_budget(self) -> SharedBudget | None:
        """The budget shared with other processes, or None when this process limits alone."""
        return self._shared

    def share_budget(self, database: Engine, key: str) -> None:
        """Draw from budget ``key`` in ``database`` (PostgreSQL); elsewhere, limit alone."""
        with self._lock:
            current = self._shared
            if not shares_budgets(database):
                self._shared = None
            elif current is None or current.database is not database or current.key != key:
                plan = BudgetPlan.per_minute(self.requests_per_minute)
                self._shared = SharedBudget(database, key, plan)

    def acquire(self, max_wait: float | None = None) -> None:
        shared = self._shared
        if shared is not None:
            try:
                shared.acquire(max_wait)
                return
            except BudgetUnavailable:
                pass  # already logged; the bucket limits this process until the database is back
        super().acquire(max_wait)

    async def acquire_async(self, max_wait: float | None = None) -> None:
        shared = self._shared
        if shared is not None:
            try:
                await shared.acquire_async(max_wait)
                return
            except BudgetUnavailable:
                pass
        await super().acquire_async(max_wait)

    def pause(self, seconds: float) -> None:
        super().pause(seconds)
        shared = self._shared
        if shared is not None:
            shared.pause(seconds)

    def retune(self, requests_per_minute: float) -> None:
        rate = float(requests_per_minute)
        if rate <= 0:
            raise ValueError("requests_per_minute must be positive")
        with self._lock:
            shared = self._shared
            if rate != self.requests_per_minute:
                # Settle the bucket at the old rate up to now, then continue at the new one.
                now = self._clock()
                elapsed = max(0.0, now - self._updated)
                self._tokens = min(float(self.burst), self._tokens + elapsed * self._rate)
                self._updated = max(self._updated, now)
                self.requests_per_minute = rate
                self._rate = rate / 60.0
                self.burst = max(1, int(rate // 20))
                self._tokens = min(self._tokens, float(self.burst))
        if shared is not None:
            shared.retune(rate)


def limiter_for(
    connection_id: int,
    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE,
    *,
    database: Engine | None = None,
) -> ConnectionLimiter:
    """The one limiter of this connection in this process (retuned if its rate changed).

    It draws from the connection's budget in ``database``, else in the process's budget
    database (:func:`use_budget_database`), else as it did before.
    """
    with _registry.lock:
        limiter = _registry.limiters.get(connection_id)
        if limiter is None:
            limiter = ConnectionLimiter(requests_per_minute)
            _registry.limiters[connection_id] = limiter
        database = database or _registry.budget_database
    if database is not None:
        limiter.share_budget(database, budget_key(connection_id))
    limiter.retune(requests_per_minute)
    return limiter


def _engine_of(bind: object) -> Engine | None:
    if isinstance(bind, Engine):
        return bind
    if isinstance(bind, SqlConnection):
        return bind.engine
    return None


def client_for_credentials(
    credentials: Credentials,
    *,
    rate_limiter: RateLimiter | None = None,
    retry: RetryPolicy | None = None,
    max_rate_limit_wait: float | None = None,
) -> AsyncClient:
    """A client for credentials that may not be saved yet (validation, provisioning)."""
    return AsyncClient(
        **credentials.client_kwargs(),  # type: ignore[arg-type]
        rate_limiter=rate_limiter,
        max_rate_limit_wait=max_rate_limit_wait,
        retry=retry,
        timeout=_registry.timeout,
        transport=_registry.transport,
        user_agent="qualflow-hub",
    )


#: How long a request someone is waiting on (a page, an API call) may wait for its
#: connection's rate limit; beyond it the hub answers "try again in N s" at once.
INTERACTIVE_RATE_LIMIT_WAIT = 10.0


def client_for(
    connection: Connection,
    *,
    retry: RetryPolicy | None = None,
    max_rate_limit_wait: float | None = None,
) -> AsyncClient:
    """A new client for a saved connection, sharing the connection's rate limiter.

    The caller owns it: ``async with client_for(connection) as qualtrics: …``. Callers that
    answer a person pass ``max_rate_limit_wait=INTERACTIVE_RATE_LIMIT_WAIT``: a request the
    limiter would hold longer raises :class:`~qualflow.qualtrics.RateLimiterBusy` unsent.
    """
    limiter = limiter_for(
        connection.id,
        connection.requests_per_minute,
        database=_engine_of(getattr(object_session(connection), "bind", None)),
    )
    return client_for_credentials(
        Credentials.of(connection),
        rate_limiter=limiter,
        retry=retry,
        max_rate_limit_wait=max_rate_limit_wait,
    )


#: How long a cached client is trusted before its connection is re-read from the database.
#: Edits made through this process invalidate at once (:func:`invalidate_clients`).
RECHECK_SECONDS = 30.0


def invalidate_clients(connection_id: int) -> None:
    """Make every factory rebuild its client for this connection (credentials changed)."""
    with _registry.lock:
        _registry.generations[connection_id] = _registry.generations.get(connection_id, 0) + 1


@dataclass
class _Cached:
    fingerprint: str
    generation: int
    checked_at: float
    client: AsyncClient


def _fresh(cached: _Cached | None, generation: int) -> _Cached | None:
    """The cached client if it may serve: its connection unchanged and checked recently."""
    if (
        cached is not None
        and cached.generation == generation
        and time.monotonic() - cached.checked_at < RECHECK_SECONDS
    ):
        return cached
    return None


class ConnectionClientFactory:
    """``await factory(connection_id) -> AsyncClient``: one cached client per connection and loop.

    Usable as the engine's ``client_factory``. Do not close the clients it hands out;
    :meth:`aclose_loop` closes the running loop's clients (call it before that loop ends).
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        #: The database its clients' budgets live in (that of ``sessions``).
        self.database = _engine_of(sessions.kw.get("bind"))
        self._lock = threading.Lock()
        self._cache: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Cached]] = (
            weakref.WeakKeyDictionary()
        )
        self._refreshing: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[int, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    def _load(self, connection_id: int) -> tuple[Credentials, int]:
        with self._sessions() as session:
            connection = session.get(Connection, connection_id)
            if connection is None:
                raise ConnectionNotFound(f"connection {connection_id} does not exist")
            return Credentials.of(connection), connection.requests_per_minute

    async def __call__(self, connection_id: int) -> AsyncClient:
        loop = asyncio.get_running_loop()
        cached, generation = self._lookup(loop, connection_id)
        if fresh := _fresh(cached, generation):
            return fresh.client
        # One coroutine per connection and loop re-reads the connection; the others wait for
        # its client. Without this, every run that starts at once (a burst after an idle spell)
        # would load the connection and build a client of its own, most of them never closed.
        with self._lock:
            locks = self._refreshing.setdefault(loop, {})
            refreshing = locks.setdefault(connection_id, asyncio.Lock())
        async with refreshing:
            cached, generation = self._lookup(loop, connection_id)
            if fresh := _fresh(cached, generation):
                return fresh.client
            return await self._refresh(loop, connection_id, cached, generation)

    def _lookup(
        self, loop: asyncio.AbstractEventLoop, connection_id: int
    ) -> tuple[_Cached | None, int]:
        """The loop's cached client of the connection (if any) and the connection's generation."""
        with _registry.lock:
            generation = _registry.generations.get(connection_id, 0)
        with self._lock:
            return self._cache.get(loop, {}).get(connection_id), generation

    async def _refresh(
        self,
        loop: asyncio.AbstractEventLoop,
        connection_id: int,
        cached: _Cached | None,
        generation: int,
    ) -> AsyncClient:
        now = time.monotonic()
        credentials, rate = await anyio.to_thread.run_sync(self._load, connection_id)
        fingerprint = f"{credentials.fingerprint()}:{rate}"
        if cached is not None and cached.fingerprint == fingerprint:
            cached.checked_at, cached.generation = now, generation
            return cached.client
        limiter = limiter_for(connection_id, rate, database=self.database)
        client = client_for_credentials(credentials, rate_limiter=limiter)
        with self._lock:
            self._cache.setdefault(loop, {})[connection_id] = _Cached(
                fingerprint, generation, now, client
            )
        if cached is not None:
            await cached.client.aclose()
        return client

    async def aclose_loop(self) -> None:
        """Close the clients made on the running event loop."""
        with self._lock:
            mine = self._cache.pop(asyncio.get_running_loop(), {})
            self._refreshing.pop(asyncio.get_running_loop(), None)
        for cached in mine.values():
            await cached.client.aclose()


def client_factory(sessions: sessionmaker[Session]) -> ConnectionClientFactory:
    """The engine's ``client_factory``: see :class:`ConnectionClientFactory`.

    Its sessions' database becomes the process's budget database (:func:`use_budget_database`).
    """
    factory = ConnectionClientFactory(sessions)
    if factory.database is not None:
        use_budget_database(factory.database)
    return factory
