"""ExportFile over CSV/TSV exports: header rows, typing, labels, writers, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from qualflow.qualtrics import _export_csv, export_file
from qualflow.qualtrics.export_file import ExportColumn, ExportFile, ExportFileError
from tests.qualtrics.test_export_file_writer import METADATA, RECORDED_CSV, Col, csv_bytes, save

QUESTIONS = [
    Col("Q1", 'How likely, on a scale from 0 to 10, would you "recommend" us?', "QID1"),
    Col("Q1_NPS_GROUP", "Q1 - Group", "QID1_NPS_GROUP"),
    Col("Q2", "Why?\nTell us more, please.", "QID2_TEXT"),
    Col("Q3_1", "Rate our service - Speed", "QID3_1"),
    Col("Q4", "Pick one", "QID4"),
    Col("Q4_5_TEXT", "Pick one - Other - Text", "QID4_5_TEXT"),
    Col("1_Q5", "Loop 1 - Slider", "1_QID5_1"),
    Col("Q_RecaptchaScore", "Q_RecaptchaScore", "Q_RecaptchaScore"),
    Col("segment", "segment", "segment"),
]
COLUMNS = METADATA + QUESTIONS


def row(index: int, **overrides: str | None) -> list[str | None]:
    cells: dict[str, str | None] = {
        "StartDate": f"2024-03-10 0{index % 10}:15:00",
        "EndDate": f"2024-03-10 0{index % 10}:16:30",
        "Status": "0",
        "IPAddress": f"10.0.0.{index % 250}",
        "Progress": "100",
        "Duration (in seconds)": str(90 + index),
        "Finished": "1",
        "RecordedDate": f"2024-03-10 0{index % 10}:16:31",
        "ResponseId": f"R_{index:015d}",
        "LocationLatitude": "39.7392",
        "LocationLongitude": "-104.9903",
        "DistributionChannel": "anonymous",
        "UserLanguage": "EN",
        "Q1": str(index % 11),
        "Q1_NPS_GROUP": "1",
        "Q2": f'Line one, "quoted"\nline two #{index}',
        "Q3_1": "4",
        "Q4": "5",
        "Q4_5_TEXT": "something else",
        "1_Q5": "52.5",
        "Q_RecaptchaScore": "0.9",
        "segment": "gold",
    }
    cells.update(overrides)
    return [cells[c.tag] for c in COLUMNS]


@pytest.fixture
def sample_rows() -> list[list[str | None]]:
    return [row(i) for i in range(5)] + [row(5, Q1=None, Q2=None, Finished="0", Progress="42")]


@pytest.fixture(params=[True, False], ids=["zip", "raw"])
def compressed(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def make(
    tmp_path: Path,
    rows: list[list[str | None]],
    *,
    compressed: bool = True,
    columns: list[Col] = COLUMNS,
    **options: object,
) -> ExportFile:
    path = save(
        tmp_path / ("e.zip" if compressed else "e.csv"),
        csv_bytes(columns, rows),
        compressed=compressed,
    )
    return ExportFile(path, format="csv", compressed=compressed, **options)  # type: ignore[arg-type]


# --- the real recorded export ---


def test_recorded_export_columns() -> None:
    export = ExportFile(RECORDED_CSV, format="csv", compressed=False)
    columns = export.columns
    assert len(columns) == 20
    assert columns[0] == ExportColumn(
        name="StartDate",
        export_tag="StartDate",
        question_text="Anfangsdatum",
        import_id="startDate",
        time_zone=None,
        kind="timestamp",
    )
    assert columns[9].question_text == "Nachname des Empfängers"
    assert [c.import_id for c in columns[17:]] == [
        "QID1",
        "QID2_TEXT",
        "QID2_TEXT_eae5a8d0e7fd4bd183e983e5Topics",
    ]
    assert {c.name: c.kind for c in columns} == {
        "StartDate": "timestamp",
        "EndDate": "timestamp",
        "Status": "integer",
        "IPAddress": "string",
        "Progress": "integer",
        "Duration (in seconds)": "integer",
        "Finished": "integer",
        "RecordedDate": "timestamp",
        "ResponseId": "string",
        "RecipientLastName": "string",
        "RecipientFirstName": "string",
        "RecipientEmail": "string",
        "ExternalReference": "string",
        "LocationLatitude": "float",
        "LocationLongitude": "float",
        "DistributionChannel": "string",
        "UserLanguage": "string",
        "Q1": "float",
        "Q2": "string",
        "Q2 - Topics": "string",
    }


def test_recorded_export_typed_row(tmp_path: Path, compressed: bool) -> None:
    path = save(tmp_path / "rec", RECORDED_CSV.read_bytes(), compressed=compressed)
    export = ExportFile(path, format="csv", compressed=compressed)
    rows = list(export.iter_rows())
    assert rows == [
        {
            "StartDate": datetime(2017, 7, 18, 8, 28, 9, tzinfo=UTC),
            "EndDate": datetime(2017, 7, 18, 8, 28, 48, tzinfo=UTC),
            "Status": 0,
            "IPAddress": "130.92.34.66",
            "Progress": 100,
            "Duration (in seconds)": 38,
            "Finished": 1,
            "RecordedDate": datetime(2017, 7, 18, 8, 28, 48, tzinfo=UTC),
            "ResponseId": "R_2YPOQ602ER1jkf1",
            "RecipientLastName": None,
            "RecipientFirstName": None,
            "RecipientEmail": None,
            "ExternalReference": None,
            "LocationLatitude": 47.115097045898,
            "LocationLongitude": 7.2315979003906,
            "DistributionChannel": "anonymous",
            "UserLanguage": "DE",
            "Q1": 2.0,
            "Q2": "Hello World!",
            "Q2 - Topics": None,
        }
    ]
    assert rows[0]["StartDate"].utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_recorded_export_time_zone_option_applies_to_dates_without_one() -> None:
    export = ExportFile(RECORDED_CSV, format="csv", compressed=False, time_zone="Europe/Zurich")
    (first,) = export.iter_rows()
    assert first["StartDate"] == datetime(2017, 7, 18, 6, 28, 9, tzinfo=UTC)


# --- typing ---


def test_typed_values_and_time_zones(tmp_path: Path, sample_rows: list, compressed: bool) -> None:
    export = make(tmp_path, sample_rows, compressed=compressed)
    rows = list(export.iter_rows())
    assert len(rows) == 6
    first = rows[0]
    # America/Denver is UTC-7 before the DST switch at 02:00 on 2024-03-10, UTC-6 after.
    assert first["StartDate"] == datetime(2024, 3, 10, 7, 15, tzinfo=UTC)
    assert rows[3]["StartDate"] == datetime(2024, 3, 10, 9, 15, tzinfo=UTC)
    assert first["Status"] == 0
    assert first["Finished"] == 1
    assert first["Progress"] == 100
    assert first["Duration (in seconds)"] == 90
    assert first["LocationLongitude"] == -104.9903
    assert first["Q1"] == 0.0
    assert first["Q1_NPS_GROUP"] == 1.0
    assert first["Q3_1"] == 4.0
    assert first["Q2"] == 'Line one, "quoted"\nline two #0'
    assert first["Q4_5_TEXT"] == "something else"
    assert first["1_Q5"] == 52.5
    assert first["Q_RecaptchaScore"] == 0.9
    assert first["segment"] == "gold"
    last = rows[5]
    assert last["Q1"] is None
    assert last["Q2"] is None
    assert (last["Finished"], last["Progress"]) == (0, 42)
    assert export.arrow_schema.field("StartDate").type == pa.timestamp("us", tz="UTC")
    assert export.arrow_schema.field("Q2").type == pa.string()
    assert export.columns[0].time_zone == "America/Denver"


def test_names_by_import_id_and_duplicate_tags(tmp_path: Path) -> None:
    columns = [Col("Q1", "a", "QID1"), Col("Q1", "b", "QID2"), Col("Q1_2", "c", "QID3")]
    export = make(tmp_path, [["1", "2", "3"]], columns=columns)
    assert [c.name for c in export.columns] == ["Q1", "Q1_2", "Q1_2_2"]
    by_id = make(tmp_path, [["1", "2", "3"]], columns=columns, names="import_id")
    assert list(by_id.iter_rows()) == [{"QID1": 1.0, "QID2": 2.0, "QID3": 3.0}]


def test_column_type_overrides_and_untyped(tmp_path: Path, sample_rows: list) -> None:
    export = make(tmp_path, sample_rows, column_types={"QID1": "string", "Status": "float"})
    first = next(export.iter_rows())
    assert first["Q1"] == "0"
    assert first["Status"] == 0.0
    untyped = make(tmp_path, sample_rows, typed=False)
    assert set(untyped.arrow_schema.types) == {pa.string()}
    assert next(untyped.iter_rows())["StartDate"] == "2024-03-10 00:15:00"
    with pytest.raises(ValueError, match="not in the export"):
        _ = make(tmp_path, sample_rows, column_types={"QID99": "string"}).columns
    with pytest.raises(ValueError, match="must be one of"):
        _ = make(tmp_path, sample_rows, column_types={"Q1": "date"}).columns


def test_use_labels_exports_become_text_columns(tmp_path: Path, sample_rows: list) -> None:
    rows = [row(i, Status="IP Address", Finished="True", Q4="Other") for i in range(3)]
    export = make(tmp_path, rows)
    kinds = {c.name: c.kind for c in export.columns}
    assert kinds["Status"] == kinds["Finished"] == kinds["Q4"] == "string"
    assert kinds["Q1"] == "float"
    assert next(export.iter_rows())["Finished"] == "True"


def test_zoned_and_mixed_timestamps(tmp_path: Path) -> None:
    columns = [Col("RecordedDate", "Recorded", "recordedDate"), Col("d", "d", "endDate")]
    rows = [
        ["2024-01-01T10:00:00Z", "2024-01-01 10:00:00"],
        ["2024-01-01T10:00:00.250+02:00", "2024-01-01T10:00:00Z"],
    ]
    export = make(tmp_path, rows, columns=columns, time_zone="Asia/Tokyo")
    got = list(export.iter_rows())
    assert got[0]["RecordedDate"] == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert got[1]["RecordedDate"] == datetime(2024, 1, 1, 8, 0, 0, 250000, tzinfo=UTC)
    assert got[0]["d"] == datetime(2024, 1, 1, 1, tzinfo=UTC)
    assert got[1]["d"] == datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_decimal_comma(tmp_path: Path) -> None:
    columns = [Col("Q1", "slider", "QID1_1"), Col("LocationLatitude", "lat", "locationLatitude")]
    export = make(tmp_path, [["52,5", "39,7392"]], columns=columns, decimal_comma=True)
    assert list(export.iter_rows()) == [{"Q1": 52.5, "LocationLatitude": 39.7392}]


# --- cells that do not fit, beyond the sampled first block ---


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """2 KB chunks so a few hundred rows span many chunks and the sample is the first one."""
    monkeypatch.setattr(_export_csv, "_SAMPLE_BYTES", 2048)
    monkeypatch.setattr(export_file, "_BLOCK_SIZE", 1024)
    monkeypatch.setattr(export_file, "_CHUNK_SIZE", 2048)


@pytest.mark.usefixtures("small_blocks")
def test_a_late_bad_cell_raises_naming_row_and_column(tmp_path: Path) -> None:
    rows = [row(i) for i in range(300)]
    rows[250] = row(250, Q3_1="Very fast")
    export = make(tmp_path, rows)
    with pytest.raises(
        ExportFileError, match=r"data row 251, column 'Q3_1' \(ImportId QID3_1\)"
    ) as err:
        list(export.iter_rows())
    assert err.value.row == 251
    assert err.value.column == "Q3_1"
    assert "'Very fast' is not a valid float" in str(err.value)


@pytest.mark.usefixtures("small_blocks")
def test_errors_null_keeps_every_row_and_counts_nulled_cells(tmp_path: Path) -> None:
    rows = [row(i) for i in range(300)]
    rows[250] = row(250, Q3_1="Very fast", Duration="x")
    rows[251] = row(251, StartDate="not a date", Progress="99999999999999999999")
    export = make(tmp_path, rows, errors="null")
    got = list(export.iter_rows())
    assert [r["ResponseId"] for r in got] == [f"R_{i:015d}" for i in range(300)]
    assert got[250]["Q3_1"] is None
    assert got[249]["Q3_1"] == 4.0
    assert got[251]["StartDate"] is None
    assert got[251]["Progress"] is None
    assert got[253]["StartDate"] == datetime(2024, 3, 10, 9, 15, tzinfo=UTC)
    assert got[252]["StartDate"] == datetime(2024, 3, 10, 9, 0, tzinfo=UTC)  # 02:15 is in the gap
    assert export.invalid_cells == {"Q3_1": 1, "StartDate": 1, "Progress": 1}


@pytest.mark.usefixtures("small_blocks")
def test_many_batches_share_one_schema(tmp_path: Path) -> None:
    export = make(tmp_path, [row(i) for i in range(400)])
    batches = list(export.iter_batches(batch_size=64))
    assert len(batches) > 10
    assert all(b.schema == export.arrow_schema for b in batches)
    assert all(b.num_rows <= 64 for b in batches)
    assert sum(b.num_rows for b in batches) == 400


DEFINITION = {
    "result": {
        "Questions": {
            "QID3": {"QuestionType": "MC", "Selector": "MAVR", "SubSelector": "TX"},
            "QID4": {"QuestionType": "MC", "Selector": "SAVR", "SubSelector": "TX"},
            "QID6": {"QuestionType": "TE", "Selector": "FORM"},
            "QID7": {
                "QuestionType": "Matrix",
                "Selector": "Likert",
                "SubSelector": "MultipleAnswer",
            },
        }
    }
}
LEGACY = {
    "questions": {
        "QID3": {"questionType": {"type": "MC", "selector": "MACOL", "subSelector": "TX"}},
        "QID6": {"questionType": {"type": "TE", "selector": "FORM", "subSelector": None}},
        "QID7": {
            "questionType": {
                "type": "Matrix",
                "selector": "Likert",
                "subSelector": "MultipleAnswer",
            }
        },
    }
}
SURVEY_COLUMNS = [
    Col("ResponseId", "Response ID", "_recordId"),
    Col("Q3", "Which apply?", "QID3"),
    Col("Q3_4_TEXT", "Which apply? - Other", "QID3_4_TEXT"),
    Col("Q4", "Pick one", "QID4"),
    Col("Q6_1", "Your name", "QID6_1"),
    Col("Q7_1", "Matrix row 1", "QID7_1"),
    Col("1_Q3", "Loop 1 - Which apply?", "1_QID3"),
]


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("survey", [DEFINITION, LEGACY], ids=["definition", "legacy"])
def test_survey_definition_types_what_import_ids_cannot(tmp_path: Path, survey: dict) -> None:
    rows: list[list[str | None]] = [[f"R_{i}", "2", None, "1", "42", "3", "1"] for i in range(300)]
    rows[280] = ["R_280", "1,4", "Gift, card", "2", "Ada", "1,3", "2,4"]
    guessed = make(tmp_path, rows, columns=SURVEY_COLUMNS)
    assert guessed.columns[1].kind == "float"  # the first block only shows single codes
    with pytest.raises(ExportFileError, match=r"data row 281, column 'Q3'"):
        list(guessed.iter_rows())

    typed = make(tmp_path, rows, columns=SURVEY_COLUMNS, survey=survey)
    kinds = {c.import_id: c.kind for c in typed.columns}
    assert kinds == {
        "_recordId": "string",
        "QID3": "string",
        "QID3_4_TEXT": "string",
        "QID4": "float",
        "QID6_1": "string",
        "QID7_1": "string",
        "1_QID3": "string",
    }
    got = list(typed.iter_rows())
    assert got[280]["Q3"] == "1,4"
    assert got[280]["Q7_1"] == "1,3"
    assert got[0]["Q6_1"] == "42"
    assert got[0]["Q4"] == 1.0


# --- labels ---


def test_label_map(tmp_path: Path, sample_rows: list) -> None:
    label_map = {
        "QID4": {"5": "Other", "1": "Yes"},
        "Q1_NPS_GROUP": {"1": "Detractor"},
        "segment": {"gold": "Gold tier"},
    }
    export = make(tmp_path, sample_rows, label_map=label_map)
    assert "Q4_label" not in export.arrow_schema.names
    schema = export.schema(labels=True)
    names = schema.names
    assert names[names.index("Q4") + 1] == "Q4_label"
    assert names[names.index("Q1_NPS_GROUP") + 1] == "Q1_NPS_GROUP_label"
    first = next(export.iter_rows(labels=True))
    assert first["Q4_label"] == "Other"
    assert first["Q1_NPS_GROUP_label"] == "Detractor"
    assert first["segment_label"] == "Gold tier"


def test_include_label_columns_export(tmp_path: Path) -> None:
    columns = [
        Col("ResponseId", "Response ID", "_recordId"),
        Col("Q1", "Pick", "QID1"),
        Col("Q1", "Pick", "QID1", {"IsLabelsColumn": True}),
        Col("Status", "Response Type", "status"),
        Col("Status", "Response Type", "status", {"IsLabelsColumn": True}),
    ]
    rows = [["R_1", "2", "No", "0", "IP Address"], ["R_2", None, None, "1", "Survey Preview"]]
    export = make(tmp_path, rows, columns=columns)
    labels = [c for c in export.columns if c.is_label]
    assert [(c.name, c.label_of) for c in labels] == [
        ("Q1_label", "Q1"),
        ("Status_label", "Status"),
    ]
    assert list(export.iter_rows()) == [
        {"ResponseId": "R_1", "Q1": 2.0, "Status": 0},
        {"ResponseId": "R_2", "Q1": None, "Status": 1},
    ]
    assert list(export.iter_rows(labels=True))[1] == {
        "ResponseId": "R_2",
        "Q1": None,
        "Q1_label": None,
        "Status": 1,
        "Status_label": "Survey Preview",
    }


# --- writers ---


@pytest.mark.parametrize("labels", [False, True])
def test_round_trip_to_every_output_format(
    tmp_path: Path, sample_rows: list, compressed: bool, labels: bool
) -> None:
    export = make(tmp_path, sample_rows, compressed=compressed, label_map={"QID4": {"5": "Other"}})
    expected = list(export.iter_rows(labels=labels))
    schema = export.schema(labels=labels)

    assert export.write(tmp_path / "out.parquet", labels=labels) == 6
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema == schema
    assert table.to_pylist() == expected

    assert export.write(tmp_path / "out.csv", "csv", labels=labels) == 6
    back = pacsv.read_csv(
        tmp_path / "out.csv",
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True),
    )
    assert back.to_pylist() == expected

    assert export.write(tmp_path / "out.ndjson", "ndjson", labels=labels) == 6
    lines = (tmp_path / "out.ndjson").read_text(encoding="utf-8").splitlines()
    decoded = [json.loads(line) for line in lines]
    assert len(decoded) == 6
    for got, want in zip(decoded, expected, strict=True):
        assert list(got) == list(want)
        for key, value in want.items():
            if isinstance(value, datetime):
                assert datetime.fromisoformat(got[key]) == value
            else:
                assert got[key] == value


def test_write_to_a_file_object(tmp_path: Path, sample_rows: list) -> None:
    export = make(tmp_path, sample_rows)
    with (tmp_path / "o.parquet").open("wb") as sink:
        assert export.write(sink) == 6
    assert pq.read_table(tmp_path / "o.parquet").num_rows == 6


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    broken = csv_bytes(COLUMNS, [row(i) for i in range(3)]) + b'"unterminated\n'
    path = save(tmp_path / "b.zip", broken, compressed=True)
    export = ExportFile(path, format="csv", compressed=True)
    with pytest.raises(ExportFileError):
        export.write(tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.zip"]


def test_unknown_output_format(tmp_path: Path, sample_rows: list) -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        make(tmp_path, sample_rows).write(tmp_path / "x", "xlsx")  # type: ignore[arg-type]


def test_the_output_format_follows_the_file_name(tmp_path: Path, sample_rows: list) -> None:
    export = make(tmp_path, sample_rows)
    export.write(tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes()[:4] != b"PAR1"
    assert pacsv.read_csv(tmp_path / "out.csv").num_rows == len(sample_rows)
    export.write(tmp_path / "out.jsonl")
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == len(sample_rows)
    assert isinstance(json.loads(lines[0]), dict)
    for name in ("out.parquet", "out.pq", "no-extension"):
        export.write(tmp_path / name)
        assert pq.read_table(tmp_path / name).num_rows == len(sample_rows)
    # Told explicitly, the format wins over the name.
    export.write(tmp_path / "named.csv", "parquet")
    assert (tmp_path / "named.csv").read_bytes()[:4] == b"PAR1"
    with pytest.raises(ValueError, match=r"cannot tell the output format from 'out\.xlsx'"):
        export.write(tmp_path / "out.xlsx")
    assert not (tmp_path / "out.xlsx").exists()


# --- encodings, delimiters, archives ---


def test_bom_tsv_and_utf16(tmp_path: Path, sample_rows: list) -> None:
    expected = list(make(tmp_path, sample_rows).iter_rows())
    for name, data in {
        "bom.csv": csv_bytes(COLUMNS, sample_rows, bom=True),
        "e.tsv": csv_bytes(COLUMNS, sample_rows, delimiter="\t"),
        "u16.tsv": csv_bytes(COLUMNS, sample_rows, delimiter="\t", encoding="utf-16"),
    }.items():
        path = save(tmp_path / name, data, compressed=False)
        fmt = "tsv" if name.endswith(".tsv") else "csv"
        export = ExportFile(path, format=fmt, compressed=False)
        assert export.columns[0].export_tag == "StartDate"
        assert list(export.iter_rows()) == expected, name


def test_zip_with_several_data_files_is_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "multi.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Survey/", b"")
        archive.writestr("Survey/part1.csv", csv_bytes(COLUMNS, [row(0), row(1)]))
        archive.writestr("Survey/part2.csv", csv_bytes(COLUMNS, [row(2)]))
        archive.writestr("__MACOSX/._part1.csv", b"junk")
    export = ExportFile(path, format="csv", compressed=True)
    assert export.members == ["Survey/part1.csv", "Survey/part2.csv"]
    assert [r["ResponseId"] for r in export.iter_rows()] == [f"R_{i:015d}" for i in range(3)]


def test_header_only_export_has_columns_and_no_rows(tmp_path: Path) -> None:
    export = make(tmp_path, [])
    assert len(export.columns) == len(COLUMNS)
    assert list(export.iter_rows()) == []
    assert export.write(tmp_path / "o.parquet") == 0
    assert pq.read_table(tmp_path / "o.parquet").schema == export.arrow_schema


# --- unreadable input ---


def broken(tmp_path: Path, name: str, data: bytes, *, compressed: bool = False) -> ExportFile:
    path = tmp_path / name
    if compressed:
        save(path, data, compressed=True)
    else:
        path.write_bytes(data)
    return ExportFile(path, format="csv", compressed=compressed)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "file is empty"),
        (b"a,b\nx,y\n", "only 2 of its 3 header rows"),
        (b"a,b\nA,B\nnot,json\n1,2\n", "header row 3, column 1 .* is not ImportId JSON"),
        (b'a,b\nA,B\n"{""ImportId"":""x""}"\n', "same number in all three"),
        (b'a\nA\n"{""Import"":1}"\n', "no ImportId string"),
        (b'a\n\xff\xfe\x00A\n"{""ImportId"":""x""}"\n', "not UTF-8"),
        (b'a\nA\n"{""ImportId"":""x"",""timeZone"":""Mars/Base""}"\n1\n', "unknown time zone"),
    ],
)
def test_malformed_headers(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ExportFileError, match=message):
        list(broken(tmp_path, "h.csv", data).iter_rows())


def test_data_row_with_wrong_cell_count(tmp_path: Path, sample_rows: list) -> None:
    data = csv_bytes(COLUMNS, sample_rows) + b"1,2,3\n"
    with pytest.raises(ExportFileError, match="unreadable CSV"):
        list(broken(tmp_path, "w.csv", data).iter_rows())


def test_not_a_zip_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExportFileError, match="not a readable ZIP"):
        _ = (
            broken(tmp_path, "n.zip", b"plain text", compressed=False)
            .__class__(tmp_path / "n.zip", format="csv", compressed=True)
            .columns
        )
    with pytest.raises(ExportFileError, match="not found"):
        _ = ExportFile(tmp_path / "missing.zip", format="csv", compressed=True).columns
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(ExportFileError, match="no data file"):
        _ = ExportFile(empty, format="csv", compressed=True).columns


def test_corrupt_zip_member_is_an_export_error(tmp_path: Path) -> None:
    data = csv_bytes(COLUMNS, [row(i) for i in range(2000)])
    path = save(tmp_path / "c.zip", data, compressed=True)
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    export = ExportFile(path, format="csv", compressed=True)
    with pytest.raises(ExportFileError, match=r"corrupt export|unreadable"):
        export.write(tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists()


def test_constructor_validates_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format must be"):
        ExportFile(tmp_path / "x", format="xml", compressed=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown time zone"):
        ExportFile(tmp_path / "x", format="csv", compressed=False, time_zone="Nowhere/Land")
    with pytest.raises(ValueError, match="errors must be"):
        ExportFile(tmp_path / "x", format="csv", compressed=False, errors="ignore")  # type: ignore[arg-type]


def test_reading_an_export_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas (when installed; ~0.2 CPU s) the first time it converts Python
    values to Arrow: nothing on the way from a CSV export to Parquet needs that."""
    script = (
        "import sys\n"
        "from qualflow.qualtrics.export_file import ExportFile\n"
        f"export = ExportFile({str(RECORDED_CSV)!r}, format='csv', compressed=False, "
        "time_zone='Europe/Zurich')\n"
        f"export.write({str(tmp_path / 'o.parquet')!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pandas')[:3])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_write_async_converts_on_a_worker_thread(
    tmp_path: Path, sample_rows: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import anyio

    export = make(tmp_path, sample_rows)
    writers: list[int] = []
    write = ExportFile.write

    def recording(self: ExportFile, *args: object, **kwargs: object) -> int:
        writers.append(threading.get_ident())
        return write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ExportFile, "write", recording)

    async def main() -> tuple[int, int]:
        return threading.get_ident(), await export.write_async(tmp_path / "out.csv")

    loop_thread, rows = anyio.run(main)
    assert rows == len(sample_rows)
    assert len(writers) == 1
    assert writers[0] != loop_thread
    assert pacsv.read_csv(tmp_path / "out.csv").num_rows == len(sample_rows)
