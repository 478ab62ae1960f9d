"""``qualflow incentives review`` starts without the web app: its "no such incentive" answer
(exit code 1, one line) comes from the incentives package itself, not from FastAPI's routers.
Each case runs in a fresh interpreter, as tests/test_cli_startup.py's do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli_startup import _PROBE, _RUNTIME, _loaded


def _review(reference: str, tmp_path: Path) -> tuple[int | None, str, set[str]]:
    """Exit code, stderr and the modules imported by ``incentives review REFERENCE``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("QUALFLOW_", "QUALTRICS_"))
    }
    env["HOME"] = str(tmp_path)
    env["QUALFLOW_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(["incentives", "review", reference])],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=120,
        check=False,
    )
    last = done.stdout.rstrip().rsplit("\n", 1)[-1]
    assert last.startswith("@@"), done.stdout + done.stderr
    result = json.loads(last[2:])
    return result["code"], done.stderr, set(result["modules"])


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("INC-7F3K2Q", "error: incentive INC-7F3K2Q does not exist"),
        (" inc-7f3k2q ", "error: incentive INC-7F3K2Q does not exist"),
        ("nonsense", "error: 'nonsense' is not an incentive reference id (like INC-7F3K2Q)"),
    ],
)
def test_reviewing_a_missing_incentive_imports_no_web_app(
    reference: str, reason: str, tmp_path: Path
) -> None:
    code, stderr, modules = _review(reference, tmp_path)

    assert (code, stderr.splitlines()) == (1, [reason])
    assert _loaded(modules, _RUNTIME) == []
