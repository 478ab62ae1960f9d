"""`qualflow qualtrics …` given bad or contradictory input: a one-line reason and a non-zero
exit, never a traceback, a silent choice, or a clobbered special file. Run against the sandbox
on a loopback port (or, for an unreachable server, a closed one)."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import types
from pathlib import Path
from typing import Any

import pytest

import qualflow.qualtrics.client as client_module
from qualflow.qualtrics import RetryPolicy
from tests.contract.contract_support import Sandbox, closed_port
from tests.contract.contract_support import run_cli as _run


def _one_line(result: Any) -> str:
    """The single line of stderr a failure must print (and no traceback anywhere)."""
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return str(lines[0])


# --- credentials --------------------------------------------------------------------------------


def test_oauth_token_endpoint_unreachable_is_retried_by_one_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Waits are recorded, not slept: their number is the number of retries made.
    waits: list[float] = []
    monkeypatch.setattr(client_module, "time", types.SimpleNamespace(sleep=waits.append))
    url = f"http://127.0.0.1:{closed_port()}"
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


# --- export: where the responses go -------------------------------------------------------------


def _respond(sandbox: Sandbox, survey_id: str, count: int) -> list[str]:
    return [
        sandbox.state.record_response(survey_id, {"QID1": 1 + i % 5, "finished": 1}).id
        for i in range(count)
    ]


def test_export_writes_through_a_symlink(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    ids = _respond(sandbox, survey_id, 2)
    real = tmp_path / "real" / "responses.csv"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    result = _run(["q", "export", survey_id, "-o", str(link), "-f", "csv"], env)
    assert result.exit_code == 0, result.output
    assert link.is_symlink()
    assert link.resolve() == real.resolve()
    lines = real.read_text().splitlines()
    assert len(lines) == 3
    assert all(response_id in real.read_text() for response_id in ids)
    assert [p.name for p in real.parent.iterdir()] == ["responses.csv"]  # no leftover .part


def test_an_export_over_a_file_keeps_its_mode_and_a_new_one_is_private(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    _respond(sandbox, survey_id, 1)
    shared = tmp_path / "shared.csv"
    shared.write_text("old\n")
    shared.chmod(0o644)
    fresh = tmp_path / "fresh.csv"
    for target in (shared, fresh):
        result = _run(["q", "export", survey_id, "-o", str(target)], env)
        assert result.exit_code == 0, result.output
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_export_writes_into_a_fifo_instead_of_replacing_it(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    ids = _respond(sandbox, survey_id, 3)
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        result = _run(["q", "export", survey_id, "-o", str(fifo), "-f", "csv"], env)
    finally:
        if reader.is_alive() and stat.S_ISFIFO(os.stat(fifo).st_mode):
            # The command never opened the pipe: let the reader go.
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert result.exit_code == 0, result.output
    text = received[0].decode()
    assert text.startswith('"StartDate"')
    assert all(response_id in text for response_id in ids)
    assert [p.name for p in tmp_path.iterdir()] == ["fifo.csv"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_export_into_a_pipe_named_by_a_magic_link(
    env: dict[str, str], sandbox: Sandbox, survey_id: str
) -> None:
    # Like -o /dev/stdout on a pipe: the link resolves to no path ("pipe:[…]"), only opens.
    ids = _respond(sandbox, survey_id, 2)
    read_end, write_end = os.pipe()
    try:
        result = _run(
            ["q", "export", survey_id, "-o", f"/proc/self/fd/{write_end}", "-f", "csv"], env
        )
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    assert result.exit_code == 0, result.output
    assert all(response_id in text for response_id in ids)


def test_export_refuses_a_socket_as_output(
    env: dict[str, str], survey_id: str, tmp_path: Path, sandbox: Sandbox
) -> None:
    path = tmp_path / "out.csv"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        result = _run(["q", "export", survey_id, "-o", str(path)], env)
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert result.exit_code == 2, result.output
    assert "is a socket" in _one_line(result)
    assert not sandbox.state.exports  # refused before any export started


@pytest.mark.skipif(
    not os.path.isdir("/proc/self"), reason="needs procfs, a folder that takes no new files"
)
def test_export_to_a_folder_that_takes_no_files_fails_before_exporting(
    env: dict[str, str], sandbox: Sandbox, survey_id: str
) -> None:
    _respond(sandbox, survey_id, 1)
    # /proc takes no new files, even for root; nothing can be created there.
    result = _run(["q", "export", survey_id, "-o", "/proc/qualflow-test.csv"], env)
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert "/proc/qualflow-test.csv" in line
    assert ".part" not in line
    assert ".qualflow-" not in line
    assert not sandbox.state.exports  # the check came before the export


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_export_to_a_read_only_folder_fails_before_exporting(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = _run(["q", "export", survey_id, "-o", str(folder / "x.csv")], env)
    finally:
        folder.chmod(0o700)
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert str(folder / "x.csv") in line
    assert ".part" not in line
    assert not sandbox.state.exports


# --- export: the format -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("out.csv", "parquet"), ("out.parquet", "csv"), ("out.jsonl", "csv"), ("OUT.NDJSON", "csv")],
)
def test_export_refuses_a_format_that_contradicts_the_extension(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path, name: str, fmt: str
) -> None:
    target = tmp_path / name
    result = _run(["q", "export", survey_id, "-o", str(target), "-f", fmt], env)
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert f"--format {fmt} contradicts the extension of {name!r}" in line
    assert not target.exists()
    assert not sandbox.state.exports


@pytest.mark.parametrize(
    ("name", "args", "fmt"),
    [
        ("out.jsonl", [], "ndjson"),
        ("out.jsonl", ["-f", "ndjson"], "ndjson"),
        ("out.CSV", [], "csv"),
        ("out.txt", ["-f", "csv"], "csv"),  # an extension of no format: --format decides
    ],
)
def test_export_format_agreeing_with_or_named_by_the_extension(
    env: dict[str, str],
    sandbox: Sandbox,
    survey_id: str,
    tmp_path: Path,
    name: str,
    args: list[str],
    fmt: str,
) -> None:
    _respond(sandbox, survey_id, 1)
    target = tmp_path / name
    result = _run(["q", "export", survey_id, "-o", str(target), "--json", *args], env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == fmt


@pytest.mark.parametrize("output", ["/dev/stdout", "redirected"])
def test_export_with_json_refuses_an_output_that_is_stdout_under_another_name(
    tmp_path: Path, output: str
) -> None:
    import subprocess
    import sys

    target = tmp_path / "responses.csv"
    path = str(target) if output == "redirected" else output
    args = ["q", "export", "SV_abc", "-o", path, "--json", "--token", "t"]
    args += ["--base-url", "http://127.0.0.1:9"]
    with target.open("wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "qualflow", *args],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stderr == (
        f"error: --json prints a summary on stdout, where -o {path} writes the responses\n"
    )
    assert target.read_bytes() == b""
