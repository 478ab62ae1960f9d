"""`qualflow sandbox …` given bad input: a non-zero exit and a one-line reason, no traceback,
nothing invalid accepted silently."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.sandbox import SandboxState
from qualflow.sandbox.seed import customer_satisfaction

runner = CliRunner()
QUALFLOW = [sys.executable, "-c", "from qualflow.cli import main; main()"]


def sandbox(*args: str) -> Any:
    return runner.invoke(app, ["sandbox", *args])


def sandbox_process(*args: str) -> Any:
    """``qualflow sandbox ARGS`` in a subprocess: for input that, if accepted, would serve or
    seed for a long time (a liveness bound, not a timing check)."""
    proc = subprocess.run([*QUALFLOW, "sandbox", *args], capture_output=True, text=True, timeout=60)
    return SimpleNamespace(
        exit_code=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        output=proc.stdout + proc.stderr,
    )


def one_line_error(result: Any, needle: str, code: int = 1) -> None:
    """The command failed with ``code`` and one ``error: …`` line containing ``needle``."""
    assert result.exit_code == code, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: "), message
    assert needle in message, message
    assert "Traceback" not in result.output


def usage_error(result: Any, needle: str) -> None:
    """Refused by the option's own check (exit 2), naming the option; nothing ran."""
    assert result.exit_code == 2, result.output
    assert needle in result.stderr, result.stderr
    assert "listening" not in result.stdout
    assert "Traceback" not in result.output


# 1. --log-level is a choice, checked before the server starts -------------------------------


def test_bogus_log_level_is_refused_before_serving() -> None:
    usage_error(sandbox_process("serve", "--port", "0", "--log-level", "bogus"), "--log-level")


# 2. the state file's directory must be writable; a failing autosave logs and retries ---------


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_state_file_in_an_unwritable_directory_fails_at_start() -> None:
    result = sandbox_process("serve", "--port", "0", "-f", "/proc/x.json")
    one_line_error(result, "/proc/x.json")
    assert "listening" not in result.stdout


def test_state_file_under_a_file_fails_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = sandbox("seed", "-f", str(blocker / "s.json"))
    one_line_error(result, str(blocker / "s.json"))


def test_a_failing_autosave_logs_one_line_and_keeps_trying(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "dir"
    blocker.write_text("")  # a file where the state file's directory should be
    state = SandboxState(path=blocker / "s.json")
    state.default_user()
    stop = state.start_autosave(0.01)
    try:
        with caplog.at_level(logging.WARNING, logger="qualflow.sandbox"):
            _until(lambda: any("cannot save" in r.getMessage() for r in caplog.records))
            assert state.dirty  # not saved, so still to save
            blocker.unlink()
            blocker.mkdir()
            _until(lambda: (blocker / "s.json").exists())
    finally:
        stop()
    failures = [r for r in caplog.records if "cannot save" in r.getMessage()]
    assert len(failures) == 1
    assert str(blocker / "s.json") in failures[0].getMessage()
    assert "\n" not in failures[0].getMessage()
    assert len(SandboxState.load(blocker / "s.json").users) == 1


def _until(condition: Any) -> None:
    """Wait until ``condition()`` holds (a generous liveness bound, not a timing check)."""
    for _ in range(2000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition never held")


# 3. state files are read with a size cap ------------------------------------------------------


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_file_that_never_ends_fails_at_once() -> None:
    proc = subprocess.run(
        [*QUALFLOW, "sandbox", "seed", "-f", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=60,  # liveness bound: before the fix this read forever
    )
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "/dev/zero" in proc.stderr


def test_a_huge_state_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:  # sparse: takes no disk
        handle.truncate(600 * 1024 * 1024)
    one_line_error(sandbox("seed", "-f", str(path)), "larger than")


# 4. SIGTERM stops a sandbox with a hanging request; hang and latency are bounded --------------


def test_sigterm_stops_the_sandbox_during_a_hang(tmp_path: Path) -> None:
    with subprocess.Popen(
        [*QUALFLOW, "sandbox", "serve", "--port", "0", "--responses", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            url = re.search(r"listening on (http://\S+)", proc.stdout.readline())
            token = re.search(r"X-API-TOKEN\): (\w{40})", proc.stdout.readline())
            assert url is not None
            assert token is not None
            with httpx.Client(base_url=url[1]) as client:
                for _ in range(500):  # uvicorn binds before printing; wait until it accepts
                    try:
                        added = client.post("/_sandbox/faults", json={"hang": 60})
                        break
                    except httpx.ConnectError:
                        threading.Event().wait(0.02)
                assert added.status_code == 200, added.text
            answers: list[Any] = []

            def hanging_request() -> None:
                try:
                    answers.append(
                        httpx.get(
                            f"{url[1]}/API/v3/surveys",
                            headers={"X-API-TOKEN": token[1]},
                            timeout=90,
                        ).status_code
                    )
                except httpx.HTTPError as exc:
                    answers.append(exc)

            caller = threading.Thread(target=hanging_request, daemon=True)
            caller.start()
            _until(lambda: _hits(url[1]) >= 1)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)  # liveness bound; before the fix it outlived the 60 s hang
            caller.join(timeout=15)
            assert not caller.is_alive()
            assert answers  # the hanging call was answered or cut, not left open
            assert proc.stderr is not None
            assert "Traceback" not in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _hits(url: str) -> int:
    rules = httpx.get(f"{url}/_sandbox/faults").json()["result"]["rules"]
    return sum(rule["hits"] for rule in rules)


@pytest.mark.parametrize("option", ["--hang", "--latency"])
def test_an_endless_hang_or_latency_is_refused_by_the_command(option: str) -> None:
    usage_error(sandbox("faults", "add", "--url", "http://127.0.0.1:9", option, "1e308"), option)


@pytest.mark.parametrize(
    "rule",
    [{"hang": 1e308}, {"latency": 301}, {"hang": 300.5}, {"method": "FOO", "status": 500}],
)
def test_the_control_api_refuses_a_bad_fault(
    live_sandbox: tuple[str, SandboxState], rule: dict[str, Any]
) -> None:
    url, state = live_sandbox
    answer = httpx.post(f"{url}/_sandbox/faults", json=rule)
    assert answer.status_code == 400
    assert answer.json()["meta"]["error"]["errorMessage"].startswith("Invalid fault")
    assert not state.faults.rules


# 5. --token is ASCII letters and digits only ---------------------------------------------------


def test_a_non_ascii_token_is_refused() -> None:
    result = sandbox_process("serve", "--port", "0", "--token", "ü" + "a" * 39)
    one_line_error(result, "--token", code=2)  # a usage error


# 6. respond names a missing state file -----------------------------------------------------------


def test_respond_to_a_missing_state_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "nonexistent.json"
    result = sandbox("respond", "SV_abc123", "-f", str(path))
    one_line_error(result, f"state file {path} does not exist")
    assert not path.exists()


# 7. fail-exports needs a real survey; faults add --method an HTTP method ------------------------


def test_fail_exports_refuses_a_malformed_survey_id() -> None:
    result = sandbox("faults", "fail-exports", "--url", "http://127.0.0.1:9", "--survey", "bogus")
    one_line_error(result, "not a survey id", code=2)


def test_fail_exports_refuses_a_survey_the_sandbox_does_not_have(
    live_sandbox: tuple[str, SandboxState],
) -> None:
    url, state = live_sandbox
    result = sandbox("faults", "fail-exports", "--url", url, "--survey", "SV_missing0000000")
    one_line_error(result, "SV_missing0000000")
    assert not state.fail_next_exports
    answer = httpx.post(f"{url}/_sandbox/faults/exports", json={"surveyId": "bogus"})
    assert answer.status_code == 400
    sid = customer_satisfaction(state).id
    ok = sandbox("faults", "fail-exports", "--url", url, "--survey", sid)
    assert ok.exit_code == 0, ok.output
    assert state.fail_next_exports == {sid: 1}


def test_faults_add_refuses_a_method_that_is_not_http(
    live_sandbox: tuple[str, SandboxState],
) -> None:
    url, state = live_sandbox
    usage_error(sandbox("faults", "add", "--url", url, "--status", "500", "--method", "FOO"),
                "--method")  # fmt: skip
    assert not state.faults.rules
    ok = sandbox("faults", "add", "--url", url, "--status", "500", "--method", "post")
    assert ok.exit_code == 0, ok.output
    assert state.faults.rules[0].method == "POST"


# 8. counts have maximums -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["seed", "--surveys", "100000", "--responses", "1", "-f", "{path}"], "--surveys"),
        (["seed", "--surveys", "1", "--responses", "100000", "-f", "{path}"], "--responses"),
        (["serve", "--port", "0", "--responses", "99999999999"], "--responses"),
    ],
)
def test_huge_counts_are_refused_at_once(tmp_path: Path, args: list[str], needle: str) -> None:
    path = tmp_path / "big.json"
    usage_error(sandbox_process(*[a.replace("{path}", str(path)) for a in args]), needle)
    assert not path.exists()


def test_too_many_responses_in_all_are_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    result = sandbox_process("seed", "--surveys", "1000", "--responses", "10000", "-f", str(path))
    one_line_error(result, "responses in all", code=2)
    assert not path.exists()


def test_the_maximums_are_in_the_help() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    assert "at most 1,000" in runner.invoke(app, ["sandbox", "seed", "--help"], env=env).stdout
    assert "at most 10,000" in runner.invoke(app, ["sandbox", "serve", "--help"], env=env).stdout
