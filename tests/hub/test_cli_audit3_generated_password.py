"""`qualflow users create --generate-password` shows the password once: when it cannot be shown
(stdout on a full disk), the person is not created either, instead of an account whose
password nobody ever saw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DEV_FULL = Path("/dev/full")


def _qualflow(env: dict[str, str], *args: str, stdout: int | object = subprocess.PIPE) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "qualflow", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full (Linux)")
def test_a_password_that_cannot_be_shown_creates_nobody(tmp_path: Path) -> None:
    env = {**os.environ, "QUALFLOW_DATA_DIR": str(tmp_path / "data")}
    env.pop("QUALFLOW_DATABASE_URL", None)
    args = ("users", "create", "--email", "ada@example.com", "--name", "Ada")
    with DEV_FULL.open("w") as full:
        failed = _qualflow(env, *args, "--generate-password", stdout=full)
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr == "error: cannot write the output: No space left on device\n"

    listed = _qualflow(env, "users", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []

    again = _qualflow(env, *args, "--generate-password")
    assert again.returncode == 0, again.stderr
    assert "password: " in again.stdout
