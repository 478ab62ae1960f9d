"""The fast export path (ISA-L inflate, record chunks, pyarrow parsing) against references.

Every test here shrinks the chunk and inflate step sizes so records, quoted newlines and
multi-byte characters straddle chunk boundaries, then checks the typed output against an
independent reference: the stdlib ``csv`` module plus the documented typing rules (dates in
their column's zone → UTC, integers, floats, text, empty → None), or, for JSON, the slow
Python decoder and hand-written expected rows.
"""

from __future__ import annotations

import csv
import io
import json
import struct
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qualflow.qualtrics import _export_io, _export_json, export_file
from qualflow.qualtrics._export_io import Member, Utf8Stream, open_utf8, record_chunks
from qualflow.qualtrics.export_file import ExportFile, ExportFileError
from tests.qualtrics.test_export_file_writer import (
    METADATA,
    Col,
    csv_bytes,
    ndjson_bytes,
    response,
    save,
)


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few records and inflate steps of a few bytes."""
    monkeypatch.setattr(export_file, "_CHUNK_SIZE", 97)
    monkeypatch.setattr(_export_io._DeflatedMember, "_STEP", 13)
    monkeypatch.setattr(_export_json, "_CHUNK_BYTES", 211)


# --- record chunks ----------------------------------------------------------------------------

CELL = st.text(alphabet=st.sampled_from(list('ab ,"\né✓🎉漢0')), max_size=12)


def _csv_text(records: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(records)
    return out.getvalue().encode()


class _Dribble:
    """A byte source that hands out at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._step = step

    def read(self, size: int = -1) -> bytes:
        piece, self._data = self._data[: min(size, self._step)], self._data[min(size, self._step) :]
        return piece


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(st.lists(CELL, min_size=1, max_size=4), min_size=1, max_size=12),
    size=st.integers(1, 40),
    step=st.integers(1, 40),
)
def test_record_chunks_cut_only_between_records(
    records: list[list[str]], size: int, step: int
) -> None:
    data = _csv_text(records)
    chunks = [
        chunk.to_pybytes()
        for chunk in record_chunks(Utf8Stream(_Dribble(data, step)), size)  # type: ignore[arg-type]
    ]
    assert b"".join(chunks) == data
    parsed: list[list[str]] = []
    for chunk in chunks:
        # Each chunk holds whole records: it parses alone to what the whole file holds there.
        parsed.extend(csv.reader(io.StringIO(chunk.decode(), newline=""), strict=True))
    assert parsed == list(csv.reader(io.StringIO(data.decode(), newline="")))


def test_record_chunks_refuse_an_unbalanced_quote(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_export_io, "MAX_RECORD_BYTES", 100)
    data = b'a,"never closed\n' + b"x\n" * 200
    with pytest.raises(ExportFileError, match="unbalanced quote"):
        list(record_chunks(Utf8Stream(io.BytesIO(data)), 16))


# --- ZIP members ------------------------------------------------------------------------------


def _zip(path: Path, data: bytes, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("Survey.csv", data)
    return path


def _read_all(member: Member, size: int) -> bytes:
    parts = []
    with open_utf8(member) as stream:
        while piece := stream.read(size):
            parts.append(piece)
    return b"".join(parts)


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
@pytest.mark.parametrize("size", [1, 7, 4096])
def test_zip_member_reads_the_same_bytes_as_zipfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: int, size: int
) -> None:
    monkeypatch.setattr(_export_io._DeflatedMember, "_STEP", 5)
    data = ("Q1,Q2\n" + "".join(f'{i},"é ✓ {i}\nnext"\n' for i in range(300))).encode()
    path = _zip(tmp_path / "e.zip", data, method)
    assert _read_all(Member(str(path), "Survey.csv"), size) == data


def test_zip_member_with_a_wrong_crc_is_an_export_error(tmp_path: Path) -> None:
    path = _zip(tmp_path / "e.zip", b"a,b\n1,2\n" * 1000)
    raw = bytearray(path.read_bytes())
    central = raw.rindex(b"PK\x01\x02")
    (crc,) = struct.unpack_from("<I", raw, central + 16)
    struct.pack_into("<I", raw, central + 16, crc ^ 1)
    path.write_bytes(bytes(raw))
    with pytest.raises(ExportFileError, match="CRC"):
        _read_all(Member(str(path), "Survey.csv"), 1 << 16)


def test_zip_member_with_corrupt_data_is_an_export_error(tmp_path: Path) -> None:
    path = _zip(tmp_path / "e.zip", bytes(range(256)) * 400)
    raw = bytearray(path.read_bytes())
    start = 30 + len("Survey.csv")
    for offset in range(start, start + 40):
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ExportFileError):
        _read_all(Member(str(path), "Survey.csv"), 1 << 16)


# --- CSV: fast path vs the stdlib csv module + the documented typing --------------------------

QUESTIONS = [
    Col("Q1", 'Recommend us, "honestly"?', "QID1"),
    Col("Q1", "Q1 label", "QID1", {"IsLabelsColumn": True}),
    Col("Q2", "Why?\nTell us more, please.", "QID2_TEXT"),
    Col("Q3_1", "Rate: speed, price", "QID3_1"),
    Col("Q4", "Slider", "QID4_1"),
    Col("Q_RecaptchaScore", "Q_RecaptchaScore", "Q_RecaptchaScore"),
    Col("note", "embedded data", "note"),
]
COLUMNS = METADATA + QUESTIONS
TEXTS = [
    'Line one, "quoted"\nline two',
    "commas, everywhere, ,,",
    "unicode: é ü ✓ 漢字 🎉",
    '"starts with a quote',
    "   ",
    "\n",
    "ends with a newline\n",
]
INTEGER_TAGS = {"Status", "Progress", "Duration (in seconds)", "Finished"}
FLOAT_TAGS = {"LocationLatitude", "LocationLongitude", "Q1", "Q3_1", "Q4", "Q_RecaptchaScore"}
DATE_TAGS = {"StartDate", "EndDate", "RecordedDate"}


def _row(index: int) -> list[str | None]:
    empty = index % 4 == 3  # every typed column empty on some rows
    base = datetime(2024, 11, 3, 0, 30) if index % 5 == 0 else datetime(2024, 3, 9, 12, 0)
    # 2024-11-03 01:30 in Denver happens twice: the earlier instant (MDT) is documented.
    when = base.replace(hour=1) if index % 5 == 0 else base.replace(minute=index % 60)
    cells: dict[str, str | None] = {
        "StartDate": None if empty else when.strftime("%Y-%m-%d %H:%M:%S"),
        "EndDate": when.strftime("%Y-%m-%d %H:%M:%S"),
        "Status": None if empty else "0",
        "IPAddress": f"10.0.0.{index}",
        "Progress": str(index % 101),
        "Duration (in seconds)": str(-1 if index == 7 else 60 + index),
        "Finished": "1",
        "RecordedDate": when.strftime("%Y-%m-%d %H:%M:%S"),
        "ResponseId": f"R_{index:015d}",
        "LocationLatitude": None if empty else "-33.8688",
        "LocationLongitude": "1e2" if index == 4 else "151.2093",
        "DistributionChannel": "anonymous",
        "UserLanguage": "EN" if index % 2 else "ZH-S",
        "Q1": None if empty else str(index % 11),
        "Q2": None if empty else TEXTS[index % len(TEXTS)],
        "Q3_1": None if empty else str(index % 5 + 1),
        "Q4": None if empty else f"{index * 1.5:.1f}",
        "Q_RecaptchaScore": "0.9",
        "note": None if empty else f"note, {index} ✓",
    }
    label = None if empty else f"Label ✓, {index % 11}"
    return [label if c.extra.get("IsLabelsColumn") else cells[c.tag] for c in COLUMNS]


ROWS = [_row(i) for i in range(40)]


def _reference_rows(rows: list[list[str | None]], *, labels: bool) -> list[dict[str, object]]:
    """The documented typing, done cell by cell with the stdlib."""
    denver = ZoneInfo("America/Denver")
    data = csv_bytes(COLUMNS, rows).decode()
    parsed = list(csv.reader(io.StringIO(data, newline="")))[3:]
    out = []
    for cells in parsed:
        typed: dict[str, object] = {}
        for column, cell in zip(COLUMNS, cells, strict=True):
            value: object = None if cell == "" else cell
            if value is None or column.extra.get("IsLabelsColumn"):
                pass
            elif column.tag in DATE_TAGS:
                local = datetime.strptime(cell, "%Y-%m-%d %H:%M:%S").replace(tzinfo=denver)
                value = local.astimezone(UTC)  # fold=0: the earlier of a repeated time
            elif column.tag in INTEGER_TAGS:
                value = int(cell)
            elif column.tag in FLOAT_TAGS:
                value = float(cell)
            if column.extra.get("IsLabelsColumn"):
                if labels:
                    typed["Q1_label"] = value
            else:
                typed[column.tag] = value
                if labels and column.tag == "Q3_1":
                    typed["Q3_1_label"] = {"1.0": "Poor", "2.0": "Fair"}.get(str(value))
        out.append(typed)
    return out


@pytest.mark.parametrize("labels", [False, True], ids=["values", "labels"])
@pytest.mark.parametrize("compressed", [True, False], ids=["zip", "raw"])
def test_csv_fast_path_matches_the_reference(
    tmp_path: Path, tiny_chunks: None, labels: bool, compressed: bool
) -> None:
    path = save(tmp_path / "e", csv_bytes(COLUMNS, ROWS), compressed=compressed)
    export = ExportFile(
        path, format="csv", compressed=compressed, label_map={"Q3_1": {"1": "Poor", "2": "Fair"}}
    )
    expected = _reference_rows(ROWS, labels=labels)
    assert list(export.iter_rows(labels=labels)) == expected
    # The written file holds the same typed values.
    export.write(tmp_path / "out.parquet", labels=labels)
    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == expected


def test_csv_chunk_size_does_not_change_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(tmp_path / "e.zip", csv_bytes(COLUMNS, ROWS * 50), compressed=True)
    whole = list(ExportFile(path, format="csv", compressed=True).iter_rows(labels=True))
    monkeypatch.setattr(export_file, "_CHUNK_SIZE", 331)
    monkeypatch.setattr(_export_io._DeflatedMember, "_STEP", 17)
    cut = list(ExportFile(path, format="csv", compressed=True).iter_rows(labels=True))
    assert cut == whole
    assert len(whole) == len(ROWS) * 50


# --- NDJSON: the pyarrow path vs the Python decoder and the documented rows -------------------

RESPONSES = [
    response(
        f"R_{i}",
        {
            "startDate": f"2024-05-0{i % 9 + 1}T10:00:0{i % 10}Z",
            "status": 0,
            "finished": i % 2,
            "progress": 100,
            "QID1": i % 11,
            "QID2_TEXT": TEXTS[i % len(TEXTS)],
            "QID4": [str(i % 3 + 1), "4"],  # multi-select: a list of codes
            **({"QID5_1": 2.5} if i % 3 else {}),
            **({"late_embedded": "✓ late"} if i > 30 else {}),
        },
        {"QID1": f"label {i % 11}", "QID4": ["red", "blue ✓"]},
    )
    for i in range(40)
]


def _expected_json_row(i: int, *, labels: bool) -> dict[str, object]:
    row: dict[str, object] = {
        "responseId": f"R_{i}",
        "startDate": datetime(2024, 5, i % 9 + 1, 10, 0, i % 10, tzinfo=UTC),
        "status": 0,
        "finished": i % 2,
        "progress": 100,
        "QID1": float(i % 11),
        "QID2_TEXT": TEXTS[i % len(TEXTS)],
        "QID4": f"{i % 3 + 1},4",
        "QID5_1": 2.5 if i % 3 else None,
        "late_embedded": "✓ late" if i > 30 else None,
    }
    if labels:
        row["QID1_label"] = f"label {i % 11}"
        row["QID4_label"] = "red,blue ✓"
    return row


def _rows(export: ExportFile, labels: bool) -> list[dict[str, object]]:
    return [
        dict(sorted(r.items())) for r in export.iter_rows(labels=labels)
    ]  # key order is checked by the schema test below


@pytest.mark.parametrize("labels", [False, True], ids=["values", "labels"])
def test_ndjson_fast_path_matches_the_documented_rows(
    tmp_path: Path, tiny_chunks: None, labels: bool
) -> None:
    path = save(tmp_path / "e.zip", ndjson_bytes(RESPONSES), compressed=True, member="S.json")
    export = ExportFile(path, format="ndjson", compressed=True)
    assert export._json_layout()[0].arrow_readable  # the pyarrow path is what runs here
    expected = [dict(sorted(_expected_json_row(i, labels=labels).items())) for i in range(40)]
    assert _rows(export, labels) == expected


def _python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    real_scan = _export_json.scan

    def scan(*args: Any, **kwargs: Any) -> _export_json.JsonLayout:
        layout = real_scan(*args, **kwargs)
        layout.arrow_readable = False
        return layout

    monkeypatch.setattr(_export_json, "scan", scan)


@pytest.mark.parametrize("labels", [False, True], ids=["values", "labels"])
def test_ndjson_pyarrow_and_python_decoders_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_chunks: None, labels: bool
) -> None:
    path = save(tmp_path / "e.zip", ndjson_bytes(RESPONSES), compressed=True, member="S.json")
    fast = ExportFile(path, format="ndjson", compressed=True)
    fast_rows = list(fast.iter_rows(labels=labels))
    fast_schema = fast.schema(labels=labels)
    _python_path(monkeypatch)
    slow = ExportFile(path, format="ndjson", compressed=True)
    assert not slow._json_layout()[0].arrow_readable
    assert slow.schema(labels=labels) == fast_schema
    assert list(slow.iter_rows(labels=labels)) == fast_rows


def test_ndjson_nested_object_values_are_json_text(tmp_path: Path, tiny_chunks: None) -> None:
    nested = [
        response("R_1", {"QID1": 1, "geo": {"city": "Zürich", "zip": [8001, 8002]}}),
        response("R_2", {"QID1": 2, "geo": None}),
        response("R_3", {"QID1": 3}),
    ]
    path = save(tmp_path / "e.zip", ndjson_bytes(nested), compressed=True, member="S.json")
    rows = list(ExportFile(path, format="ndjson", compressed=True).iter_rows())
    assert [r["geo"] for r in rows] == ['{"city":"Zürich","zip":[8001,8002]}', None, None]
    assert [r["QID1"] for r in rows] == [1.0, 2.0, 3.0]
    assert json.loads(str(rows[0]["geo"])) == {"city": "Zürich", "zip": [8001, 8002]}


def _iter_lines(data: bytes) -> Iterator[bytes]:
    yield from data.splitlines(keepends=True)


def test_ndjson_blank_lines_and_crlf_are_ignored(tmp_path: Path, tiny_chunks: None) -> None:
    lines = list(_iter_lines(ndjson_bytes(RESPONSES[:5])))
    data = b"\n".join(line.rstrip(b"\n") + b"\r" for line in lines) + b"\n\n"
    path = save(tmp_path / "e.zip", data, compressed=True, member="S.json")
    rows = list(ExportFile(path, format="ndjson", compressed=True).iter_rows())
    assert [r["responseId"] for r in rows] == [f"R_{i}" for i in range(5)]
