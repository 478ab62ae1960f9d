"""One check of a run listing's filters (status, since, until), shared by ``Runs.query`` and
``qualflow runs ls``, in a module that loads none of the tables nor the database layer, so the
command refuses a bad value before any of them is imported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qualflow.engine import models
from qualflow.engine.run_filters import RUN_STATUSES, check_run_filters


def test_the_check_loads_no_database_layer() -> None:
    probe = (
        "import json, sys; import qualflow.engine.run_filters; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(done.stdout)
    assert [m for m in loaded if m.startswith(("qualflow.store", "dbos", "alembic"))] == []
    assert [m for m in loaded if m.startswith(("qualflow.engine.models", "qualflow.web"))] == []


def test_the_models_statuses_are_the_checked_ones() -> None:
    assert models.RUN_STATUSES is RUN_STATUSES


def test_bounds_without_an_offset_are_utc() -> None:
    checked = check_run_filters(["failed"], datetime(2026, 1, 1), None)
    assert checked.statuses == ["failed"]
    assert checked.since == datetime(2026, 1, 1, tzinfo=UTC)
    assert checked.until is None


@pytest.mark.parametrize(
    ("status", "since", "until", "as_options", "says"),
    [
        (["bogus"], None, None, False, "unknown status 'bogus'; one of queued, running"),
        (["bogus"], None, None, True, "unknown status 'bogus' for --status: one of queued"),
        (
            [],
            datetime(2026, 2, 1),
            datetime(2026, 1, 1),
            False,
            "until (2026-01-01T00:00:00+00:00) must be after since (2026-02-01T00:00:00+00:00)",
        ),
        (
            [],
            datetime(2026, 1, 1),
            datetime(2026, 1, 1),
            True,
            "--until (2026-01-01T00:00:00+00:00) must be after --since (2026-01-01T00:00:00+00:00)",
        ),
    ],
)
def test_a_bad_filter_is_refused_in_the_caller_s_words(
    status: list[str],
    since: datetime | None,
    until: datetime | None,
    as_options: bool,
    says: str,
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(says)):
        check_run_filters(status, since, until, as_options=as_options)


def test_one_status_may_be_given_alone() -> None:
    assert check_run_filters("queued", None, None).statuses == ["queued"]
    assert check_run_filters(None, None, None).statuses == []


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "ls", "--status", "bogus"],
        ["runs", "ls", "--since", "2026-02-01", "--until", "2026-01-01"],
    ],
)
def test_runs_ls_refuses_a_bad_filter_before_loading_the_tables(
    args: list[str], tmp_path: Path
) -> None:
    probe = (
        "import json, sys; from qualflow.cli import run; "
        "code = run(json.loads(sys.argv[1]), prog_name='qualflow'); "
        "print('@@' + json.dumps([code, sorted(sys.modules)]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUALFLOW_")}
    env["QUALFLOW_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    code, loaded = json.loads(done.stdout.rsplit("@@", 1)[-1])
    assert code == 2, done.stderr
    assert done.stderr.startswith("error: "), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert [m for m in loaded if m.startswith(("qualflow.engine.models", "qualflow.store"))] == []
    assert not (tmp_path / "data").exists()
