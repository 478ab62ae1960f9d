"""``qualflow runs ls --until``: runs created before a moment, parsed like ``--since``, with
one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qualflow.cli import app, run
from tests.engine.test_cli import history, key  # noqa: F401

runner = CliRunner()


def test_until_lists_runs_created_before_it(history: tuple[int, str, str]) -> None:  # noqa: F811
    _automation_id, ok, failed = history

    later = runner.invoke(app, ["runs", "ls", "--until", "2999-01-01", "--json"])
    earlier = runner.invoke(app, ["runs", "ls", "--until", "2000-01-01T00:00:00Z", "--json"])
    window = runner.invoke(
        app, ["runs", "ls", "--since", "2000-01-01", "--until", "2999-01-01", "--json"]
    )
    table = runner.invoke(app, ["runs", "ls", "--until", "2000-01-01"])

    assert later.exit_code == 0, later.output
    assert {r["id"] for r in json.loads(later.output)["items"]} == {ok, failed}
    assert earlier.exit_code == 0, earlier.output
    assert json.loads(earlier.output)["items"] == []
    assert window.exit_code == 0, window.output
    assert {r["id"] for r in json.loads(window.output)["items"]} == {ok, failed}
    assert table.exit_code == 0, table.output
    assert "No runs match these filters." in table.output


def test_bad_until_is_one_error_line(
    history: tuple[int, str, str],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    for args, exit_code, says in (
        (["runs", "ls", "--until", "last tuesday"], 2, "Invalid value for '--until'"),
        (
            ["runs", "ls", "--since", "2026-01-02", "--until", "2026-01-01"],
            2,  # options that contradict each other: a usage error
            "--until (2026-01-01T00:00:00+00:00) must be after --since",
        ),
    ):
        code = run(args, prog_name="qualflow")
        captured = capsys.readouterr()

        assert code == exit_code, captured
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("error: ")
        assert says in lines[0]
        assert captured.out == ""
