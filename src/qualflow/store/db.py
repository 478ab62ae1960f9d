"""Engine and session setup for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from qualflow.store import sqlite_writers

T = TypeVar("T")


#: Ids per ``IN (...)`` list when a query may be handed thousands: each id is a bound
#: parameter, and a statement may carry at most 65,535 on PostgreSQL and 32,766 on SQLite.
IN_LIST_CHUNK = 1000


def chunks(items: Sequence[T], size: int | None = None) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of ``size`` (:data:`IN_LIST_CHUNK` by default)."""
    step = size or IN_LIST_CHUNK
    for first in range(0, len(items), step):
        yield items[first : first + step]


def normalize_url(url: str) -> str:
    """Map plain `postgresql://` URLs onto the psycopg 3 driver we ship."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        # Writers of this process take turns on an in-process lock (see sqlite_writers).
        connect_args = sqlite_writers.connect_args(timeout=30)
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web edge write events while runs read; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """A connection for statements that need no transaction around them.

    On PostgreSQL each statement commits by itself: no BEGIN and COMMIT round trips, a third of
    the statements of a run's hot path. On SQLite the statements run in one transaction instead,
    which is what takes this process's writer lock (see ``sqlite_writers``)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
    else:
        with engine.begin() as connection:
            yield connection
