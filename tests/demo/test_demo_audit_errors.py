"""The demo's errors follow the CLI's convention: one ``error: …`` line on stderr, exit 1 (a
usage error: exit 2 and where to read the usage)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from qualflow.cli import run


def test_a_taken_port_is_one_error_line_on_stderr_and_nothing_is_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = run(["demo", "--data-dir", str(tmp_path), "--port", str(port), "--duration", "0"])

    assert code == 1
    stderr = capsys.readouterr().err
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert f"--port {port}" in lines[0]
    # The port is checked before the sandbox is seeded into the data dir.
    assert not (tmp_path / "demo-sandbox.json").exists()


def test_responses_without_tour_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["demo", "--data-dir", str(tmp_path), "--responses", "5", "--duration", "0"])

    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --responses applies to --tour only (see 'qualflow demo --help')"
    )
