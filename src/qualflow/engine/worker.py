"""A worker process: executes queued runs until told to stop (``qualflow worker``).

Give each worker a stable ``--executor-id``: on restart it resumes the runs it had in flight,
and ``qualflow runs recover --executor-id`` can hand them to another worker if it never comes
back.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from qualflow.engine.runtime import Engine
from qualflow.gc_tuning import tune_for_long_running_process

log = logging.getLogger(__name__)


def run_worker(
    engine: Engine,
    *,
    stop: threading.Event | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Start the engine, block until SIGTERM/SIGINT (or ``stop``), then shut down cleanly."""
    stop = stop or threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received signal %s, stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    engine.start()
    tune_for_long_running_process()
    try:
        if ready is not None:
            ready()
        stop.wait()
    finally:
        engine.stop()
