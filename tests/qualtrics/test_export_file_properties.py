"""Property tests: any header texts and any cell values survive the CSV/TSV reader."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qualflow.qualtrics.export_file import ExportFile
from tests.qualtrics.test_export_file_writer import Col, csv_bytes, save

_counter = itertools.count()

# Any text a survey author or respondent can type: commas, quotes, CR/LF, tabs, unicode.
free_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    max_size=30,
)
tricky_text = st.one_of(
    free_text,
    st.sampled_from(['"', '""', ",", "\n", "\r\n", "\t", ' "quoted", \n next', "é✓𝄞", "\\"]),
)
non_empty_text = st.one_of(free_text, tricky_text).filter(lambda s: s != "")

integers = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
datetimes = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)).map(
    lambda d: d.replace(microsecond=0)
)


@st.composite
def exports(draw: st.DrawFn) -> tuple[list[Col], list[list[str | None]], list[list[object]]]:
    """Columns with arbitrary tags/question texts, and rows of arbitrary typed values."""
    kinds = draw(
        st.lists(st.sampled_from(["text", "int", "float", "date"]), min_size=1, max_size=6)
    )
    columns: list[Col] = []
    for index, kind in enumerate(kinds):
        import_id = {
            "text": f"QID{index}_TEXT",
            "int": "duration" if index == 0 else f"QID{index}",
            "float": f"QID{index}_1",
            "date": "recordedDate" if index == 0 else f"QID{index}_DATE",
        }[kind]
        extra = {"timeZone": "UTC"} if kind == "date" else {}
        columns.append(Col(draw(tricky_text), draw(tricky_text), import_id, extra))
    rows_text: list[list[str | None]] = []
    rows_typed: list[list[object]] = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        text_row: list[str | None] = []
        typed_row: list[object] = []
        for kind in kinds:
            value: object = draw(
                st.none()
                | {"text": non_empty_text, "int": integers, "float": floats, "date": datetimes}[
                    kind
                ]
            )
            if value is None:
                text_row.append(None)
            elif kind == "date":
                assert isinstance(value, datetime)
                text_row.append(value.strftime("%Y-%m-%d %H:%M:%S"))
                value = value.replace(tzinfo=UTC)
            else:
                text_row.append(repr(value) if kind == "float" else str(value))
            if (
                kind == "int"
                and value is not None
                and columns[len(typed_row)].import_id != ("duration")
            ):
                value = float(value)  # question recodes are floats
            typed_row.append(value)
        rows_text.append(text_row)
        rows_typed.append(typed_row)
    return columns, rows_text, rows_typed


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    export=exports(),
    delimiter=st.sampled_from([",", "\t"]),
    compressed=st.booleans(),
    bom=st.booleans(),
)
def test_headers_and_values_round_trip(
    tmp_path: Path,
    export: tuple[list[Col], list[list[str | None]], list[list[object]]],
    delimiter: str,
    compressed: bool,
    bom: bool,
) -> None:
    columns, rows_text, rows_typed = export
    data = csv_bytes(columns, rows_text, delimiter=delimiter, bom=bom)
    path = save(tmp_path / f"p{next(_counter)}", data, compressed=compressed)
    reader = ExportFile(path, format="tsv" if delimiter == "\t" else "csv", compressed=compressed)

    read_columns = reader.columns
    assert [c.export_tag for c in read_columns] == [c.tag for c in columns]
    assert [c.question_text for c in read_columns] == [c.text for c in columns]
    assert [c.import_id for c in read_columns] == [c.import_id for c in columns]
    names = [c.name for c in read_columns]
    assert len(set(names)) == len(names)

    rows = list(reader.iter_rows())
    assert [list(r.values()) for r in rows] == rows_typed
    batches = list(reader.iter_batches(batch_size=2))
    assert all(b.schema == reader.arrow_schema for b in batches)
    assert sum(b.num_rows for b in batches) == len(rows_typed)
