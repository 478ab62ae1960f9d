"""A worker process killed with SIGKILL mid-run: its run resumes without repeating finished steps.

Scale-out shape: this test process is a web-only engine (records and queues runs), the runs are
executed by separate ``qualflow worker`` processes sharing the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.control import Control
from qualflow.engine.runs import RunDetail, Runs
from qualflow.engine.runtime import Engine
from qualflow.store.secrets import SecretBox
from tests.engine.engine_support import RecordingServer

pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def web(database_url: str) -> Iterator[Engine]:
    engine = Engine(EngineConfig(database_url=database_url, executor_id="web", worker=False))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


QUALFLOW = str(Path(sys.executable).with_name("qualflow"))


class Workers:
    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "QUALFLOW_DATABASE_URL": database_url,
            "QUALFLOW_DATA_DIR": str(data_dir),
            "QUALFLOW_SECRET_KEYS": SecretBox.generate_key(),
            "QUALFLOW_LOG_LEVEL": "WARNING",
        }
        self.procs: list[subprocess.Popen[str]] = []

    def spawn(self, executor_id: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [QUALFLOW, "worker", "--executor-id", executor_id],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        self.procs.append(proc)
        assert proc.stderr is not None
        for line in proc.stderr:
            if f"worker {executor_id} ready" in line:
                break
        else:
            raise AssertionError(f"worker {executor_id} did not start")
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(database_url, tmp_path / "data")
    try:
        yield pool
    finally:
        pool.stop_all()


def three_calls(server: RecordingServer) -> dict[str, Any]:
    return {
        "name": "three calls",
        "trigger": {"type": "schedule", "cron": "0 3 * * *"},
        "steps": [
            {"action": "http.request", "key": "a", "config": {"url": f"{server.url}/a"}},
            {"action": "http.request", "key": "slow", "config": {"url": f"{server.url}/slow"}},
            {"action": "http.request", "key": "c", "config": {"url": f"{server.url}/c"}},
        ],
    }


def wait_final(engine: Engine, run_id: str, limit: float = 120.0) -> RunDetail:
    runs = Runs(engine.services)
    deadline = time.monotonic() + limit
    while True:
        detail = runs.get(run_id)
        if detail.status in ("succeeded", "failed", "cancelled", "skipped"):
            return detail
        assert time.monotonic() < deadline, f"run stuck: {detail}"
        time.sleep(0.05)


def kill_mid_run(web: Engine, workers: Workers, server: RecordingServer) -> str:
    server.block("/slow", times=1)
    automations = Automations(web.services)
    created = automations.create(three_calls(server))
    doomed = workers.spawn("worker-1")
    run_id = automations.run_now(created.id)
    server.wait_for("/slow")  # step 1 is done, step 2 is in flight
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(20)
    assert Runs(web.services).get(run_id).status == "running"
    return run_id


def test_restarted_worker_resumes_without_repeating_finished_steps(
    web: Engine, workers: Workers, server: RecordingServer
) -> None:
    run_id = kill_mid_run(web, workers, server)

    workers.spawn("worker-1")  # same executor id: recovers its own runs on start
    run = wait_final(web, run_id)

    assert run.status == "succeeded", run.error
    assert server.count("/a") == 1
    assert server.count("/slow") == 2  # the interrupted step ran again...
    assert server.count("/c") == 1
    slow = [r for r in server.requests if r["path"] == "/slow"]
    # ...with the same idempotency key, so the receiver can tell it is a retry.
    assert slow[0]["headers"]["webhook-id"] == slow[1]["headers"]["webhook-id"]


def test_recover_hands_a_dead_workers_runs_to_another_worker(
    web: Engine, workers: Workers, server: RecordingServer
) -> None:
    run_id = kill_mid_run(web, workers, server)
    workers.spawn("worker-2")

    with Control(web.config) as control:
        pending = control.pending_of("worker-1")
        assert pending == [run_id]
        for workflow_id in pending:
            control.resume(workflow_id)
    run = wait_final(web, run_id)

    assert run.status == "succeeded", run.error
    assert server.count("/a") == 1
    assert server.count("/c") == 1
