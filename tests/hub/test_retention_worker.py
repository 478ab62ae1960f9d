"""``qualflow worker`` prunes old inbound events and cached responses too: a worker fills the
response cache, and a deployment of workers alone (scheduled automations, or while the web
processes are down) would otherwise never prune it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy.orm import Session

from qualflow.settings import Settings
from tests.hub.test_retention import _left, _seed


def test_a_worker_alone_prunes(settings: Settings, db: Session) -> None:
    _seed(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUALFLOW_", "QUALTRICS_"))}
    env |= {
        "QUALFLOW_DATA_DIR": str(settings.data_dir),
        "QUALFLOW_DATABASE_URL": settings.database_url,
        "QUALFLOW_SECRET_KEYS": settings.secret_keys[0].get_secret_value(),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "qualflow", "worker", "--executor-id", "prune-test"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while _left(db) != ([4, 5], ["R_new"]) and time.monotonic() < deadline:
            assert worker.poll() is None, worker.communicate()[1]
            db.rollback()  # see the worker's deletes
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        _out, stderr = worker.communicate(timeout=60)
    assert _left(db) == ([4, 5], ["R_new"]), stderr
    assert worker.returncode == 0, stderr
