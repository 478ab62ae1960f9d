"""`qualflow qualtrics …` and `qualflow sandbox …` as a new user meets them: API text and
paths shown as they are, one line on stderr for every failure (no frozen progress bar, no raw
retry log, no Python warning format, no trailing empty line), errors that name the flag or
variable in play, Ctrl-C reported instead of swallowed, and `sandbox respond --rate` below 1/s
pacing responses instead of sending them all at once."""

from __future__ import annotations

import json
import logging
import types
from pathlib import Path
from typing import Any

import pytest

import qualflow.cli.sandbox_cmd as sandbox_cmd
import qualflow.qualtrics.client as client_module
from qualflow.qualtrics import Client
from tests.contract.contract_support import LoopbackServer, Sandbox, closed_port
from tests.contract.contract_support import run_cli as _run


def _only_line(result: Any) -> str:
    """The one line of stderr a failure prints: nothing else, not even a blank line."""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return str(lines[0])


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
    url = f"http://127.0.0.1:{closed_port()}"
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


# --- qualflow sandbox … ---------------------------------------------------------------------


@pytest.fixture
def live(sandbox: Sandbox, loopback_server: LoopbackServer) -> Any:
    """The sandbox on the loopback port, as `--url` reaches it."""
    loopback_server.target.app = sandbox.app
    yield loopback_server.base_url
    loopback_server.target.app = None


def test_respond_under_one_per_second_sends_one_response_per_tick(
    live: str, sandbox: Sandbox, survey_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch of 200 used to go out at once for any rate below 1/s, followed by one long wait.
    sent: list[int] = []
    waits: list[float] = []
    control = sandbox_cmd._control

    def recording(client: Any, path: str, body: Any = None, method: str = "POST") -> Any:
        if path == "respond":
            sent.append(body["count"])
        return control(client, path, body, method)

    monkeypatch.setattr(sandbox_cmd, "_control", recording)
    monkeypatch.setattr(sandbox_cmd, "_pace", lambda started, due: waits.append(due))
    result = _run(["sandbox", "respond", survey_id, "--url", live, "-n", "3", "-r", "0.5"], {})
    assert result.exit_code == 0, result.output
    assert sent == [1, 1, 1]
    assert waits == [2.0, 4.0]  # and none after the last response
    assert sandbox.state.response_count(survey_id) == 3


def test_respond_takes_the_api_url_a_client_is_given(
    live: str, sandbox: Sandbox, survey_id: str
) -> None:
    result = _run(["sandbox", "respond", survey_id, "--url", f"{live}/API/v3/", "-n", "2"], {})
    assert result.exit_code == 0, result.output
    assert sandbox.state.response_count(survey_id) == 2


def test_sandbox_failures_are_exactly_one_line(live: str) -> None:
    # Off a terminal the (transient) progress display used to add an empty line after it.
    missing = _run(["sandbox", "respond", "SV_000000000000000", "--url", live], {})
    assert missing.exit_code == 1
    assert "not found" in _only_line(missing)
    bracket = _run(["sandbox", "respond", "SV_[/]", "--url", live], {})
    assert bracket.exit_code == 2
    assert "'SV_[/]' is not a survey id" in _only_line(bracket)


def test_unreachable_sandbox_suggests_starting_it() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = _run(["sandbox", "respond", "SV_x", "--url", url], {})
    assert result.exit_code == 1
    assert "is `qualflow sandbox serve` running there?" in _only_line(result)


def test_fault_list_shows_a_glob_with_brackets(live: str) -> None:
    path = "/API/v3/surveys/SV_[ab]*"
    added = _run(["sandbox", "faults", "add", "--url", live, "--path", path, "--status", "503"], {})
    assert added.exit_code == 0, added.output
    listed = _run(["sandbox", "faults", "ls", "--url", live], {"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert path in listed.stdout


def test_ctrl_c_during_respond_says_how_many_were_recorded(
    live: str, sandbox: Sandbox, survey_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    control = sandbox_cmd._control
    calls: list[str] = []

    def interrupted_on_the_second(client: Any, path: str, *args: Any) -> Any:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return control(client, path, *args)

    monkeypatch.setattr(sandbox_cmd, "_control", interrupted_on_the_second)
    monkeypatch.setattr(sandbox_cmd, "_pace", lambda started, due: None)
    result = _run(["sandbox", "respond", survey_id, "--url", live, "-n", "3", "-r", "1"], {})
    assert result.exit_code == 130
    assert _only_line(result) == "error: interrupted; 1 of 3 responses were recorded"
    assert sandbox.state.response_count(survey_id) == 1


def test_ctrl_c_during_an_offline_seed_says_nothing_was_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qualflow.sandbox.respondents import Simulator

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Simulator, "run", interrupted)
    path = tmp_path / "s.json"
    result = _run(["sandbox", "seed", "-f", str(path), "--responses", "5"], {})
    assert result.exit_code == 130
    assert _only_line(result) == f"error: interrupted; nothing was saved to {path}"
    assert not path.exists()


def test_serve_says_how_to_point_the_qualtrics_commands_at_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Stopped:
        def run(self, sockets: Any) -> None:
            pass

    monkeypatch.setattr(sandbox_cmd, "_server", lambda config, state: Stopped())
    result = _run(["sandbox", "serve", "--port", "0", "--no-seed"], {})
    assert result.exit_code == 0, result.output
    url = result.stdout.split("listening on ", 1)[1].split()[0]
    token = result.stdout.split("X-API-TOKEN): ", 1)[1].split()[0]
    assert f"export QUALTRICS_BASE_URL={url} QUALTRICS_API_TOKEN={token}" in result.stdout


# --- help texts say what a flag does -----------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "option", "says"),
    [
        (["q", "whoami"], "--scope", "space-separated"),
        (["q", "export"], "--json", "JSON summary"),
        (["q", "export"], "--timeout", "has not finished the export"),
        (["q", "export"], "--start-date", "UTC unless it names a zone"),
        (["sandbox", "respond"], "--bot-rate", "Q_RecaptchaScore"),
        (["sandbox", "respond"], "--abandon-rate", "partial responses"),
        (["sandbox", "respond"], "--seed", "same answers every run"),
        (["sandbox", "serve"], "--export-duration", "before it completes"),
    ],
)
def test_help_says_what_a_flag_does(command: list[str], option: str, says: str) -> None:
    import typer.main

    from qualflow.cli import app

    group: Any = typer.main.get_command(app)
    for name in command:
        group = group.commands[name]
    (param,) = [p for p in group.params if option in p.opts]
    assert says in (param.help or "")
