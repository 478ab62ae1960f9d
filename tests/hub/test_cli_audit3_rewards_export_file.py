"""`qualflow incentives rewards export -o FILE` writes respondents' emails and names: a new file
is private (0600), as `qualflow qualtrics export` makes its files, and a file written over is
replaced only once the CSV is complete (it keeps who may read it)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from qualflow.cli import app


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str | None]:
    return {"QUALFLOW_DATA_DIR": str(tmp_path / "data"), "QUALFLOW_DATABASE_URL": None}


def _incentives(env: dict[str, str | None], *args: str) -> Result:
    return CliRunner().invoke(app, ["incentives", *args], env=env)


@pytest.fixture
def incentive(env: dict[str, str | None]) -> str:
    created = _incentives(
        env, "create", "--name", "Panel thanks", "--provider", "manual",
        "--amount", "5", "--currency", "USD",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    return created.stdout.strip()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_export_file_is_private(
    env: dict[str, str | None], incentive: str, tmp_path: Path
) -> None:
    output = tmp_path / "rewards.csv"
    previous = os.umask(0o022)
    try:
        done = _incentives(env, "rewards", "export", incentive, "--output", str(output))
    finally:
        os.umask(previous)
    assert done.exit_code == 0, done.output
    assert output.read_text(encoding="utf-8").startswith("reward,status,email,")
    assert _mode(output) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".qualflow-")] == []


def test_a_file_written_over_keeps_its_mode_and_gets_the_whole_csv(
    env: dict[str, str | None], incentive: str, tmp_path: Path
) -> None:
    output = tmp_path / "rewards.csv"
    output.write_text("old\n", encoding="utf-8")
    output.chmod(0o640)
    done = _incentives(env, "rewards", "export", incentive, "-o", str(output))
    assert done.exit_code == 0, done.output
    assert output.read_text(encoding="utf-8").startswith("reward,status,email,")
    assert _mode(output) == 0o640


def test_a_folder_as_output_is_one_line(
    env: dict[str, str | None], incentive: str, tmp_path: Path
) -> None:
    done = _incentives(env, "rewards", "export", incentive, "-o", str(tmp_path))
    assert done.exit_code == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {tmp_path} is a folder")
