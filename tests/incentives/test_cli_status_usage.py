"""An unknown ``--status`` of 'incentives rewards ls/export' is a usage error, as it is for
'runs ls': one ``error:`` line naming the valid statuses, exit code 2, before any database."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.cli.common import EXIT_USAGE


@pytest.mark.parametrize(
    "args",
    [
        ["incentives", "rewards", "ls", "--status", "bogus"],
        ["incentives", "rewards", "ls", "--status", "held,Bogus"],
        ["incentives", "rewards", "export", "INC-AAAAAA", "-o", "-", "--status", "bogus"],
        ["runs", "ls", "--status", "bogus"],
    ],
)
def test_an_unknown_status_is_a_usage_error(args: list[str], tmp_path: Path) -> None:
    env = {
        "QUALFLOW_DATA_DIR": str(tmp_path / "data"),
        "QUALFLOW_DATABASE_URL": None,
        "QUALFLOW_SECRET_KEYS": None,
    }
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == EXIT_USAGE, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: unknown status"), lines
    assert "bogus" in lines[0]
    assert not (tmp_path / "data").exists()


def test_known_statuses_pass_in_any_case_and_comma_separated() -> None:
    from qualflow.cli.common import parse_statuses
    from qualflow.incentives.models import check_statuses

    assert parse_statuses(["Held, approved", "", "sent"], check_statuses) == [
        "held",
        "approved",
        "sent",
    ]
    assert parse_statuses(None, check_statuses) == []
