"""`qualflow qualtrics …` given bad or contradictory input: a one-line reason and a non-zero
exit, never a traceback, a silent choice, or a clobbered special file. Run against the sandbox
on a loopback port (or, for an unreachable server, a closed one)."""

from __future__ import annotations

import socket
import types
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

import qualflow.qualtrics.client as client_module
from qualflow.cli import app
from qualflow.qualtrics import RetryPolicy
from tests.contract.contract_support import LoopbackServer, Sandbox


@pytest.fixture
def env(sandbox: Sandbox, loopback_server: LoopbackServer) -> Iterator[dict[str, str]]:
    loopback_server.target.app = sandbox.app
    yield {
        "QUALTRICS_BASE_URL": loopback_server.base_url,
        "QUALTRICS_API_TOKEN": sandbox.token,
        "QUALTRICS_DATACENTER": "",
        "QUALTRICS_CLIENT_ID": "",
        "QUALTRICS_CLIENT_SECRET": "",
    }
    loopback_server.target.app = None


def _run(args: list[str], env: dict[str, str]) -> Any:
    return CliRunner().invoke(app, args, env=env)


def _one_line(result: Any) -> str:
    """The single line of stderr a failure must print (and no traceback anywhere)."""
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return str(lines[0])


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- credentials --------------------------------------------------------------------------------


def test_oauth_token_endpoint_unreachable_is_retried_by_one_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Waits are recorded, not slept: their number is the number of retries made.
    waits: list[float] = []
    monkeypatch.setattr(client_module, "time", types.SimpleNamespace(sleep=waits.append))
    url = f"http://127.0.0.1:{_closed_port()}"
    result = _run(
        ["q", "whoami", "--base-url", url, "--client-id", "abc", "--client-secret", "x"],
        {"QUALTRICS_API_TOKEN": "", "QUALTRICS_DATACENTER": "", "QUALTRICS_BASE_URL": ""},
    )
    assert result.exit_code == 1, result.output
    line = _one_line(result)
    assert "token endpoint" in line
    assert "could not be reached" in line
    # One retry policy for the token request, not one inside another.
    assert len(waits) == RetryPolicy().max_attempts - 1


def test_token_and_oauth_credentials_together_are_refused(env: dict[str, str]) -> None:
    result = _run(["q", "whoami", "--token", "T", "--client-id", "a", "--client-secret", "b"], env)
    assert result.exit_code == 2, result.output
    assert "not both" in _one_line(result)


def test_token_from_the_environment_and_oauth_flags_are_refused(env: dict[str, str]) -> None:
    result = _run(["q", "whoami", "--client-id", "a", "--client-secret", "b"], env)
    assert result.exit_code == 2, result.output
    assert "QUALTRICS_API_TOKEN" in _one_line(result)
