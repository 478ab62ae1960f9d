"""Empty response exports (a survey with no responses, a window with none, an incremental
export with nothing new) give valid files with zero rows and the columns a non-empty export of
the survey has, as far as the empty file tells them, in every export and output format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from qualflow.qualtrics._export_json import EMPTY_EXPORT_KEYS
from qualflow.qualtrics.export_file import ColumnKind, ExportFile
from qualflow.qualtrics.export_result import ExportResult
from tests.contract.contract_support import Api, Sandbox, run_cli


def _export(api: Api, survey_id: str, dest: Path, **fields: Any) -> ExportResult:
    result: ExportResult = api(api.client.export_responses(survey_id, dest=dest, **fields))
    return result


def _respond(sandbox: Sandbox, survey_id: str) -> None:
    sandbox.state.record_response(survey_id, {"QID1": 3, "finished": 1})


def _written(result: ExportResult, folder: Path, output: str) -> tuple[int, Path]:
    dest = folder / f"out-{output}.{output}"
    return result.write(dest), dest


def _empty_parquet(result: ExportResult, folder: Path) -> pa.Table:
    """The export written as Parquet, checked to hold zero rows and more than one column."""
    rows, parquet = _written(result, folder, "parquet")
    table = pq.read_table(parquet)
    assert (rows, table.num_rows) == (0, 0)
    assert len(table.schema) > 1
    return table


def _assert_columns_of(empty: pa.Schema, full: pa.Schema) -> None:
    """Every column of the empty export is one the non-empty export has, with its type."""
    by_name = {f.name: f.type for f in full}
    assert [(f.name, by_name.get(f.name)) for f in empty] == [(f.name, f.type) for f in empty]


@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_empty_json_export_has_the_metadata_columns_of_a_full_one(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path, export_format: str
) -> None:
    empty = _export(api, survey_id, tmp_path, format=export_format)
    table = _empty_parquet(empty, tmp_path)
    assert table.schema.names == ["responseId", *EMPTY_EXPORT_KEYS]
    assert {"startDate", "recordedDate", "finished"} <= set(EMPTY_EXPORT_KEYS)

    _respond(sandbox, survey_id)
    full = _export(api, survey_id, tmp_path / "full", format=export_format)
    _assert_columns_of(table.schema, full.schema())
    assert pq.read_table(_written(full, tmp_path, "parquet")[1]).num_rows == 1


@pytest.mark.parametrize("export_format", ["csv", "tsv", "json", "ndjson"])
def test_empty_exports_write_valid_csv_and_ndjson_files(
    api: Api, survey_id: str, tmp_path: Path, export_format: str
) -> None:
    empty = _export(api, survey_id, tmp_path, format=export_format)
    names = empty.schema().names
    assert len(names) > 1

    rows, csv_file = _written(empty, tmp_path, "csv")
    assert rows == 0
    header = pacsv.read_csv(csv_file)
    assert (header.num_rows, header.schema.names) == (0, names)

    rows, ndjson_file = _written(empty, tmp_path, "ndjson")
    assert (rows, ndjson_file.read_bytes()) == (0, b"")


@pytest.mark.parametrize("export_format", ["csv", "json"])
def test_an_empty_window_gives_the_columns_of_the_full_export(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path, export_format: str
) -> None:
    _respond(sandbox, survey_id)
    full = _export(api, survey_id, tmp_path / "full", format=export_format)
    future = datetime.now(UTC) + timedelta(days=30)
    window = _export(api, survey_id, tmp_path, format=export_format, start_date=future)
    table = _empty_parquet(window, tmp_path)
    _assert_columns_of(table.schema, full.schema())
    if export_format == "csv":
        assert table.schema == full.schema()


@pytest.mark.parametrize("export_format", ["csv", "ndjson"])
def test_an_incremental_export_with_nothing_new_is_empty_with_columns(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path, export_format: str
) -> None:
    _respond(sandbox, survey_id)
    first = _export(
        api, survey_id, tmp_path / "first", format=export_format, allow_continuation=True
    )
    token = first.continuation_token
    assert token
    again = _export(api, survey_id, tmp_path, format=export_format, continuation_token=token)
    assert list(again.iter_rows()) == []
    table = _empty_parquet(again, tmp_path)
    _assert_columns_of(table.schema, first.schema())
    assert again.continuation_token


@pytest.mark.parametrize(
    ("output", "said"),
    [
        ("csv", "got the columns and no rows"),
        ("parquet", "got the columns and no rows"),
        ("ndjson", "got nothing (NDJSON has no header line)"),
    ],
)
def test_cli_says_what_an_export_without_responses_wrote(
    env: dict[str, str],
    survey_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    output: str,
    said: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # a short -o, so that no line wraps
    result = run_cli(["q", "export", survey_id, "-o", f"none.{output}"], env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"0 response(s) → none.{output} (")
    assert lines[1] == f"no responses matched: none.{output} {said}"


def test_cli_says_what_an_empty_export_to_stdout_wrote(env: dict[str, str], survey_id: str) -> None:
    result = run_cli(["q", "export", survey_id, "-o", "-", "-f", "csv"], env)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-2:] == [
        "0 response(s) → stdout (csv)",
        "no responses matched: stdout got the columns and no rows",
    ]


@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_column_types_for_questions_do_not_fail_an_incremental_export_with_nothing_new(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path, export_format: str
) -> None:
    """A nightly sync's ``column_types`` name question columns; a JSON export holds only the
    keys its responses answered, so a run with no new responses lacks them."""
    _respond(sandbox, survey_id)
    first = _export(
        api, survey_id, tmp_path / "first", format=export_format, allow_continuation=True
    )
    again = _export(
        api, survey_id, tmp_path, format=export_format, continuation_token=first.continuation_token
    )
    types: dict[str, ColumnKind] = {"QID1": "string", "startDate": "string"}
    for result in (first, again):
        typed = ExportFile(
            result.path, format=result.format, compressed=result.compressed, column_types=types
        )
        schema = typed.schema()
        assert schema.field("startDate").type == pa.string()
        assert typed.write(tmp_path / "typed.parquet") == (1 if result is first else 0)
    assert first.schema().field("QID1").type != pa.string()  # the override changes something
