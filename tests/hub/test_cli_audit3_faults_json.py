"""`qualflow sandbox faults ls --json`: a test harness reads the fault rules (and how many calls
each has hit) and the brand rate limit as JSON on stdout, as the control API answers them,
instead of parsing a table."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.demo.servers import start_server
from qualflow.sandbox import SandboxState, create_app

runner = CliRunner()


@pytest.fixture
def live_sandbox() -> Iterator[tuple[str, SandboxState]]:
    state = SandboxState()
    with start_server(create_app(state), name="sandbox") as server:
        yield server.url, state


def test_faults_ls_json_lists_rules_hits_and_rate_limit(
    live_sandbox: tuple[str, SandboxState],
) -> None:
    url, state = live_sandbox
    _user, token = state.create_user("faults@example.com")

    empty = runner.invoke(app, ["sandbox", "faults", "ls", "--url", url, "--json"])
    assert empty.exit_code == 0, empty.output
    assert empty.stderr == ""
    assert json.loads(empty.stdout) == {"rules": [], "rateLimitPerMinute": None}

    added = runner.invoke(
        app, ["sandbox", "faults", "add", "--url", url, "--path", "/API/v3/surveys*",
              "--status", "503"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    limited = runner.invoke(app, ["sandbox", "faults", "rate-limit", "--url", url, "3000"])
    assert limited.exit_code == 0, limited.output
    assert httpx.get(f"{url}/API/v3/surveys", headers={"X-API-TOKEN": token}).status_code == 503

    listed = runner.invoke(app, ["sandbox", "faults", "ls", "--url", url, "--json"])
    assert listed.exit_code == 0, listed.output
    assert listed.stderr == ""
    faults = json.loads(listed.stdout)
    assert faults["rateLimitPerMinute"] == 3000
    [rule] = faults["rules"]
    assert rule["id"] == int(added.stdout)
    assert rule["path"] == "/API/v3/surveys*"
    assert rule["status"] == 503
    assert rule["hits"] == 1
