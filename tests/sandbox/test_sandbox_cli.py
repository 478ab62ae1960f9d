"""`qualflow sandbox serve|seed|respond` through typer's CliRunner (and one real server)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.sandbox import SandboxState

runner = CliRunner()


def test_seed_into_state_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    result = runner.invoke(
        app, ["sandbox", "seed", "--surveys", "3", "--responses", "5", "--state-file", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "seeded 7 surveys and 35 responses" in result.stdout
    state = SandboxState.load(path)
    assert len(state.surveys) == 7
    assert sum(state.response_count(s) for s in state.surveys) == 35
    assert state.default_user()[0].api_token


def test_seeding_again_reuses_the_built_in_surveys(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    args = ["sandbox", "seed", "--responses", "2", "--state-file", str(path)]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args[:-2], "--surveys", "1", "--state-file", str(path)])
    assert result.exit_code == 0, result.output
    assert "seeded 5 surveys (1 new, 4 already there) and 10 responses" in result.stdout
    state = SandboxState.load(path)
    names = [survey.name for survey in state.surveys.values()]
    assert len(names) == 5
    assert len(set(names)) == 5
    # The built-in surveys got their responses on both runs.
    assert sum(state.response_count(s) for s in state.surveys) == 8 + 10


def test_respond_into_state_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    runner.invoke(app, ["sandbox", "seed", "--state-file", str(path)])
    sid = next(iter(SandboxState.load(path).surveys))
    result = runner.invoke(
        app, ["sandbox", "respond", sid, "--count", "40", "--seed", "3", "--state-file", str(path)]
    )
    assert result.exit_code == 0, result.output
    match = re.search(r"(\d+) completed and (\d+) partial", result.stdout)
    assert match is not None
    assert int(match[1]) + int(match[2]) == 40
    assert SandboxState.load(path).response_count(sid) == 40


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["respond", "SV_missing0000000", "--state-file", "{path}"], "SV_missing0000000"),
        (["respond", "nope", "--state-file", "{path}"], "not a survey id"),
        (["respond", "SV_x"], "--state-file"),
        (["respond", "SV_x", "--state-file", "{path}", "--url", "http://x"], "not both"),
        (["seed", "--no-builtin", "--state-file", "{path}"], "nothing to seed"),
        (["seed", "--url", "ftp://x"], "http"),
        (["seed", "--url", "http://[::1"], "--url is not a sandbox URL"),
        (["seed", "--url", "http://127.0.0.1:9?x=1"], "query"),
        (["serve", "--token", "short"], "--token"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    path = tmp_path / "s.json"
    argv = ["sandbox", *[a.replace("{path}", str(path)) for a in args]]
    result = runner.invoke(app, argv)
    assert result.exit_code != 0
    message = result.stderr.strip()
    assert needle in message
    assert len(message.splitlines()) == 1


def test_garbage_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("[]")
    result = runner.invoke(app, ["sandbox", "seed", "--state-file", str(path)])
    assert result.exit_code == 1
    assert "cannot load sandbox state" in result.stderr


def test_seed_and_respond_against_a_running_sandbox(live_sandbox: tuple[str, SandboxState]) -> None:
    url, state = live_sandbox
    result = runner.invoke(
        app, ["sandbox", "seed", "--url", url, "--surveys", "2", "--responses", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "seeded 6 surveys and 18 responses" in result.stdout
    again = runner.invoke(app, ["sandbox", "seed", "--url", url])
    assert again.exit_code == 0, again.output
    assert "seeded 4 surveys (0 new, 4 already there)" in again.stdout
    assert len(state.surveys) == 6
    sid = next(iter(state.surveys))
    result = runner.invoke(
        app, ["sandbox", "respond", sid, "--url", url, "--count", "25", "--rate", "1000"]
    )
    assert result.exit_code == 0, result.output
    assert state.response_count(sid) == 3 + 25
    missing = runner.invoke(app, ["sandbox", "respond", "SV_missing0000000", "--url", url])
    assert missing.exit_code == 1
    assert "SV_missing0000000" in missing.stderr


def test_faults_from_the_command_line(live_sandbox: tuple[str, SandboxState]) -> None:
    url, state = live_sandbox
    _user, token = state.create_user("faults@example.com")

    def sandbox(*args: str) -> Any:
        return runner.invoke(app, ["sandbox", "faults", *args, "--url", url])

    added = sandbox("add", "--path", "/API/v3/surveys*", "--status", "429", "--retry-after",
                    "3", "--count", "1")  # fmt: skip
    assert added.exit_code == 0, added.output
    rule_id = added.stdout.strip()
    answer = httpx.get(f"{url}/API/v3/surveys", headers={"X-API-TOKEN": token})
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    assert httpx.get(f"{url}/API/v3/surveys", headers={"X-API-TOKEN": token}).status_code == 200
    listed = runner.invoke(app, ["sandbox", "faults", "ls", "--url", url], env={"COLUMNS": "150"})
    row = next(line for line in listed.stdout.splitlines() if "/API/v3/surveys*" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        rule_id,
        "any",
        "/API/v3/surveys*",
        "429",
        "1",
        "3 s",
        "0 s",
        "0 s",
        "0",
        "1",
    ]
    assert "brand rate limit: off" in listed.stderr

    refused = sandbox("add", "--status", "418")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        "error: Invalid fault: status must be one of (429, 500, 503, 504)."
    )
    # Each change says what it did, as `add` prints the new rule's id.
    limited = sandbox("rate-limit", "3000")
    assert limited.exit_code == 0
    assert limited.stdout == "brand rate limit: 3000 requests per minute\n"
    assert state.faults.rate_limit_per_minute == 3000
    assert sandbox("rate-limit").exit_code == 2
    assert sandbox("rate-limit", "1000001").exit_code == 2  # a typo, never a limit
    assert sandbox("rate-limit", "--off").stdout == "brand rate limit: off\n"
    assert state.faults.rate_limit_per_minute is None
    assert sandbox("fail-exports", "--count", "2").stdout == "the next 2 export(s) will fail\n"
    assert sandbox("rm", rule_id).stdout == f"removed fault rule {rule_id}\n"
    assert sandbox("rm", rule_id).exit_code == 1
    cleared = sandbox("clear")
    assert cleared.stdout == "removed every fault rule and pending export failure\n"
    assert "no fault rules" in sandbox("ls").stderr
    assert not state.fail_next_exports


def test_unreachable_url_is_a_clear_error() -> None:
    result = runner.invoke(app, ["sandbox", "respond", "SV_x", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the sandbox" in result.stderr


def test_serve_prints_url_and_token_and_serves(tmp_path: Path) -> None:
    path = tmp_path / "served.json"
    with subprocess.Popen(
        [
            sys.executable, "-c", "from qualflow.cli import main; main()",
            "sandbox", "serve", "--port", "0", "--state-file", str(path), "--responses", "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:  # fmt: skip
        try:
            _check_served(proc)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    assert len(SandboxState.load(path).surveys) == 4


def _check_served(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    first = proc.stdout.readline()
    url = re.search(r"listening on (http://\S+)", first)
    assert url is not None, first + (proc.stderr.read() if proc.stderr else "")
    token = re.search(r"X-API-TOKEN\): (\w{40})", proc.stdout.readline())
    assert token is not None
    with httpx.Client(base_url=url[1], headers={"X-API-TOKEN": token[1]}) as client:
        for _ in range(500):  # uvicorn binds before printing; wait until it accepts
            try:
                surveys = client.get("/API/v3/surveys")
                break
            except httpx.ConnectError:
                threading.Event().wait(0.02)
        assert surveys.status_code == 200
        assert len(surveys.json()["result"]["elements"]) == 4
