"""`qualflow qualtrics …` as a user meets it: a 429 that outlasts the retries says how long
Qualtrics asked to wait, an empty export's conversion ends at 100%, and a typo in the port of
--base-url is bad input (exit 2), not a network failure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qualflow.sandbox.faults import FaultRule
from tests.contract.contract_support import Sandbox
from tests.contract.contract_support import run_cli as _run


def _only_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("retry_after", "shown"), [(500, "8 min 20 s"), (7200, "2 h"), (3725, "1 h 2 min")]
)
def test_a_429_longer_than_the_client_waits_says_how_long_to_wait(
    env: dict[str, str], sandbox: Sandbox, retry_after: int, shown: str
) -> None:
    sandbox.state.faults.add(
        FaultRule(path="/API/v3/whoami", status=429, retry_after=retry_after, count=1)
    )
    result = _run(["q", "whoami"], env)
    assert result.exit_code == 1
    line = _only_line(result.stderr)
    assert line.startswith("error: You have reached the concurrent request limit. (HTTP 429")
    assert line.endswith(f"; Qualtrics asks to wait {shown} before trying again")


def test_an_empty_export_is_converted_to_100_percent(
    env: dict[str, str], survey_id: str, tmp_path: Path
) -> None:
    result = _run(["q", "export", survey_id, "-o", str(tmp_path / "x.csv")], env)
    assert result.exit_code == 0, result.output
    assert "0 response(s)" in result.stdout
    convert = next(line for line in result.stderr.splitlines() if "Convert to csv" in line)
    assert re.search(r"100%\s+0 responses", convert), convert


@pytest.mark.parametrize("port", ["0", "99999"])
def test_an_impossible_port_is_bad_input(env: dict[str, str], port: str) -> None:
    result = _run(["q", "whoami", "--base-url", f"http://127.0.0.1:{port}"], {**env})
    assert result.exit_code == 2
    assert f"port {port}" in _only_line(result.stderr)
