"""Output that cannot be written (stdout on a full disk, ``> /dev/full``) ends the command with
one ``error: …`` line on stderr and exit code 1, in every group, instead of an OSError
traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEV_FULL = Path("/dev/full")


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize(
    "args",
    [
        ["version"],
        ["users", "ls", "--json"],
        ["runs", "ls"],
        ["incentives", "ls", "--json"],
    ],
)
def test_stdout_on_a_full_disk_is_one_line_not_a_traceback(tmp_path: Path, args: list[str]) -> None:
    env = {**os.environ, "QUALFLOW_DATA_DIR": str(tmp_path / "data")}
    env.pop("QUALFLOW_DATABASE_URL", None)
    with DEV_FULL.open("w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "qualflow", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines == ["error: cannot write the output: No space left on device"], done.stderr
