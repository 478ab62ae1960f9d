"""`qualflow sandbox respond` given numbers or a URL it cannot use: a usage error (exit 2, one
``error:`` line), checked before anything is recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qualflow.sandbox import SandboxState
from qualflow.sandbox.seed import customer_satisfaction

QUALFLOW = [sys.executable, "-c", "from qualflow.cli import main; main()"]


def sandbox(*args: str) -> subprocess.CompletedProcess[str]:
    """``qualflow sandbox ARGS`` as a user runs it (a count accepted by mistake would run for
    hours: the timeout is a liveness bound, not a timing check)."""
    return subprocess.run([*QUALFLOW, "sandbox", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "state.json"
    state = SandboxState(path=path)
    state.default_user()
    sid = customer_satisfaction(state).id
    state.save()
    return path, sid


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--rate", "inf"], id="rate-infinite"),
        pytest.param(["--rate", "1e400"], id="rate-overflows"),
        pytest.param(["--count", "99999999999999999999"], id="count-huge"),
        pytest.param(["--count", "1000001"], id="count-over-the-maximum"),
    ],
)
def test_respond_refuses_numbers_it_cannot_honour(
    seeded: tuple[Path, str], args: list[str]
) -> None:
    path, sid = seeded
    before = path.read_bytes()
    result = sandbox("respond", sid, "-f", str(path), *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize("url", ["localhost:8765", "ftp://127.0.0.1:8765"])
@pytest.mark.parametrize("command", [["respond", "SV_abc", "-n", "1"], ["seed"], ["faults", "ls"]])
def test_a_url_that_is_not_http_is_a_usage_error(url: str, command: list[str]) -> None:
    result = sandbox(*command, "--url", url)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --url must be an http(s) URL, got {url!r}"
    ]
