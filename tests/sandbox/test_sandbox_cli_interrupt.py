"""Ctrl-C while `respond` or `seed` writes into a state file: the command stops after the
record being made, saves what was made so far, says so, and exits with the interrupted code."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.cli.common import EXIT_INTERRUPTED
from qualflow.sandbox import SandboxState
from qualflow.sandbox.respondents import Simulator

runner = CliRunner()


def ctrl_c_on_response(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """Press Ctrl-C (a real SIGINT to this process) while the ``number``-th simulated
    response is being made."""
    made = 0
    run: Callable[..., Any] = Simulator.run

    def run_and_interrupt(self: Simulator, count: int) -> Any:
        nonlocal made
        made += 1
        if made == number:
            os.kill(os.getpid(), signal.SIGINT)
        return run(self, count)

    monkeypatch.setattr(Simulator, "run", run_and_interrupt)


def responses_in(state: Path) -> dict[str, int]:
    saved = SandboxState.load(state)
    return {sid: len(records) for sid, records in saved.responses.items() if records}


def test_respond_saves_the_responses_recorded_before_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "sandbox.json"
    seeded = runner.invoke(app, ["sandbox", "seed", "-f", str(state), "--responses", "0"])
    assert seeded.exit_code == 0, seeded.output
    survey_id = next(iter(SandboxState.load(state).surveys))
    ctrl_c_on_response(monkeypatch, 5)

    result = runner.invoke(app, ["sandbox", "respond", survey_id, "-f", str(state), "-n", "50"])

    assert result.exit_code == EXIT_INTERRUPTED, result.output
    assert responses_in(state) == {survey_id: 5}
    said = " ".join(result.stderr.split())
    assert f"interrupted; 5 of 50 responses were recorded and saved to {state}" in said
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_seed_saves_what_it_made_before_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "sandbox.json"
    ctrl_c_on_response(monkeypatch, 30)

    result = runner.invoke(
        app, ["sandbox", "seed", "-f", str(state), "--surveys", "2", "--responses", "20"]
    )

    assert result.exit_code == EXIT_INTERRUPTED, result.output
    assert sum(responses_in(state).values()) == 30
    assert len(SandboxState.load(state).surveys) == 6  # the four built-in and both generated
    said = " ".join(result.stderr.split())
    assert f"and 30 responses made so far were saved to {state}" in said


def test_seed_without_ctrl_c_counts_the_responses_it_made(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    result = runner.invoke(
        app, ["sandbox", "seed", "-f", str(state), "--surveys", "1", "--responses", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "and 15 responses into" in " ".join(result.output.split())
    assert sum(responses_in(state).values()) == 15
