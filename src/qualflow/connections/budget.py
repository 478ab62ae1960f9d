"""One Qualtrics request budget per connection, shared by every process of a PostgreSQL database.

Qualtrics counts a brand's requests per minute whichever process sends them, so in the
scale-out mode the web process and every worker draw a connection's requests from one row of
``qualtrics_budgets``. The row holds the time of the connection's next free *request slot*;
slots are :attr:`BudgetPlan.interval` apart, so that no more than the budget's worth of
requests can leave in any period (see :class:`BudgetPlan`).

A process leases a batch of consecutive slots with one upsert and hands them out locally, so a
busy process pays one round trip per batch (about a second of budget) and an idle one leases a
slot at a time; whoever leases next continues where the last lease ended, so one process alone
can use the whole budget and several busy ones take turns. Every time comes from the database
clock: a lease answers its slots relative to the database's ``statement_timestamp()``, which the
process maps onto its own monotonic clock — a slot opens no earlier than measured from the
answer and closes no later than measured from the question — so neither clock skew between
machines nor the round trip can make a request leave outside its slot.

A slot not used within :attr:`BudgetPlan.lateness` of its time is void. Unused slots are never
handed back: they expire (what a process holds when its demand stops: a second or two of
budget at most) and that process's next batch is smaller. On SQLite (one embedded process)
none of this is used: the connection's in-process token bucket is the whole budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import anyio
from sqlalchemy import Engine, String, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from qualflow.qualtrics.ratelimit import limiter_busy
from qualflow.store.base import Base, UTCDateTime
from qualflow.store.db import autocommit

__all__ = [
    "BudgetPlan",
    "BudgetStats",
    "BudgetUnavailable",
    "Lease",
    "QualtricsBudget",
    "SharedBudget",
    "budget_key",
    "lease_slots",
    "pause_budget",
    "shares_budgets",
]

log = logging.getLogger(__name__)


class QualtricsBudget(Base):
    """The next free request slot of one budget (one row per connection, made on first use).

    Deliberately no ``connection_id`` column or foreign key: a budget row is bookkeeping, not a
    use of the connection, and must not keep one from being deleted.
    """

    __tablename__ = "qualtrics_budgets"

    budget_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_slot_at: Mapped[datetime] = mapped_column(UTCDateTime)


def budget_key(connection_id: int) -> str:
    return f"connection:{connection_id}"


def shares_budgets(database: Engine) -> bool:
    """Whether processes on this database draw from one stored budget (PostgreSQL only)."""
    return database.dialect.name == "postgresql"


class BudgetUnavailable(Exception):
    """The shared budget cannot be reached; the caller limits on its own meanwhile."""


@dataclass(frozen=True)
class BudgetPlan:
    """How ``requests`` per ``period`` seconds become request slots.

    A request may leave between its slot's time and ``lateness`` seconds later, so the requests
    leaving in any ``period + margin`` seconds have their slots within ``period + margin +
    lateness`` seconds, and slots ``interval = (period + lateness + margin) / requests`` apart
    put at most ``requests`` there. ``margin`` absorbs requests taking different times to reach
    Qualtrics. With the defaults a brand gets 95 % of its quota (2,857 of 3,000 a minute) and
    never more than its quota in any minute.

    After a quiet spell a lease may start up to ``burst`` seconds in the past (slots nobody
    took), so a burst of calls does not queue from zero; ``burst`` must stay below ``lateness``
    for those slots to be usable. A batch holds at most ``lease_seconds`` of slots.
    """

    requests: float
    period: float = 60.0
    lateness: float = 2.0
    margin: float = 1.0
    burst: float = 1.0
    lease_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.requests <= 0 or self.period <= 0:
            raise ValueError("a budget needs a positive number of requests per positive period")
        if self.lateness <= 0 or self.margin <= 0 or self.lease_seconds <= 0:
            raise ValueError("lateness, margin and lease_seconds must be positive")
        if not 0 <= self.burst < self.lateness:
            raise ValueError("burst must be at least 0 and below lateness")

    @classmethod
    def per_minute(cls, requests_per_minute: float) -> BudgetPlan:
        return cls(requests=float(requests_per_minute))

    @property
    def interval_us(self) -> int:
        """Microseconds between slots (whole, so slot times add up exactly in the database)."""
        window = self.period + self.lateness + self.margin
        return max(1, math.ceil(window * 1_000_000 / self.requests))

    @property
    def interval(self) -> float:
        return self.interval_us / 1_000_000

    @property
    def rebase_within(self) -> float:
        """Seconds ahead the stored budget may reach once the rate was raised: what processes
        leasing at this rate put ahead (a batch each, used within ``lateness``); further than
        this, the slots were leased at the old, slower rate."""
        return self.lease_seconds + self.lateness

    @property
    def largest_batch(self) -> int:
        return max(1, int(self.lease_seconds / self.interval))


@dataclass(frozen=True)
class Lease:
    """``count`` consecutive slots ``interval_us`` apart from ``first_slot_at`` (database time),
    and the database's clock when it granted them."""

    first_slot_at: datetime
    count: int
    interval_us: int
    database_now: datetime

    @property
    def first_offset(self) -> float:
        """Seconds from ``database_now`` to the first slot (negative: a slot from the past)."""
        return (self.first_slot_at - self.database_now) / _ONE_SECOND

    def slot_times(self) -> list[datetime]:
        step = timedelta(microseconds=self.interval_us)
        return [self.first_slot_at + index * step for index in range(self.count)]


_ONE_SECOND = timedelta(seconds=1)

# One statement, one round trip: create the row on first use, else move its next free slot on
# by the batch, starting no earlier than `burst` before now (slots nobody took have passed).
# After the rate was raised, `rebase_us` first brings the next free slot back to no later than
# that far from now (slots leased at the old rate may reach minutes ahead); otherwise it is
# NULL, which LEAST ignores.
_LEASE = text(
    """
    INSERT INTO qualtrics_budgets AS budget (budget_key, next_slot_at)
    VALUES (:key, statement_timestamp() + interval '1 microsecond' * (:span_us - :burst_us))
    ON CONFLICT (budget_key) DO UPDATE SET next_slot_at =
        GREATEST(
            LEAST(
                budget.next_slot_at,
                statement_timestamp() + interval '1 microsecond' * CAST(:rebase_us AS bigint)
            ),
            statement_timestamp() - interval '1 microsecond' * :burst_us
        ) + interval '1 microsecond' * :span_us
    RETURNING budget.next_slot_at, statement_timestamp()
    """
)

# After a 429 every process holds back: no slot is handed out before the pause ends.
_PAUSE = text(
    """
    INSERT INTO qualtrics_budgets AS budget (budget_key, next_slot_at)
    VALUES (:key, statement_timestamp() + interval '1 microsecond' * :pause_us)
    ON CONFLICT (budget_key) DO UPDATE SET next_slot_at =
        GREATEST(budget.next_slot_at, statement_timestamp() + interval '1 microsecond' * :pause_us)
    """
)


def lease_slots(
    database: Engine, key: str, count: int, plan: BudgetPlan, *, rebase: bool = False
) -> Lease:
    """Reserve the next ``count`` slots of budget ``key`` (one autocommitted statement);
    ``rebase``: the rate was just raised, so start no later than
    :attr:`BudgetPlan.rebase_within` from now."""
    if count < 1:
        raise ValueError("a lease holds at least one slot")
    params = {
        "key": key,
        "span_us": count * plan.interval_us,
        "burst_us": round(plan.burst * 1_000_000),
        "rebase_us": round(plan.rebase_within * 1_000_000) if rebase else None,
    }
    with autocommit(database) as connection:
        next_slot_at, database_now = connection.execute(_LEASE, params).one()
    first_slot_at = next_slot_at - timedelta(microseconds=count * plan.interval_us)
    return Lease(first_slot_at, count, plan.interval_us, database_now)


def pause_budget(database: Engine, key: str, seconds: float) -> None:
    """Hand out no slot of budget ``key`` before ``seconds`` from now (database clock)."""
    with autocommit(database) as connection:
        connection.execute(_PAUSE, {"key": key, "pause_us": round(seconds * 1_000_000)})


@dataclass
class BudgetStats:
    """What one process's :class:`SharedBudget` did: slots granted, leases (round trips) taken,
    and slots that expired unused."""

    granted: int = 0
    leases: int = 0
    void: int = 0


@dataclass
class _Batch:
    """A lease on this process's monotonic clock: slot ``i`` may be sent from ``opens_at + i *
    interval`` (measured from the answer, so never early) up to ``closes_at + i * interval``
    (measured from the question, so never late)."""

    opens_at: float
    closes_at: float
    interval: float
    count: int
    passed: int = 0
    taken: int = 0

    def first_open_index(self, now: float) -> int:
        if now <= self.closes_at + self.passed * self.interval:
            return self.passed
        return max(self.passed, math.ceil((now - self.closes_at) / self.interval))

    def remaining(self, now: float) -> int:
        return max(0, self.count - self.first_open_index(now))

    def take(self, now: float) -> tuple[float, float] | None:
        index = self.first_open_index(now)
        if index >= self.count:
            self.passed = self.count
            return None
        self.passed = index + 1
        self.taken += 1
        offset = index * self.interval
        return self.opens_at + offset, self.closes_at + offset

    @property
    def void(self) -> int:
        return self.passed - self.taken


@dataclass
class _Slot:
    opens_at: float
    closes_at: float


#: After the database failed to answer, limit locally this long before asking it again.
UNAVAILABLE_SECONDS = 5.0


class SharedBudget:
    """This process's share of one stored budget: leases batches, hands out slots.

    Thread-safe and task-safe (any number of threads and event loops); blocking callers use
    :meth:`acquire`, async ones :meth:`acquire_async` (the database is asked from a worker
    thread). One lease is in flight at a time; callers arriving meanwhile wait for it, and the
    next batch is sized to them. Raises :class:`BudgetUnavailable` when the database cannot be
    reached (then again only after :data:`UNAVAILABLE_SECONDS`).
    """

    def __init__(
        self,
        database: Engine,
        key: str,
        plan: BudgetPlan,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.key = key
        self._plan = plan
        self._clock = clock
        self._lock = threading.Lock()
        self._lease_done = threading.Condition(self._lock)
        self._batches: deque[_Batch] = deque()
        #: (opens_at, closes_at) of slots taken and then given back unused, earliest first.
        self._returned: list[tuple[float, float]] = []
        self._batch_size = 1
        self._leasing = False
        self._waiting = 0
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._paused_until = 0.0
        self._unavailable_until = 0.0
        self._stats = BudgetStats()
        #: The rate was raised: the next lease pulls the stored budget back (see retune).
        self._rebase = False

    def __repr__(self) -> str:
        plan = self._plan
        return f"SharedBudget({self.key!r}, {plan.requests:g} requests per {plan.period:g} s)"

    @property
    def plan(self) -> BudgetPlan:
        return self._plan

    def retune(self, requests: float) -> None:
        """New leases use ``requests`` per period.

        Raising the rate also drops the slots this process holds (spaced for the old rate) and
        has its next lease pull the stored budget back to at most :attr:`BudgetPlan.rebase_within`
        ahead: at a very low rate the slots leased so far reach minutes ahead, and the new rate
        would otherwise start only after them. What other processes hold from the old rate (a
        slot or a second's worth each) may still leave alongside the new slots, and a pause
        after a 429 that has more than that left is cut to it (a new 429 pauses again)."""
        with self._lock:
            if requests == self._plan.requests:
                return
            raised = requests > self._plan.requests
            self._plan = replace(self._plan, requests=float(requests))
            self._batch_size = min(self._batch_size, self._plan.largest_batch)
            if raised:
                self._rebase = True
                self._stats.void += len(self._returned) + sum(
                    batch.count - batch.taken for batch in self._batches
                )
                self._returned.clear()
                self._batches.clear()

    def stats(self) -> BudgetStats:
        with self._lock:
            void = self._stats.void + sum(batch.void for batch in self._batches)
            return replace(self._stats, void=void)

    def acquire(self, max_wait: float | None = None) -> None:
        """Block the calling thread until this process may send one request.

        With ``max_wait``, raise :class:`~qualflow.qualtrics.RateLimiterBusy` as soon as it is
        clear the request would wait longer than that (a slot it took then serves the next
        caller instead).
        """
        deadline = None if max_wait is None else self._clock() + max_wait
        while True:
            with self._lock:
                slot, lease_now, paused = self._claim()
                if slot is None and not lease_now and not paused:
                    self._waiting += 1
                    try:
                        self._lease_done.wait()
                    finally:
                        self._waiting -= 1
                    continue
            if paused:
                self._refuse_beyond(deadline, paused, max_wait)
                time.sleep(paused)
                continue
            if slot is not None:
                self._refuse_beyond(
                    deadline, slot.opens_at - self._clock(), max_wait, slot, lease_now
                )
            if lease_now:
                try:
                    self._lease()
                except BudgetUnavailable:
                    if slot is None:
                        raise  # else the lease was ahead of need: this caller's slot stands
            if slot is None:
                continue
            delay = slot.opens_at - self._clock()
            if delay > 0:
                time.sleep(delay)
            if self._granted(slot):
                return

    async def acquire_async(self, max_wait: float | None = None) -> None:
        """Wait, without blocking the event loop, until this process may send one request;
        ``max_wait`` as for :meth:`acquire`."""
        loop = asyncio.get_running_loop()
        deadline = None if max_wait is None else self._clock() + max_wait
        while True:
            woken: asyncio.Future[None] | None = None
            with self._lock:
                slot, lease_now, paused = self._claim()
                if slot is None and not lease_now and not paused:
                    woken = loop.create_future()
                    self._async_waiters.append((loop, woken))
                    self._waiting += 1
            if woken is not None:
                try:
                    await woken
                finally:
                    with self._lock:
                        self._waiting -= 1
                continue
            if paused:
                self._refuse_beyond(deadline, paused, max_wait)
                await anyio.sleep(paused)
                continue
            if slot is not None:
                self._refuse_beyond(
                    deadline, slot.opens_at - self._clock(), max_wait, slot, lease_now
                )
            if lease_now:
                try:
                    await anyio.to_thread.run_sync(self._lease)
                except BudgetUnavailable:
                    if slot is None:
                        raise
            if slot is None:
                continue
            delay = slot.opens_at - self._clock()
            if delay > 0:
                await anyio.sleep(delay)
            if self._granted(slot):
                return

    def _refuse_beyond(
        self,
        deadline: float | None,
        wait: float,
        max_wait: float | None,
        slot: _Slot | None = None,
        leasing: bool = False,
    ) -> None:
        """Raise RateLimiterBusy if waiting ``wait`` more seconds would pass ``deadline``.

        ``slot`` (not used then) goes back for the next caller, and a lease this caller was
        to take ahead of need is not taken: a refusal leaves the budget as it found it.
        """
        if deadline is None or max_wait is None or self._clock() + wait <= deadline:
            return
        if slot is not None:
            with self._lock:
                heapq.heappush(self._returned, (slot.opens_at, slot.closes_at))
        if leasing:
            self._lease_over()
        requests_per_minute = self._plan.requests * 60.0 / self._plan.period
        raise limiter_busy(wait, max_wait, requests_per_minute)

    def pause(self, seconds: float) -> None:
        """Hold back this process now, and every process once the database has the pause."""
        if seconds <= 0:
            return
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
        # A 429 is handled on the event loop: the database is told from a thread of its own.
        threading.Thread(
            target=self._pause_everyone, args=(seconds,), name="qualtrics-budget-pause", daemon=True
        ).start()

    def _pause_everyone(self, seconds: float) -> None:
        try:
            pause_budget(self.database, self.key, seconds)
        except SQLAlchemyError as exc:
            log.warning("could not share a Qualtrics pause for %s: %s", self.key, exc)

    # -- under self._lock -------------------------------------------------------------------

    def _claim(self) -> tuple[_Slot | None, bool, float]:
        """The next open slot (if any), whether this caller should lease (then marked as the
        one leasing), and how long it must first wait for a pause to end."""
        now = self._clock()
        if now < self._unavailable_until:
            raise BudgetUnavailable(f"the Qualtrics budget {self.key} is unavailable")
        if now < self._paused_until:
            # Not leasing meanwhile: until the database has the pause, a lease could only
            # return slots that close before the pause ends.
            return None, False, self._paused_until - now
        slot = self._next_slot(now)
        lease_now = not self._leasing and (slot is None or self._running_low(now))
        if lease_now:
            self._leasing = True
        return slot, lease_now, 0.0

    def _next_slot(self, now: float) -> _Slot | None:
        # Slots given back by callers that would not wait for them come first: they are the
        # earliest this process holds.
        while self._returned:
            opens_at, closes_at = heapq.heappop(self._returned)
            if now <= closes_at:
                return _Slot(opens_at, closes_at)
            self._stats.void += 1
        while self._batches:
            batch = self._batches[0]
            found = batch.take(now)
            if found is not None:
                return _Slot(*found)
            self._retire(self._batches.popleft())
        return None

    def _retire(self, batch: _Batch) -> None:
        self._stats.void += batch.void
        if batch.void == 0:
            self._batch_size = min(self._plan.largest_batch, self._batch_size * 2)
        else:
            # Demand fell: next time lease about what was used.
            self._batch_size = max(1, min(self._batch_size, batch.taken))

    def _running_low(self, now: float) -> bool:
        left = len(self._returned) + sum(batch.remaining(now) for batch in self._batches)
        return left < max(1, self._batch_size // 2)

    def _granted(self, slot: _Slot) -> bool:
        on_time = self._clock() <= slot.closes_at
        with self._lock:
            if on_time:
                self._stats.granted += 1
            else:
                self._stats.void += 1
        return on_time

    # -- the round trip ---------------------------------------------------------------------

    def _lease(self) -> None:
        try:
            with self._lock:
                plan = self._plan
                count = min(plan.largest_batch, max(self._batch_size, self._waiting + 1))
                rebase, self._rebase = self._rebase, False
            asked = self._clock()
            try:
                lease = lease_slots(self.database, self.key, count, plan, rebase=rebase)
            except SQLAlchemyError as exc:
                with self._lock:
                    self._rebase = self._rebase or rebase
                    self._unavailable_until = self._clock() + UNAVAILABLE_SECONDS
                log.warning("the Qualtrics budget %s is unavailable: %s", self.key, exc)
                raise BudgetUnavailable(str(exc)) from exc
            answered = self._clock()
            offset = lease.first_offset
            batch = _Batch(
                opens_at=answered + offset,
                closes_at=asked + offset + plan.lateness,
                interval=plan.interval,
                count=lease.count,
            )
            with self._lock:
                self._batches.append(batch)
                self._stats.leases += 1
        finally:
            self._lease_over()

    def _lease_over(self) -> None:
        """Let the next caller lease, and wake everyone waiting for this lease."""
        with self._lock:
            self._leasing = False
            self._lease_done.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        for loop, woken in waiters:
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, woken)


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)
