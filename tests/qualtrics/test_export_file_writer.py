"""A small writer of Qualtrics-shaped response exports for the ExportFile tests.

It writes what Qualtrics writes: CSV/TSV with the three header rows (export tag, question text,
ImportId JSON), JSON ``{"responses": [...]}`` and NDJSON, raw or as a one-file ZIP. The tests at
the bottom pin it to the real recorded export so the other tests build on a faithful shape.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).resolve().parent.parent / "fixtures" / "qualtrics-recorded"
RECORDED_CSV = RECORDED / "export_responses_sample_de.csv"


@dataclass(frozen=True)
class Col:
    """One export column: tag (row 1), question text (row 2), ImportId JSON (row 3)."""

    tag: str
    text: str
    import_id: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def import_id_json(self) -> str:
        return json.dumps({"ImportId": self.import_id, **self.extra}, separators=(",", ":"))


METADATA = [
    Col("StartDate", "Start Date", "startDate", {"timeZone": "America/Denver"}),
    Col("EndDate", "End Date", "endDate", {"timeZone": "America/Denver"}),
    Col("Status", "Response Type", "status"),
    Col("IPAddress", "IP Address", "ipAddress"),
    Col("Progress", "Progress", "progress"),
    Col("Duration (in seconds)", "Duration (in seconds)", "duration"),
    Col("Finished", "Finished", "finished"),
    Col("RecordedDate", "Recorded Date", "recordedDate", {"timeZone": "America/Denver"}),
    Col("ResponseId", "Response ID", "_recordId"),
    Col("LocationLatitude", "Location Latitude", "locationLatitude"),
    Col("LocationLongitude", "Location Longitude", "locationLongitude"),
    Col("DistributionChannel", "Distribution Channel", "distributionChannel"),
    Col("UserLanguage", "User Language", "userLanguage"),
]


def csv_bytes(
    columns: Sequence[Col],
    rows: Sequence[Sequence[str | None]],
    *,
    delimiter: str = ",",
    bom: bool = False,
    encoding: str = "utf-8",
) -> bytes:
    lines = [
        _line([c.tag for c in columns], delimiter),
        _line([c.text for c in columns], delimiter),
        _line([c.import_id_json() for c in columns], delimiter),
        *(_line(["" if cell is None else cell for cell in row], delimiter) for row in rows),
    ]
    data = "".join(lines)
    if encoding.startswith("utf-16"):
        return data.encode("utf-16")  # with BOM, as Excel-oriented tools write it
    return (b"\xef\xbb\xbf" if bom else b"") + data.encode(encoding)


def _line(cells: Sequence[str], delimiter: str) -> str:
    """One record, quoted where needed (delimiter, quote, CR or LF), LF-terminated.

    The stdlib writer leaves a lone CR unquoted when the terminator is LF; exporters quote it.
    """
    special = (delimiter, '"', "\n", "\r")
    quoted = [
        '"' + cell.replace('"', '""') + '"' if any(ch in cell for ch in special) else cell
        for cell in cells
    ]
    if quoted == [""]:
        quoted = ['""']  # a lone empty field must not read as an empty line
    return delimiter.join(quoted) + "\n"


def ndjson_bytes(responses: Sequence[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in responses).encode()


def json_bytes(responses: Sequence[Mapping[str, Any]], *, indent: int | None = None) -> bytes:
    return json.dumps({"responses": list(responses)}, ensure_ascii=False, indent=indent).encode()


def save(path: Path, data: bytes, *, compressed: bool, member: str = "Survey.csv") -> Path:
    """Write ``data`` raw, or as a ZIP holding one member (the way Qualtrics delivers it)."""
    if compressed:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(member, data)
    else:
        path.write_bytes(data)
    return path


def response(
    response_id: str,
    values: Mapping[str, Any],
    labels: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-export response object."""
    shown = sorted({k.split("_")[0] for k in values if k.startswith("QID")})
    return {
        "responseId": response_id,
        "values": dict(values),
        "labels": dict(labels or {}),
        "displayedFields": shown,
        "displayedValues": {q: [1, 2, 3] for q in shown},
    }


# --- the writer against the real recording ---


def _recorded_columns_and_rows() -> tuple[list[Col], list[list[str]]]:
    with RECORDED_CSV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    columns = []
    for tag, text, cell in zip(rows[0], rows[1], rows[2], strict=True):
        decoded = json.loads(cell)
        import_id = decoded.pop("ImportId")
        columns.append(Col(tag, text, import_id, decoded))
    return columns, rows[3:]


def test_writer_reproduces_the_recorded_export_byte_for_byte() -> None:
    columns, rows = _recorded_columns_and_rows()
    assert csv_bytes(columns, rows) == RECORDED_CSV.read_bytes()


def test_writer_zip_holds_one_member(tmp_path: Path) -> None:
    path = save(tmp_path / "e.zip", b"x", compressed=True)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["Survey.csv"]
        assert archive.read("Survey.csv") == b"x"
