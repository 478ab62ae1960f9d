"""A bad value given to an engine command's option ends in one line naming what is wrong and
exit code 2 (the usage-error code), as typer's own bad values do, before the database is opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualflow.cli.common import EXIT_USAGE
from qualflow.engine.config import default_executor_id
from qualflow.engine.models import RUN_STATUSES
from tests.hub.test_cli_usage_errors import _ran


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(data))
    monkeypatch.delenv("QUALFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("QUALFLOW_SECRET_KEYS", raising=False)
    return data


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["runs", "ls", "--status", "bogus"], "unknown status 'bogus' for --status"),
        (["runs", "ls", "--status", "failed,Bogus"], "unknown status 'bogus' for --status"),
        (
            ["runs", "ls", "--status", "failed", "--status", "nope"],
            "unknown status 'nope' for --status",
        ),
        (
            ["runs", "ls", "--since", "2026-02-01", "--until", "2026-01-01"],
            "--until (2026-01-01T00:00:00+00:00) must be after --since",
        ),
        (
            ["runs", "ls", "--since", "2026-01-01", "--until", "2026-01-01"],
            "must be after --since",
        ),
        (["runs", "recover", "--executor-id", ""], "--executor-id is empty"),
        (["runs", "recover", "--executor-id", "  "], "--executor-id is empty"),
        (
            ["runs", "recover", "--executor-id", default_executor_id()],
            "refusing to recover this very process's executor id",
        ),
        (["worker", "--executor-id", " "], "--executor-id is empty"),
        (["serve", "--executor-id", ""], "--executor-id is empty"),
    ],
)
def test_a_bad_option_value_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], data_dir: Path, args: list[str], says: str
) -> None:
    code, out, err = _ran(capsys, *args)
    assert (code, out) == (EXIT_USAGE, ""), err
    assert err.count("\n") == 1, err
    assert err.startswith("error: ")
    assert says in err
    assert not data_dir.exists()  # refused before the database was opened (or created)


def test_an_unknown_status_names_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    _code, _out, err = _ran(capsys, "runs", "ls", "--status", "bogus")
    for status in RUN_STATUSES:
        assert status in err


def test_good_values_still_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _ran(
        capsys, "runs", "ls", "--status", "FAILED, cancelled", "--since", "2026-01-01"
    )
    assert (code, err) == (0, "")
    assert "No runs match these filters." in out
