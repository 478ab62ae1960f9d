"""Every start of a process that migrates by itself (the SQLite default) calls migrate(): on a
database already at the newest revision it must not take the migration lock, or each command
would wait for whatever another process (a worker) is writing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from qualflow.store.migrate import current_revision, head_revision, migrate


def test_a_current_database_is_left_alone_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    url = f"sqlite:///{path}"
    migrate(url)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a worker in the middle of a write transaction
        migrate(url)  # with the lock taken, this waited the busy timeout, then failed
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert current_revision(url) == head_revision()
