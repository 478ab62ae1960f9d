"""``qualflow serve``: the real server process with the engine inside (the embedded default)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qualflow.accounts.tokens import issue_token
from qualflow.accounts.users import create_user
from qualflow.store.secrets import SecretBox

pytestmark = pytest.mark.slow

QUALFLOW = str(Path(sys.executable).with_name("qualflow"))


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    env = {
        **os.environ,
        "QUALFLOW_DATABASE_URL": database_url,
        "QUALFLOW_DATA_DIR": str(tmp_path / "data"),
        "QUALFLOW_SECRET_KEYS": SecretBox.generate_key(),
        "QUALFLOW_LOG_LEVEL": "INFO",
    }
    from qualflow.settings import Settings
    from qualflow.store.runtime import open_store

    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_keys=[env["QUALFLOW_SECRET_KEYS"]],  # type: ignore[list-item]
    )
    store = open_store(settings, run_migrations=True)
    with store.sessionmaker() as session:
        user = create_user(
            session, email="ops@example.org", name="Ops", role="admin", password=None
        )
        _token, raw = issue_token(session, user, "tests")
        session.commit()
    store.close()
    proc = subprocess.Popen(
        [QUALFLOW, "serve", "--port", "0", "--executor-id", "serve-test"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    url = None
    for line in proc.stderr:
        found = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
        if found:
            url = found.group(1)
            break
    # Keep reading the server's log so it never blocks on a full pipe.
    drain = threading.Thread(target=lambda: [None for _ in proc.stderr or []], daemon=True)
    drain.start()
    try:
        assert url is not None, "the server did not start"
        yield url, database_url, {"Authorization": f"Bearer {raw}"}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        drain.join(10)
        proc.stderr.close()


def test_serve_runs_json_events_end_to_end(served: tuple[str, str, dict[str, str]]) -> None:
    url, _database_url, auth = served
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        created = client.post(
            "/api/v1/automations",
            headers=auth,
            json={
                "name": "gate",
                "trigger": {"type": "json_event", "fields": {"score": "$.score"}},
                "steps": [
                    {"action": "condition", "config": {"expression": "trigger.fields.score >= 9"}}
                ],
            },
        ).json()
        client.post(f"/api/v1/automations/{created['id']}/enable", headers=auth)
        posted = client.post(
            "/inbound-event/v1/events/json/triggers",
            params={"urlTokenId": created["endpoint"]["url"].rsplit("=", 1)[1]},
            headers={"X-API-TOKEN": created["api_token"]},
            json={"score": 10},
        )
        assert posted.status_code == 200, posted.text
        run_id = f"{created['id']}:event:{posted.json()['eventId']}"
        deadline = time.monotonic() + 60
        while True:
            run = client.get(f"/api/v1/runs/{run_id}", headers=auth)
            if run.status_code == 200 and run.json()["status"] == "succeeded":
                break
            assert time.monotonic() < deadline, run.text
            time.sleep(0.1)
