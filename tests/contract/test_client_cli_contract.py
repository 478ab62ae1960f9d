"""`qualflow qualtrics …` against the sandbox on a loopback port."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.contract.contract_support import Sandbox
from tests.contract.contract_support import run_cli as _run


def _respond(sandbox: Sandbox, survey_id: str, count: int) -> list[str]:
    return [
        sandbox.state.record_response(survey_id, {"QID1": 1 + i % 5, "finished": 1}).id
        for i in range(count)
    ]


def test_whoami_json(env: dict[str, str], sandbox: Sandbox) -> None:
    result = _run(["qualtrics", "whoami", "--json"], env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["userId"] == sandbox.user_id


def test_whoami_table(env: dict[str, str], sandbox: Sandbox) -> None:
    result = _run(["q", "whoami"], env)
    assert result.exit_code == 0, result.output
    assert sandbox.user_id in result.stdout
    assert "contract.tester@example.com" in result.stdout


def test_surveys_json_and_table(env: dict[str, str], survey_id: str) -> None:
    result = _run(["q", "surveys", "--json"], env)
    assert result.exit_code == 0, result.output
    assert [s["id"] for s in json.loads(result.stdout)] == [survey_id]
    table = _run(["q", "surveys"], env)
    assert table.exit_code == 0
    assert survey_id in table.stdout


def test_survey_details(env: dict[str, str], survey_id: str, sandbox: Sandbox) -> None:
    _respond(sandbox, survey_id, 2)
    result = _run(["q", "survey", survey_id, "--json"], env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["id"] == survey_id
    assert data["responseCounts"]["auditable"] == 2
    table = _run(["q", "survey", survey_id], env)
    assert "2 recorded" in table.stdout
    assert "QID3" in table.stdout


def test_unknown_survey_is_one_line_exit_1(env: dict[str, str]) -> None:
    result = _run(["q", "survey", "SV_000000000000000"], env)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "not found" in lines[0].lower()
    assert "HTTP 404" in lines[0]


def test_bad_token_is_one_line_exit_1(env: dict[str, str]) -> None:
    result = _run(["q", "whoami"], {**env, "QUALTRICS_API_TOKEN": "wrong-token-000000000000"})
    assert result.exit_code == 1
    assert "Unrecognized X-API-TOKEN" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ndjson"])
def test_export_to_each_format(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path, fmt: str
) -> None:
    ids = _respond(sandbox, survey_id, 3)
    target = tmp_path / f"out.{fmt}"
    result = _run(["q", "export", survey_id, "--format", fmt, "-o", str(target), "--json"], env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 3
    assert summary["format"] == fmt
    if fmt == "parquet":
        table = pq.read_table(target)
        assert table.column("ResponseId").to_pylist() == ids
    elif fmt == "ndjson":
        lines = target.read_text().splitlines()
        assert [json.loads(line)["ResponseId"] for line in lines] == ids
    else:
        assert target.read_text().splitlines()[0].startswith('"StartDate","EndDate"')
        assert len(target.read_text().splitlines()) == 4  # one header row, three responses


def test_export_with_labels_and_incremental_token(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    _respond(sandbox, survey_id, 2)
    first = tmp_path / "first.parquet"
    result = _run(
        ["q", "export", survey_id, "-o", str(first), "--labels", "--incremental", "--json"], env
    )
    assert result.exit_code == 0, result.output
    token = json.loads(result.stdout)["continuationToken"]
    assert token
    assert pq.read_table(first).column("Q1_label").to_pylist() == [
        "Extremely dissatisfied",
        "Somewhat dissatisfied",
    ]
    newer = _respond(sandbox, survey_id, 1)
    second = tmp_path / "second.parquet"
    result = _run(
        ["q", "export", survey_id, "-o", str(second), "--continuation-token", token, "--json"],
        env,
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(second).column("ResponseId").to_pylist() == newer


def test_export_shows_progress_then_a_summary(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    _respond(sandbox, survey_id, 1)
    result = _run(["q", "export", survey_id, "-o", str(tmp_path / "x.parquet")], env)
    assert result.exit_code == 0, result.output
    assert "Download" in result.stderr
    assert "Convert to parquet" in result.stderr
    # Each task counts in its own unit: the conversion in responses, not in "bytes".
    assert "1 responses" in result.stderr
    assert "1/1 bytes" not in result.stderr
    assert "1 response(s)" in result.stdout


def test_export_to_stdout_with_a_dash(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    ids = _respond(sandbox, survey_id, 3)
    result = _run(["q", "export", survey_id, "-o", "-", "--format", "csv"], env)
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert '"ResponseId"' in header
    assert sorted(row.split(",")[header.split(",").index('"ResponseId"')].strip('"')
                  for row in rows) == sorted(ids)  # fmt: skip
    assert "3 response(s) → stdout (csv)" in result.stderr
    assert not (Path.cwd() / "-").exists()

    parquet = _run(["q", "export", survey_id, "-o", "-"], env)  # no extension: Parquet
    assert parquet.exit_code == 0, parquet.output
    (tmp_path / "piped.parquet").write_bytes(parquet.stdout_bytes)
    assert pq.read_table(tmp_path / "piped.parquet").num_rows == 3

    both = _run(["q", "export", survey_id, "-o", "-", "--json"], env)
    assert both.exit_code == 2
    assert "--json prints a summary on stdout" in both.stderr


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--start-date", "yesterday"], "--start-date"),
        (["--start-date", "2025-02-01", "--end-date", "2025-01-01"], "start_date"),
        (["-o", "/no/such/folder/x.parquet"], "does not exist"),
        (["-o", "responses.xlsx"], "cannot tell the format from 'responses.xlsx'"),
    ],
)
def test_export_bad_input(
    env: dict[str, str], survey_id: str, tmp_path: Path, args: list[str], reason: str
) -> None:
    base = ["q", "export", survey_id]
    if "-o" not in args:
        base += ["-o", str(tmp_path / "x.parquet")]
    result = _run(base + args, env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert reason in lines[0]


def test_failed_export_is_one_line(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    sandbox.state.fail_exports(survey_id)
    target = tmp_path / "x.parquet"
    result = _run(["q", "export", survey_id, "-o", str(target)], env)
    assert result.exit_code == 1
    assert "failed" in result.stderr.splitlines()[-1]
    assert not target.exists()


def test_export_splits_multi_answers_unless_asked_to_join_them(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    sandbox.state.record_response(survey_id, {"QID1": 2, "QID4": ["1", "3"], "finished": 1})
    split = tmp_path / "split.parquet"
    result = _run(["q", "export", survey_id, "-o", str(split), "--labels"], env)
    assert result.exit_code == 0, result.output
    (row,) = pq.read_table(split).to_pylist()
    assert [row[f"Q4_{i}"] for i in range(1, 6)] == [1, None, 3, None, None]
    assert row["Q4_3_label"] == "Returns"
    assert "Q4" not in row

    joined = tmp_path / "joined.parquet"
    result = _run(
        ["q", "export", survey_id, "-o", str(joined), "--labels", "--join-multi-answers"], env
    )
    assert result.exit_code == 0, result.output
    (row,) = pq.read_table(joined).to_pylist()
    assert (row["Q4"], row["Q4_label"]) == ("1,3", "Billing,Returns")
    assert "Q4_1" not in row

    refused = _run(
        ["q", "export", survey_id, "-o", str(joined), "--qualtrics-format", "json",
         "--join-multi-answers"],
        env,
    )  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.strip() == (
        "error: --join-multi-answers applies to CSV and TSV exports; a json export always "
        "keeps a multi-answer question's codes in one list"
    )


def test_export_a_subset_in_a_time_zone_through_a_saved_filter(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    state = sandbox.state
    kept = state.record_response(
        survey_id,
        {"QID1": 4, "QID5_TEXT": "More sizes", "customer_id": "C-1", "finished": 1,
         "recordedDate": "2025-06-01T12:00:00Z"},
    ).id  # fmt: skip
    state.record_response(survey_id, {"QID1": 2, "finished": 0})  # the filter leaves it out
    saved = state.surveys[survey_id].filters[0].filter_id  # "Finished responses"
    target = tmp_path / "subset.parquet"
    result = _run(
        ["q", "export", survey_id, "-o", str(target), "--question", "QID1", "--question",
         "QID5", "--embedded-data", "customer_id", "--time-zone", "Europe/Berlin",
         "--filter", saved],
        env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pq.read_table(target)
    (row,) = table.to_pylist()
    assert row["ResponseId"] == kept
    assert (row["Q1"], row["Q5"], row["customer_id"]) == (4, "More sizes", "C-1")
    assert not any(name.startswith(("Q2", "Q3", "Q4")) for name in table.column_names)
    # Written in Berlin's wall-clock time by Qualtrics, read back as the same instant.
    assert row["RecordedDate"].isoformat() == "2025-06-01T12:00:00+00:00"

    bad_zone = _run(
        ["q", "export", survey_id, "-o", str(target), "--time-zone", "Mars/Olympus"], env
    )
    assert bad_zone.exit_code == 2, bad_zone.output
    assert bad_zone.stderr.strip() == (
        "error: --time-zone 'Mars/Olympus' is not an IANA time zone (e.g. UTC, Europe/Berlin)"
    )
    unknown = _run(["q", "export", survey_id, "-o", str(target), "--question", "QID99"], env)
    assert unknown.exit_code == 1, unknown.output
    assert "QID99" in unknown.stderr
