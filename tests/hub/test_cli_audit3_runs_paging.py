"""`qualflow runs ls` for scripts: its JSON says how many runs there are (``total``) and from
where (``offset``), and --offset pages past the newest --limit (at most 500) as the REST API's
?offset= does; --status takes several at once, comma-separated and in any case, as
`incentives rewards ls --status` does."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import tests.engine.engine_support  # noqa: F401  (registers the test.record action)
from qualflow.cli import app
from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.runs import Runs
from qualflow.engine.runtime import Engine
from qualflow.engine.testing import create_schema
from qualflow.store.secrets import SecretBox

runner = CliRunner()


@pytest.fixture
def three_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Three succeeded runs of one automation, oldest first; the engine is stopped after."""
    url = f"sqlite:///{tmp_path / 'qualflow.db'}"
    create_schema(url)
    key = SecretBox.generate_key()
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", url)
    monkeypatch.setenv("QUALFLOW_SECRET_KEYS", key)
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(tmp_path / "data"))
    engine = Engine(
        EngineConfig(database_url=url, executor_id="cli-audit3"), secret_box=SecretBox([key])
    )
    engine.start()
    try:
        automations = Automations(engine.services)
        created = automations.create(
            {
                "name": "paged",
                "trigger": {"type": "schedule", "cron": "0 2 * * *"},
                "steps": [{"action": "test.record", "key": "s", "config": {"label": "paged"}}],
            }
        )
        run_ids = []
        for _ in range(3):
            run_id = automations.run_now(created.id)
            while Runs(engine.services).get(run_id).status in ("queued", "running"):
                time.sleep(0.05)
            run_ids.append(run_id)
    finally:
        engine.stop()
    return run_ids


def _runs_ls(*args: str) -> Result:
    return runner.invoke(app, ["runs", "ls", "--json", *args])


def test_offset_pages_past_the_newest_runs(three_runs: list[str]) -> None:
    newest_first = list(reversed(three_runs))
    pages = []
    for offset in (0, 1, 2):
        result = _runs_ls("--limit", "1", "--offset", str(offset))
        assert result.exit_code == 0, result.output
        page = json.loads(result.stdout)
        assert (page["total"], page["limit"], page["offset"]) == (3, 1, offset)
        pages.extend(run["id"] for run in page["items"])
    assert pages == newest_first


def test_a_negative_offset_is_a_usage_error(three_runs: list[str]) -> None:
    result = _runs_ls("--offset", "-1")
    assert result.exit_code == 2
    assert "--offset" in result.stderr


def test_several_statuses_comma_separated_in_any_case(three_runs: list[str]) -> None:
    result = _runs_ls("--status", "Failed,SUCCEEDED")
    assert result.exit_code == 0, result.output
    assert {run["id"] for run in json.loads(result.stdout)["items"]} == set(three_runs)
    none = _runs_ls("--status", "failed, cancelled")
    assert none.exit_code == 0, none.output
    assert json.loads(none.stdout)["items"] == []


def test_a_table_page_says_which_runs_it_shows(three_runs: list[str]) -> None:
    wide = {"COLUMNS": "200"}
    second = runner.invoke(app, ["runs", "ls", "--limit", "1", "--offset", "1"], env=wide)
    assert second.exit_code == 0, second.output
    assert "runs (2-2 of 3)" in second.stdout
    assert three_runs[1] in second.stdout
    past = runner.invoke(app, ["runs", "ls", "--offset", "5"], env=wide)
    assert past.exit_code == 0, past.output
    assert past.stdout.strip() == "No runs past --offset 5: 3 match."
