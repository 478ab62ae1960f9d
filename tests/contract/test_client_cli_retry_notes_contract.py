"""The CLI's retry notes come from the client's ``on_retry`` hook: a spinner line on a terminal
for `whoami`/`surveys`/`survey`, the retry row of the export's progress display, nothing raw
on stderr (the client's log records do not reach it), and the command's result unchanged."""

from __future__ import annotations

import logging
import types
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import qualflow.cli.qualtrics_cmd as qualtrics_cmd
import qualflow.qualtrics.client as client_module
from qualflow.qualtrics import ratelimit
from qualflow.sandbox.faults import FaultRule
from tests.contract.contract_support import Sandbox
from tests.contract.contract_support import run_cli as _run


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr as a terminal: the CLI shows retries only there."""
    console = Console(stderr=True, force_terminal=True, force_interactive=True, width=200)
    monkeypatch.setattr(qualtrics_cmd, "_err", console)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's waits before retries, recorded instead of slept (and the rate limiter's,
    which a 429 pauses too, skipped)."""
    recorded: list[float] = []
    monkeypatch.setattr(client_module, "time", types.SimpleNamespace(sleep=recorded.append))
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    return recorded


def _fault(sandbox: Sandbox, **rule: Any) -> FaultRule:
    return sandbox.state.faults.add(FaultRule(**rule))


@pytest.mark.usefixtures("terminal")
def test_a_retried_command_shows_a_short_note_and_still_succeeds(
    env: dict[str, str], sandbox: Sandbox, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    _fault(sandbox, path="/API/v3/whoami", status=429, retry_after=3, count=1)
    with caplog.at_level(logging.WARNING):
        result = _run(["q", "whoami", "--json"], env)
    assert result.exit_code == 0, result.output
    assert sandbox.user_id in result.stdout
    assert "GET /API/v3/whoami: retry 1 in 3.0 s after HTTP 429" in result.stderr
    assert waits == [3.0]
    # The note replaces the client's log record, which reaches no handler of the process.
    assert not [r for r in caplog.records if r.name.startswith("qualflow.qualtrics")]


@pytest.mark.usefixtures("terminal")
def test_each_retry_of_a_listing_replaces_the_last_note(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, waits: list[float]
) -> None:
    _fault(sandbox, path="/API/v3/surveys", status=503, retry_after=1, count=2)
    result = _run(["q", "surveys", "--json"], env)
    assert result.exit_code == 0, result.output
    assert survey_id in result.stdout
    # The waits are not slept here, so only the last note is sure to have been drawn.
    assert "GET /API/v3/surveys: retry 2 in 1.0 s after HTTP 503" in result.stderr
    assert waits == [1.0, 1.0]


def test_no_note_on_stderr_that_is_not_a_terminal(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, waits: list[float]
) -> None:
    _fault(sandbox, path="/API/v3/surveys/*", status=500, count=1)
    result = _run(["q", "survey", survey_id, "--json"], env)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert len(waits) == 1


def test_retries_that_do_not_help_end_with_the_reason_alone(
    env: dict[str, str], sandbox: Sandbox, waits: list[float], terminal: None
) -> None:
    _fault(sandbox, path="/API/v3/whoami", status=503, retry_after=0)
    result = _run(["q", "whoami"], env)
    assert result.exit_code == 1
    # The spinner line is erased, then comes the one-line reason, last.
    last = result.stderr.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.endswith(")")
    assert "error: Temporary internal server error (injected fault). (HTTP 503" in last
    assert "retry 4 in 0.0 s after HTTP 503" in result.stderr
    assert "Traceback" not in result.output


def test_the_export_shows_retries_on_its_progress_display(
    env: dict[str, str],
    sandbox: Sandbox,
    survey_id: str,
    waits: list[float],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notes: list[str | None] = []
    show = qualtrics_cmd._ExportProgress.note

    def record(self: Any, text: str | None) -> None:
        notes.append(text)
        show(self, text)

    monkeypatch.setattr(qualtrics_cmd._ExportProgress, "note", record)
    sandbox.state.record_response(survey_id, {"QID1": 1, "finished": 1})
    _fault(sandbox, path="/API/v3/surveys/*/export-responses/*", status=429, retry_after=2, count=1)
    target = tmp_path / "x.csv"
    result = _run(["q", "export", survey_id, "-o", str(target), "--json"], env)
    assert result.exit_code == 0, result.output
    assert target.exists()
    shown = [note for note in notes if note is not None]
    assert shown == ["Retry 1 in 2.0 s after HTTP 429"]
    assert notes[-1] is None  # hidden once the export moved on
    assert waits[0] == 2.0
    assert result.stderr == ""
