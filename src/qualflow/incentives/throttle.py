"""A request-rate limit shared by every process using one database.

Tango allows about one request per second per platform. Workers on several machines must share
that budget, so the next free slot lives in a table row: a caller locks the row (an UPDATE
takes PostgreSQL's row lock and SQLite's write lock), takes the slot, moves it on by the
interval, commits, and sleeps until its slot comes.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qualflow.incentives.models import ProviderThrottle
from qualflow.store.base import utcnow
from qualflow.store.db import session_scope


def reserve_slot(factory: sessionmaker[Session], key: str, interval: float) -> datetime:
    """Take the next free slot for ``key``; returns when the caller may send its request."""
    step = timedelta(seconds=interval)
    for _ in range(3):
        try:
            with session_scope(factory) as session:
                now = utcnow()
                locked = session.execute(
                    update(ProviderThrottle)
                    .where(ProviderThrottle.key == key)
                    .values(key=ProviderThrottle.key)
                    .execution_options(synchronize_session=False)
                )
                if getattr(locked, "rowcount", 0) == 0:
                    session.add(ProviderThrottle(key=key, next_slot_at=now + step))
                    session.flush()
                    return now
                current = session.scalar(
                    select(ProviderThrottle.next_slot_at).where(ProviderThrottle.key == key)
                )
                slot = max(now, current) if current is not None else now
                session.execute(
                    update(ProviderThrottle)
                    .where(ProviderThrottle.key == key)
                    .values(next_slot_at=slot + step)
                    .execution_options(synchronize_session=False)
                )
                return slot
        except IntegrityError:
            # Two first callers inserted the row at once; the loser retries and locks it.
            continue
    raise RuntimeError(f"could not reserve a request slot for {key}")


def defer_slots(factory: sessionmaker[Session], key: str, seconds: float) -> None:
    """No slot for ``key`` before ``seconds`` from now (the provider answered 429 with that
    Retry-After): every process sharing the limit holds back, not only the one refused."""
    until = utcnow() + timedelta(seconds=max(0.0, seconds))
    for _ in range(3):
        try:
            with session_scope(factory) as session:
                moved = session.execute(
                    update(ProviderThrottle)
                    .where(ProviderThrottle.key == key, ProviderThrottle.next_slot_at < until)
                    .values(next_slot_at=until)
                    .execution_options(synchronize_session=False)
                )
                if (
                    getattr(moved, "rowcount", 0) == 0
                    and session.get(ProviderThrottle, key) is None
                ):
                    session.add(ProviderThrottle(key=key, next_slot_at=until))
                    session.flush()
                return
        except IntegrityError:
            continue  # created by a first caller meanwhile: move it on the next pass


async def wait_for_slot(factory: sessionmaker[Session], key: str, interval: float) -> None:
    """Reserve a slot (in a thread: the database call blocks) and sleep until it comes."""
    slot = await asyncio.to_thread(reserve_slot, factory, key, interval)
    delay = (slot - utcnow()).total_seconds()
    if delay > 0:
        await asyncio.sleep(delay)
