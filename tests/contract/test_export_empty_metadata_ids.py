"""Told the request's ``surveyMetadataIds``, the JSON/NDJSON reader gives an empty export the
metadata columns (and kinds) a non-empty sandbox export of the same request has, not every
metadata column; ``export_responses`` passes them (and ``sortByLastModifiedDate``, which adds
``lastModifiedDate``) through, so what it writes matches too."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from qualflow.qualtrics import _export_json as json_reader
from qualflow.qualtrics._export_io import list_members
from qualflow.qualtrics.export_result import ExportResult
from tests.contract.contract_support import Api, Sandbox

# externalReference is how surveyMetadataIds spells the externalDataReference key.
_REQUESTED = ["finished", "recordedDate", "externalReference", "startDate", "status"]


def _export(api: Api, survey_id: str, dest: Path, **fields: Any) -> ExportResult:
    result: ExportResult = api(
        api.client.export_responses(survey_id, dest=dest, survey_metadata_ids=_REQUESTED, **fields)
    )
    return result


def _nothing_recorded_since_tomorrow() -> dict[str, datetime]:
    """An export window (start_date, end_date) no response can fall in: an empty export."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    return {"start_date": tomorrow, "end_date": tomorrow + timedelta(days=1)}


def _metadata_columns(result: ExportResult) -> list[tuple[str, str]]:
    """``(name, kind)`` of the value columns that are no question's, in file order (label
    columns cannot be known without a response)."""
    return [
        (c.name, c.kind) for c in result.columns if not c.is_label and not c.name.startswith("QID")
    ]


@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_empty_export_with_survey_metadata_ids_has_only_the_requested_metadata(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path, export_format: str
) -> None:
    sandbox.state.record_response(survey_id, {"QID1": 3, "finished": 1})
    full = _export(api, survey_id, tmp_path / "full", format=export_format)
    full_columns = _metadata_columns(full)
    assert [name for name, _ in full_columns] == [
        "responseId",
        "startDate",
        "status",
        "finished",
        "recordedDate",
    ]

    empty = _export(
        api,
        survey_id,
        tmp_path / "empty",
        format=export_format,
        **_nothing_recorded_since_tomorrow(),
    )
    members = list_members(empty.path, compressed=empty.compressed)
    layout = json_reader.scan(
        members, "json" if export_format == "json" else "ndjson", survey_metadata_ids=_REQUESTED
    )
    assert layout.rows == 0
    empty_columns = [(c.name, c.kind) for c in json_reader.build_columns(layout)]
    assert empty_columns == full_columns


def test_an_export_without_survey_metadata_ids_keeps_every_metadata_column(
    api: Api, survey_id: str, tmp_path: Path
) -> None:
    empty: ExportResult = api(api.client.export_responses(survey_id, dest=tmp_path, format="json"))
    layout = json_reader.scan(list_members(empty.path, compressed=empty.compressed), "json")
    assert list(layout.kinds) == list(json_reader.EMPTY_EXPORT_KEYS)
    assert list(json_reader.empty_export_keys(None)) == list(json_reader.EMPTY_EXPORT_KEYS)


def _written_columns(result: ExportResult, dest: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """The ``(name, type)`` of the Parquet file and the header of the CSV file ``result`` writes."""
    result.write(dest.with_suffix(".parquet"))
    result.write(dest.with_suffix(".csv"))
    schema = pq.read_schema(dest.with_suffix(".parquet"))
    with dest.with_suffix(".csv").open(newline="", encoding="utf-8") as stream:
        header = next(csv.reader(stream))
    return [(f.name, str(f.type)) for f in schema], header


@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_written_empty_export_made_with_survey_metadata_ids_has_a_full_ones_columns(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path, export_format: str
) -> None:
    # No question or embedded-data column: those only a response can name.
    request: dict[str, Any] = {
        "format": export_format,
        "question_ids": [],
        "embedded_data_ids": [],
    }
    sandbox.state.record_response(survey_id, {"QID1": 3, "finished": 1})
    full = _export(api, survey_id, tmp_path / "full", **request)
    full_parquet, full_csv = _written_columns(full, tmp_path / "full-out")
    assert [name for name, _ in full_parquet] == [
        "responseId",
        "startDate",
        "status",
        "finished",
        "recordedDate",
    ]

    empty = _export(
        api, survey_id, tmp_path / "empty", **_nothing_recorded_since_tomorrow(), **request
    )
    empty_parquet, empty_csv = _written_columns(empty, tmp_path / "empty-out")
    assert empty_parquet == full_parquet
    assert empty_csv == full_csv


@pytest.mark.parametrize("survey_metadata_ids", [None, _REQUESTED])
@pytest.mark.parametrize("export_format", ["json", "ndjson"])
def test_written_empty_export_sorted_by_last_modified_date_has_a_full_ones_columns(
    api: Api,
    sandbox: Sandbox,
    survey_id: str,
    tmp_path: Path,
    export_format: str,
    survey_metadata_ids: list[str] | None,
) -> None:
    request: dict[str, Any] = {
        "format": export_format,
        "sort_by_last_modified_date": True,
        "question_ids": [],
        "embedded_data_ids": [],
    }
    if survey_metadata_ids is not None:
        request["survey_metadata_ids"] = survey_metadata_ids
    sandbox.state.record_response(survey_id, {"QID1": 3, "finished": 1})
    full: ExportResult = api(
        api.client.export_responses(survey_id, dest=tmp_path / "full", **request)
    )
    full_parquet, full_csv = _written_columns(full, tmp_path / "full-out")
    assert full_parquet[-1] == ("lastModifiedDate", "timestamp[us, tz=UTC]")

    empty: ExportResult = api(
        api.client.export_responses(
            survey_id, dest=tmp_path / "empty", **_nothing_recorded_since_tomorrow(), **request
        )
    )
    empty_parquet, empty_csv = _written_columns(empty, tmp_path / "empty-out")
    assert empty_parquet == full_parquet
    assert empty_csv == full_csv
