"""`qualflow qualtrics …` as a new user meets it: API text and paths shown as they are, one
line on stderr for every failure (no frozen progress bar, no raw retry log, no Python warning
format), errors that name the flag or variable in play, and Ctrl-C reported, not swallowed."""

from __future__ import annotations

import json
import logging
import socket
import types
from pathlib import Path
from typing import Any

import pytest

import qualflow.qualtrics.client as client_module
from qualflow.qualtrics import Client
from tests.contract.contract_support import Sandbox
from tests.contract.contract_support import run_cli as _run


def _only_line(result: Any) -> str:
    """The one line of stderr a failure prints: nothing else, not even a blank line."""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return str(lines[0])


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- API text and paths are shown as they are, never as rich markup ----------------------------


def test_survey_names_and_question_texts_with_brackets_are_shown_verbatim(
    env: dict[str, str], sandbox: Sandbox, survey_id: str
) -> None:
    survey = sandbox.state.surveys[survey_id]
    survey.name = "Pulse [bold]Q3[/] [/]"
    listed = _run(["q", "surveys"], {**env, "COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "Pulse [bold]Q3[/] [/]" in listed.stdout
    shown = _run(["q", "survey", survey_id], {**env, "COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "Pulse [bold]Q3[/] [/]" in shown.stdout


def test_a_bracket_in_a_bad_survey_id_is_a_one_line_error(env: dict[str, str]) -> None:
    result = _run(["q", "survey", "[/]"], env)
    assert result.exit_code == 2, result.output
    assert "'[/]' is not a survey id" in _only_line(result)


def test_export_summary_names_an_output_with_brackets_as_it_is(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    sandbox.state.record_response(survey_id, {"QID1": 1, "finished": 1})
    target = tmp_path / "[bold]x.csv"
    result = _run(["q", "export", survey_id, "-o", str(target)], {**env, "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert target.exists()
    assert f"→ {target} (" in result.stdout


# --- a failed export: the reason alone --------------------------------------------------------


def test_failed_export_leaves_no_frozen_progress_bar(env: dict[str, str], tmp_path: Path) -> None:
    result = _run(["q", "export", "SV_000000000000000", "-o", str(tmp_path / "x.csv")], env)
    assert result.exit_code == 1
    assert _only_line(result).startswith("error: Survey SV_000000000000000 not found")


def test_export_timeout_names_the_option_to_change(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    sandbox.state.config.export_duration = 60
    target = tmp_path / "x.csv"
    result = _run(["q", "export", survey_id, "-o", str(target), "--timeout", "1"], env)
    assert result.exit_code == 1
    line = _only_line(result)
    assert "still inProgress" in line
    assert "--timeout 1" in line
    assert "longer --timeout" in line
    assert not target.exists()


def test_ctrl_c_during_an_export_is_one_line_and_exit_130(
    env: dict[str, str], survey_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "export_responses", interrupted)
    target = tmp_path / "x.parquet"
    target.write_bytes(b"previous export")
    result = _run(["q", "export", survey_id, "-o", str(target)], env)
    assert result.exit_code == 130
    assert _only_line(result) == f"error: export interrupted; {target} is unchanged"
    assert target.read_bytes() == b"previous export"


def test_ctrl_c_in_another_command_says_so(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "whoami", interrupted)
    result = _run(["q", "whoami"], env)
    assert result.exit_code == 130
    assert _only_line(result) == "error: interrupted"


# --- unreachable host: one line naming it; the retries do not fall through to stderr ----------


@pytest.mark.parametrize("command", [["whoami"], ["export", "SV_x", "-o", "x.csv"]])
def test_unreachable_host_is_named_and_retries_are_not_logged_raw(
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    # Without a handler of its own, the CLI's retry notes reached Python's last-resort handler
    # (here: pytest's, on the root logger), which printed each as a raw line on stderr.
    monkeypatch.setattr(client_module, "time", types.SimpleNamespace(sleep=lambda _: None))
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{_closed_port()}"
    env = {"QUALTRICS_API_TOKEN": "t" * 40, "QUALTRICS_BASE_URL": url, "QUALTRICS_DATACENTER": ""}
    with caplog.at_level(logging.WARNING):
        result = _run(["q", *command], env)
    assert result.exit_code == 1
    assert _only_line(result).startswith(f"error: cannot reach {url}: ")
    assert not [r for r in caplog.records if r.name.startswith("qualflow.qualtrics")]


# --- a proxied request: one warning line, in the CLI's terms ----------------------------------


def test_datacenter_notice_is_one_warning_line_naming_the_flag(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    sandbox.state.config.proxy_notice_host = "fra1.qualtrics.com"
    sandbox.state.record_response(survey_id, {"QID1": 1, "finished": 1})
    # An export makes several calls, each with the notice: it is shown once.
    result = _run(["q", "export", survey_id, "-o", str(tmp_path / "x.csv"), "--json"], env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 1
    line = _only_line(result)
    assert line.startswith("warning: Qualtrics: Request proxied.")
    assert "--datacenter fra1" in line
    assert ".py:" not in line


# --- where the account lives: named as the user gave it ---------------------------------------


def test_datacenter_flag_and_base_url_variable_together_name_the_variable(
    env: dict[str, str],
) -> None:
    result = _run(["q", "whoami", "--datacenter", "iad1"], env)
    assert result.exit_code == 2
    line = _only_line(result)
    assert "--datacenter" in line
    assert "QUALTRICS_BASE_URL (set in the environment)" in line


def test_no_location_names_the_flags_and_variables(env: dict[str, str]) -> None:
    result = _run(["q", "whoami"], {**env, "QUALTRICS_BASE_URL": ""})
    assert result.exit_code == 2
    line = _only_line(result)
    for name in ("--datacenter", "QUALTRICS_DATACENTER", "--base-url", "QUALTRICS_BASE_URL"):
        assert name in line


def test_dates_in_the_wrong_order_are_explained_without_pydantic_noise(
    env: dict[str, str], survey_id: str, tmp_path: Path
) -> None:
    args = ["--start-date", "2025-02-01", "--end-date", "2025-01-01"]
    result = _run(["q", "export", survey_id, "-o", str(tmp_path / "x.csv"), *args], env)
    assert result.exit_code == 2
    line = _only_line(result)
    assert "start_date must be before end_date" in line
    assert "Value error" not in line


# --- empty listings say so -------------------------------------------------------------------


def test_no_surveys_is_a_sentence_not_an_empty_table(env: dict[str, str]) -> None:
    result = _run(["q", "surveys"], env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "no surveys: these credentials see none"
    active = _run(["q", "surveys", "--active"], env)
    assert "no active surveys" in active.stdout
    assert "┏" not in active.stdout
