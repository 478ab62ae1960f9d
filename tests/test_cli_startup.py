"""The command line starts without importing what only some commands need: each case runs in a
fresh interpreter and reads ``sys.modules`` after the command ran."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

#: Heavy packages no help page, nor ``version``, needs.
HEAVY = ("dbos", "pyarrow", "alembic", "uvicorn", "fastapi", "pandas", "jinja2")
#: What a command outside the hub's engine and database must not import either.
HUB = ("dbos", "alembic", "uvicorn", "fastapi", "qualflow.web", "qualflow.engine", "qualflow.store")

_PROBE = """
import json, sys
from qualflow.cli import run
code = run(json.loads(sys.argv[1]), prog_name="qualflow") if sys.argv[1] != "null" else None
print()
print("@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _probe(args: list[str] | None, tmp_path: Path) -> tuple[int | None, set[str]]:
    code, _stderr, modules = run_probe(args, tmp_path)
    return code, modules


def run_probe(args: list[str] | None, tmp_path: Path) -> tuple[int | None, str, set[str]]:
    """Exit code, stderr and the modules imported by ``qualflow ARGS`` (None: importing the CLI
    only) in a fresh interpreter."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("QUALFLOW_", "QUALTRICS_"))
    }
    env["HOME"] = str(tmp_path)
    env["QUALFLOW_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
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


def _loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(
        package
        for package in packages
        if any(name == package or name.startswith(package + ".") for name in modules)
    )


def test_importing_the_cli_imports_no_heavy_package(tmp_path: Path) -> None:
    _, modules = _probe(None, tmp_path)
    assert _loaded(modules, HEAVY + HUB) == []


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["version"],
        ["q", "--help"],
        ["qualtrics", "export", "--help"],
        ["sandbox", "--help"],
        ["sandbox", "faults", "--help"],
        ["demo", "--help"],
        ["migrate", "--help"],
        ["users", "--help"],
        ["secrets", "--help"],
        ["connections", "--help"],
        ["serve", "--help"],
        ["worker", "--help"],
        ["runs", "--help"],
        ["runs", "ls", "--help"],
        ["automations", "--help"],
        ["incentives", "--help"],
        ["incentives", "rewards", "ls", "--help"],
    ],
)
def test_help_and_version_import_no_heavy_package(args: list[str], tmp_path: Path) -> None:
    code, modules = _probe(args, tmp_path)
    assert code == 0
    assert _loaded(modules, HEAVY + HUB) == []


def test_a_qualtrics_command_imports_neither_engine_nor_web_app(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code, modules = _probe(["q", "surveys", "--base-url", url, "--token", "t"], tmp_path)
    assert code == 1
    assert _loaded(modules, (*HUB, "pyarrow", "pandas", "jinja2", "sqlalchemy")) == []


def test_a_sandbox_command_imports_neither_engine_nor_database(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code, modules = _probe(["sandbox", "faults", "ls", "--url", url], tmp_path)
    assert code == 1
    assert _loaded(modules, (*HUB, "pyarrow", "sqlalchemy")) == []


def test_runs_ls_with_a_bad_status_imports_no_engine_runtime_nor_web_app(tmp_path: Path) -> None:
    code, modules = _probe(["runs", "ls", "--status", "bogus"], tmp_path)
    assert code == 2
    assert _loaded(modules, ("dbos", "uvicorn", "fastapi", "pyarrow", "qualflow.web")) == []


def test_the_runs_ls_help_names_the_engine_s_run_statuses() -> None:
    from qualflow.cli import engine_cmd
    from qualflow.engine.models import RUN_STATUSES

    assert f"{', '.join(RUN_STATUSES)}. Default: all." in engine_cmd._RUNS_LS_STATUS_HELP


#: What an incentives command that only reads or writes the database must not import: the
#: engine's runtime, the web server and the web app (``incentives.send_reward`` is registered
#: by the engine's action registry when asked for, not by importing ``qualflow.incentives``).
_RUNTIME = ("dbos", "uvicorn", "fastapi", "qualflow.web")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["incentives", "ls"], 0),
        (["incentives", "show", "INC-7F3K2Q"], 1),
        (["incentives", "rewards", "ls"], 0),
        (["incentives", "rewards", "ls", "--status", "bogus"], 2),
        (["incentives", "pools", "ls"], 0),
    ],
)
def test_an_incentives_database_command_imports_no_engine_runtime_nor_web_app(
    args: list[str], expected: int, tmp_path: Path
) -> None:
    code, modules = _probe(args, tmp_path)
    assert code == expected
    assert _loaded(modules, _RUNTIME) == []


def test_the_engine_knows_the_incentives_action_without_importing_incentives_first() -> None:
    probe = (
        "from qualflow.engine.actions import get_action, registered_actions\n"
        "assert 'incentives.send_reward' in [a.name for a in registered_actions()]\n"
        "print(get_action('incentives.send_reward').func.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "qualflow.incentives.action"
