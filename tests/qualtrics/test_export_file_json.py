"""ExportFile over JSON and NDJSON exports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from qualflow.qualtrics import _export_json, export_file
from qualflow.qualtrics._export_json import EMPTY_EXPORT_KEYS
from qualflow.qualtrics.export_file import ExportFile, ExportFileError
from tests.qualtrics.test_export_file_writer import json_bytes, ndjson_bytes, response, save

# The response of the research notes' JSON export example (§4.1), as Qualtrics sends it.
RESEARCH_EXAMPLE: dict[str, Any] = {
    "responseId": "R_1Cx8FIukucgqM94",
    "values": {
        "startDate": "2019-05-02T14:06:49Z",
        "endDate": "2019-05-02T14:06:58Z",
        "status": 0,
        "ipAddress": "24.197.127.176",
        "progress": 100,
        "duration": 9,
        "finished": 1,
        "recordedDate": "2019-05-02T14:06:59.208Z",
        "_recordId": "R_1Cx8FIukucgqM94",
        "locationLatitude": "34.8307952880859375",
        "locationLongitude": "-82.35070037841796875",
        "distributionChannel": "anonymous",
        "userLanguage": "EN",
        "QID2": 2,
        "QID3": 2,
    },
    "labels": {"status": "IP Address", "finished": "True", "QID2": "fair", "QID3": "maybe"},
    "displayedFields": ["QID1", "QID3", "QID2"],
    "displayedValues": {"QID1": [1, 2], "QID3": [1, 2, 3], "QID2": [1, 2, 3]},
}

EXPECTED_EXAMPLE_ROW = {
    "responseId": "R_1Cx8FIukucgqM94",
    "startDate": datetime(2019, 5, 2, 14, 6, 49, tzinfo=UTC),
    "endDate": datetime(2019, 5, 2, 14, 6, 58, tzinfo=UTC),
    "status": 0,
    "ipAddress": "24.197.127.176",
    "progress": 100,
    "duration": 9,
    "finished": 1,
    "recordedDate": datetime(2019, 5, 2, 14, 6, 59, 208000, tzinfo=UTC),
    "_recordId": "R_1Cx8FIukucgqM94",
    "locationLatitude": 34.8307952880859375,
    "locationLongitude": -82.35070037841796875,
    "distributionChannel": "anonymous",
    "userLanguage": "EN",
    "QID2": 2.0,
    "QID3": 2.0,
}

SECOND = response(
    "R_2",
    {
        "startDate": "2019-05-03T08:00:00Z",
        "status": 0,
        "finished": 0,
        "progress": 40,
        "QID3": 3,
        "QID4": ["1", "3"],
        "QID5_TEXT": 'multi\nline, "quoted" ✓',
        "segment": "gold",
    },
    {"QID3": "yes", "QID4": ["red", "blue"]},
)


def write(
    tmp_path: Path,
    responses: list[dict[str, Any]],
    fmt: str,
    *,
    compressed: bool = True,
    indent: int | None = None,
    **options: Any,
) -> ExportFile:
    data = ndjson_bytes(responses) if fmt == "ndjson" else json_bytes(responses, indent=indent)
    path = save(
        tmp_path / f"e.{fmt}.{'zip' if compressed else 'raw'}",
        data,
        compressed=compressed,
        member=f"Survey.{fmt}",
    )
    return ExportFile(path, format=fmt, compressed=compressed, **options)  # type: ignore[arg-type]


LAYOUTS = [
    pytest.param("ndjson", True, None, id="ndjson-zip"),
    pytest.param("ndjson", False, None, id="ndjson-raw"),
    pytest.param("json", True, None, id="json-zip"),
    pytest.param("json", False, 2, id="json-pretty-raw"),
]


@pytest.mark.parametrize(("fmt", "compressed", "indent"), LAYOUTS)
def test_research_example_typed(
    tmp_path: Path, fmt: str, compressed: bool, indent: int | None
) -> None:
    export = write(tmp_path, [RESEARCH_EXAMPLE, SECOND], fmt, compressed=compressed, indent=indent)
    rows = list(export.iter_rows())
    assert rows[0] == {**EXPECTED_EXAMPLE_ROW, "QID4": None, "QID5_TEXT": None, "segment": None}
    second = rows[1]
    assert second["QID4"] == "1,3"
    assert second["QID5_TEXT"] == 'multi\nline, "quoted" ✓'
    assert second["finished"] == 0
    assert second["endDate"] is None
    kinds = {c.name: c.kind for c in export.columns if not c.is_label}
    assert kinds["startDate"] == "timestamp"
    assert kinds["status"] == kinds["progress"] == "integer"
    assert kinds["locationLatitude"] == "float"
    assert kinds["QID4"] == "string"
    assert kinds["segment"] == "string"
    assert export.columns[0].name == "responseId"


@pytest.mark.parametrize(("fmt", "compressed", "indent"), LAYOUTS)
def test_labels_from_the_responses(
    tmp_path: Path, fmt: str, compressed: bool, indent: int | None
) -> None:
    export = write(
        tmp_path,
        [RESEARCH_EXAMPLE, SECOND],
        fmt,
        compressed=compressed,
        indent=indent,
        label_map={"segment": {"gold": "Gold tier"}},
    )
    names = export.schema(labels=True).names
    assert names[names.index("QID3") + 1] == "QID3_label"
    assert names[names.index("status") + 1] == "status_label"
    first, second = export.iter_rows(labels=True)
    assert (first["status_label"], first["finished_label"]) == ("IP Address", "True")
    assert (first["QID2_label"], first["QID3_label"]) == ("fair", "maybe")
    assert second["QID4_label"] == "red,blue"
    assert second["segment_label"] == "Gold tier"
    assert first["QID4_label"] is None


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_round_trip_to_every_output_format(tmp_path: Path, fmt: str) -> None:
    export = write(tmp_path, [RESEARCH_EXAMPLE, SECOND], fmt)
    expected = list(export.iter_rows(labels=True))
    assert export.write(tmp_path / "o.parquet", labels=True) == 2
    assert pq.read_table(tmp_path / "o.parquet").to_pylist() == expected
    assert export.write(tmp_path / "o.ndjson", "ndjson", labels=True) == 2
    lines = [json.loads(x) for x in (tmp_path / "o.ndjson").read_text("utf-8").splitlines()]
    assert lines[0]["recordedDate"] == "2019-05-02T14:06:59.208000Z"
    assert lines[1]["QID5_TEXT"] == SECOND["values"]["QID5_TEXT"]
    assert export.write(tmp_path / "o.csv", "csv") == 2
    header = (tmp_path / "o.csv").read_text("utf-8").splitlines()[0]
    assert header.startswith('"responseId","startDate","endDate","status"')


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_export_json, "_CHUNK_BYTES", 4096)
    monkeypatch.setattr(export_file, "_BLOCK_SIZE", 4096)


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_keys_seen_only_late_in_the_file_are_columns(tmp_path: Path, fmt: str) -> None:
    responses = [response(f"R_{i}", {"QID1": i % 5, "finished": 1}) for i in range(400)]
    responses[390]["values"]["QID9_TEXT"] = "late answer"
    responses[391]["values"]["QID1"] = 2.5
    export = write(tmp_path, responses, fmt)
    assert [c.name for c in export.columns] == ["responseId", "QID1", "finished", "QID9_TEXT"]
    batches = list(export.iter_batches(batch_size=50))
    assert all(b.schema == export.arrow_schema for b in batches)
    rows = [r for b in batches for r in b.to_pylist()]
    assert len(rows) == 400
    assert rows[390]["QID9_TEXT"] == "late answer"
    assert rows[391]["QID1"] == 2.5
    assert rows[0]["QID9_TEXT"] is None


@pytest.mark.usefixtures("small_chunks")
def test_a_key_mixing_numbers_and_text_is_read_by_the_python_path(tmp_path: Path) -> None:
    responses = [response(f"R_{i}", {"QID1": i, "emb": i, "status": 0}) for i in range(200)]
    responses[150]["values"]["QID1"] = "7"  # text that still fits a number
    responses[160]["values"]["emb"] = "n/a"  # text that does not
    responses[170]["values"]["status"] = True
    export = write(tmp_path, responses, "ndjson")
    kinds = {c.name: c.kind for c in export.columns}
    assert kinds == {"responseId": "string", "QID1": "float", "emb": "string", "status": "string"}
    rows = list(export.iter_rows())
    assert [r["responseId"] for r in rows] == [f"R_{i}" for i in range(200)]
    assert rows[150]["QID1"] == 7.0
    assert rows[151]["QID1"] == 151.0
    assert (rows[160]["emb"], rows[161]["emb"]) == ("n/a", "161")
    assert (rows[170]["status"], rows[171]["status"]) == ("true", "0")


def test_text_labels_instead_of_recodes_become_text_columns(tmp_path: Path) -> None:
    example = json.loads(json.dumps(RESEARCH_EXAMPLE))
    example["values"]["status"] = "IP Address"
    export = write(tmp_path, [example, SECOND], "ndjson")
    kinds = {c.name: c.kind for c in export.columns}
    assert kinds["status"] == "string"
    assert [r["status"] for r in export.iter_rows()] == ["IP Address", "0"]


def test_override_that_does_not_fit_raises_or_nulls(tmp_path: Path) -> None:
    export = write(
        tmp_path, [RESEARCH_EXAMPLE, SECOND], "json", column_types={"QID5_TEXT": "integer"}
    )
    with pytest.raises(ExportFileError, match=r"response 2, value 'QID5_TEXT'") as err:
        list(export.iter_rows())
    assert err.value.row == 2
    lenient = write(
        tmp_path,
        [RESEARCH_EXAMPLE, SECOND],
        "json",
        errors="null",
        column_types={"QID5_TEXT": "integer", "QID2": "string"},
    )
    rows = list(lenient.iter_rows())
    assert rows[1]["QID5_TEXT"] is None
    assert rows[0]["QID2"] == "2"
    assert lenient.invalid_cells == {"QID5_TEXT": 1}


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_export_without_responses(tmp_path: Path, fmt: str) -> None:
    export = write(tmp_path, [], fmt)
    # The metadata every response carries; questions cannot be known without a response.
    assert [c.name for c in export.columns] == ["responseId", *EMPTY_EXPORT_KEYS]
    assert list(export.iter_rows()) == []
    assert export.write(tmp_path / "o.parquet") == 0


@pytest.mark.parametrize(
    ("data", "fmt", "message"),
    [
        (b"not json at all", "json", "expected one of '{'"),
        (b'{"other": 1}', "json", 'no "responses" array'),
        (b'{"responses": [{"responseId": "R_1"}, ', "json", "malformed JSON|expected one of"),
        (b'{"responses": [1]}', "json", "not a JSON object"),
        (b'{"responses": []} trailing', "json", "unexpected data after"),
        (b'{"responseId": "R_1"}\n{"broken": \n', "ndjson", "not valid JSON"),
        (b'{"responseId": "R_1", "values": []}\n', "ndjson", "'values' is not an object"),
        (b"[1, 2]\n", "ndjson", "not a JSON object"),
        (b'{"responses": [{"values": {"a": 1}}]}\xff', "json", "not UTF-8"),
    ],
)
def test_malformed_json_exports(tmp_path: Path, data: bytes, fmt: str, message: str) -> None:
    path = save(tmp_path / "bad", data, compressed=False)
    with pytest.raises(ExportFileError, match=message):
        list(ExportFile(path, format=fmt, compressed=False).iter_rows())  # type: ignore[arg-type]
