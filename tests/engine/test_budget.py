"""The Qualtrics API budget: one limiter per connection, and SQLite writers taking turns."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import create_engine, text

from qualflow.connections.clients import ConnectionLimiter, limiter_for
from qualflow.store import sqlite_writers


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_retuning_keeps_what_was_spent() -> None:
    clock = FakeClock()
    limiter = ConnectionLimiter(600, clock=clock)  # 10/s, bursts of 30
    for _ in range(30):
        assert limiter.reserve() == 0.0
    limiter.retune(1200)  # 20/s, bursts of 60: the spent burst is not handed back
    assert limiter.requests_per_minute == 1200
    assert limiter.burst == 60
    assert limiter.reserve() > 0.0
    clock.now += 10.0
    limiter.retune(1200)  # unchanged: nothing happens
    assert limiter.reserve() == 0.0


def test_one_limiter_per_connection_whatever_the_rate() -> None:
    first = limiter_for(987_654, 3000)
    assert limiter_for(987_654, 1500) is first
    assert first.requests_per_minute == 1500
    assert limiter_for(987_655, 1500) is not first


def test_sqlite_writers_take_turns_and_release_on_errors(tmp_path: Path) -> None:
    engine = create_engine(
        f"sqlite:///{tmp_path / 'turns.db'}",
        connect_args=sqlite_writers.connect_args(timeout=30),
        pool_size=8,
        max_overflow=0,
    )
    lock = sqlite_writers.writer_lock(str(tmp_path / "turns.db"))
    try:
        with engine.begin() as conn:
            conn.execute(text("PRAGMA journal_mode=WAL"))
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)"))

        def write(offset: int) -> None:
            for i in range(50):
                with engine.begin() as conn:
                    conn.execute(text("SELECT count(*) FROM t")).scalar()
                    conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": offset + i})

        threads = [threading.Thread(target=write, args=(n * 100,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 300
        assert not lock.locked()

        # A failed write gives the lock back (rollback), as does a failed statement.
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t (id, v) VALUES (1, 0)"))
        except Exception:
            pass
        assert not lock.locked()
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO missing (v) VALUES (1)"))
        except Exception:
            pass
        assert not lock.locked()
    finally:
        engine.dispose()
