"""``qualflow runs`` and ``qualflow automations`` against a real database (no server running)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.runs import RunDetail, Runs
from qualflow.engine.runtime import Engine
from qualflow.store.secrets import SecretBox
from tests.engine.engine_support import CALLS, FAILURES

runner = CliRunner()


@pytest.fixture
def key(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    secret = SecretBox.generate_key()
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("QUALFLOW_SECRET_KEYS", secret)
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(tmp_path / "data"))
    return secret


def new_engine(database_url: str, key: str) -> Engine:
    return Engine(
        EngineConfig(database_url=database_url, executor_id="cli-test"),
        secret_box=SecretBox([key]),
    )


def wait(engine: Engine, run_id: str) -> RunDetail:
    deadline = time.monotonic() + 60
    while True:
        run = Runs(engine.services).get(run_id)
        if run.status not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture
def history(database_url: str, key: str) -> tuple[int, str, str]:
    """An automation with one succeeded and one failed run; the engine is stopped after."""
    engine = new_engine(database_url, key)
    engine.start()
    try:
        automations = Automations(engine.services)
        created = automations.create(
            {
                "name": "nightly sync",
                "trigger": {"type": "schedule", "cron": "0 2 * * *"},
                "steps": [{"action": "test.record", "key": "sync", "config": {"label": "sync"}}],
            }
        )
        ok = automations.run_now(created.id)
        wait(engine, ok)
        FAILURES["sync"] = ["fatal"]
        failed = automations.run_now(created.id)
        wait(engine, failed)
    finally:
        engine.stop()
    return created.id, ok, failed


def test_runs_ls_and_show(history: tuple[int, str, str]) -> None:
    _automation_id, ok, failed = history

    listed = runner.invoke(app, ["runs", "ls", "--json"])
    table = runner.invoke(app, ["runs", "ls", "--status", "failed"])
    shown = runner.invoke(app, ["runs", "show", failed])

    assert listed.exit_code == 0, listed.output
    assert {r["id"] for r in json.loads(listed.output)["items"]} == {ok, failed}
    assert table.exit_code == 0
    assert "failed" in table.output
    assert shown.exit_code == 0
    assert "sync: permanent problem" in shown.output


def test_automations_ls_and_show(history: tuple[int, str, str]) -> None:
    automation_id, _ok, _failed = history

    listed = runner.invoke(app, ["automations", "ls", "--json"])
    shown = runner.invoke(app, ["automations", "show", str(automation_id)])

    assert [a["name"] for a in json.loads(listed.output)] == ["nightly sync"]
    assert "cron 0 2 * * *" in shown.output
    assert "test.record" in shown.output


def test_bad_input_exits_nonzero_with_one_line(history: tuple[int, str, str]) -> None:
    _automation_id, ok, _failed = history
    cases = [
        (["runs", "show", "no-such-run"], 1, "run 'no-such-run' does not exist"),
        (["runs", "replay", ok], 1, "only failed or cancelled runs can be replayed"),
        (["runs", "ls", "--status", "exploded"], 2, "unknown status"),  # a usage error
        (["automations", "show", "999"], 1, "automation 999 does not exist"),
    ]
    for args, code, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == code, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert message in lines[0]


def test_replay_from_the_cli_is_executed_by_a_worker(
    history: tuple[int, str, str], database_url: str, key: str
) -> None:
    _automation_id, _ok, failed = history

    result = runner.invoke(app, ["runs", "replay", failed])
    assert result.exit_code == 0, result.output
    assert "attempt 2" in result.output

    engine = new_engine(database_url, key)
    engine.start()  # a worker picks the replay up from the queue
    try:
        run = wait(engine, failed)
    finally:
        engine.stop()
    assert run.status == "succeeded"
    assert len(CALLS["sync"]) == 3  # first run, failed run, its replay


def test_recover_of_an_executor_without_runs(history: tuple[int, str, str]) -> None:
    result = runner.invoke(app, ["runs", "recover", "--executor-id", "gone-worker"])
    assert result.exit_code == 0, result.output
    assert "0 run(s) of gone-worker" in result.output
