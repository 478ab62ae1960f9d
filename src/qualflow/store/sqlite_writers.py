"""One writer at a time per SQLite file, handed over in-process instead of by SQLite's busy sleep.

SQLite allows one write transaction per file. A connection that finds the file locked waits in
SQLite's busy handler, which *sleeps* (1, 2, 5 … up to 100 ms) and retries, so with dozens of
concurrent runs the write lock sits idle most of the time while writers sleep. Connections made
with :func:`connect_args` instead take a process-wide lock for their file just before their
first write statement (when pysqlite opens the transaction) and give it back at commit or
rollback: writers of this process queue on the lock and get the file the moment it is free.
Other processes still meet SQLite's own locking (and busy timeout), exactly as before.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

#: Longest a writer waits for its turn in-process; after that it goes ahead and lets SQLite's
#: busy timeout decide (a connection leaked while holding the lock cannot block others forever).
LOCK_TIMEOUT = 30.0

# The statements that make pysqlite (or the caller) open a transaction that will write.
_WRITE_KEYWORDS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN", "SAVEPOINT")

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def writer_lock(database: str) -> threading.Lock:
    """The process-wide writer lock of one SQLite file."""
    key = os.path.realpath(database)
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.Lock()
        return lock


def _writes(statement: str) -> bool:
    head = statement.lstrip()[:10].upper()
    return head.startswith(_WRITE_KEYWORDS)


class _Cursor(sqlite3.Cursor):
    connection: SerializedConnection

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        self.connection._before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection._after()

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _Cursor:
        self.connection._before(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            self.connection._after()


class SerializedConnection(sqlite3.Connection):
    """A pysqlite connection holding its file's writer lock for the span of a write
    transaction."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        name = os.fspath(database)
        self._lock: threading.Lock | None = (
            None if name in ("", ":memory:") or name.startswith("file:") else writer_lock(name)
        )
        self._holding = False

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or _Cursor)

    def _before(self, sql: str) -> None:
        if self._lock is None or self._holding or self.in_transaction or not _writes(sql):
            return
        self._holding = self._lock.acquire(timeout=LOCK_TIMEOUT)

    def _after(self) -> None:
        # A statement that failed before its transaction began (or ran in autocommit).
        if self._holding and not self.in_transaction:
            self._release()

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            assert self._lock is not None
            self._lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            if not self.in_transaction:
                self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()


def connect_args(**extra: Any) -> dict[str, Any]:
    """``connect_args`` for ``create_engine`` on a SQLite file (pysqlite)."""
    return {"factory": SerializedConnection, "check_same_thread": False, **extra}
