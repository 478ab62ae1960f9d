"""``uvicorn --factory qualflow.web.app:create_app`` given bad settings or no database: the same
one line ``qualflow serve`` prints, a non-zero exit, no traceback, and nothing created."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _uvicorn_factory(tmp_path: Path, settings: dict[str, str]) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUALFLOW_", "QUALTRICS_"))}
    env |= {"QUALFLOW_DATA_DIR": str(tmp_path / "data"), **settings}
    command = [sys.executable, "-m", "uvicorn", "--factory", "qualflow.web.app:create_app"]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(_free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _out, err = server.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        _out, err = server.communicate()
        pytest.fail(f"the server started with settings it should refuse:\n{err}")
    return server.returncode, err


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (
            {"QUALFLOW_INBOUND_EVENTS_RETENTION_DAYS": "-1"},
            "error: invalid settings: QUALFLOW_INBOUND_EVENTS_RETENTION_DAYS",
        ),
        (
            {"QUALFLOW_DATABASE_URL": "mysql://nowhere/hub"},
            "error: invalid settings: QUALFLOW_DATABASE_URL",
        ),
    ],
)
def test_bad_settings_are_one_line_and_a_failed_exit(
    tmp_path: Path, settings: dict[str, str], says: str
) -> None:
    code, stderr = _uvicorn_factory(tmp_path, settings)

    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(says), stderr


def test_a_missing_sqlite_database_without_auto_migrate_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"

    code, stderr = _uvicorn_factory(
        tmp_path,
        {"QUALFLOW_DATABASE_URL": f"sqlite:///{path}", "QUALFLOW_AUTO_MIGRATE": "false"},
    )

    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    errors = [
        line
        for line in stderr.splitlines()
        if line.startswith("ERROR") and "Application startup failed" not in line
    ]
    assert len(errors) == 1, stderr
    assert f"there is no database at {path}; run `qualflow migrate` first" in errors[0], stderr
    assert not path.exists()
