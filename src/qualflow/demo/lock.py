"""One demo per data dir at a time.

Two demos on one data dir would share its database and sandbox file: the second would give the
admin a new password, point the connection at its own sandbox and overwrite the sandbox file,
so the first's sign-in stops working and its runs fail with "response not found". The lock is
an ``flock`` on a file in the data dir, so it is released when the process ends, however it
ends (no stale lock after a crash).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

__all__ = ["DataDirLock", "DemoAlreadyRunning"]

LOCK_FILE = "demo.lock"


class DemoAlreadyRunning(RuntimeError):
    """Another demo holds the data dir."""


class DataDirLock:
    """Held from :meth:`acquire` to :meth:`release`; :meth:`describe` says who holds it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        file = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip()
            file.close()
            raise DemoAlreadyRunning(
                f"a qualflow demo is already running on {self.data_dir}"
                + (f" ({holder})" if holder else "")
                + "; open it, stop it first, or pass another --data-dir"
            ) from None
        self._file = file
        self.describe(f"pid {os.getpid()}")

    def describe(self, holder: str) -> None:
        """What a second start is told about this one (its process and URL)."""
        if self._file is None:
            return
        self._file.seek(0)
        self._file.truncate()
        self._file.write(holder + "\n")
        self._file.flush()

    def release(self) -> None:
        if self._file is None:
            return
        self.describe("")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None
