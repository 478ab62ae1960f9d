"""Property: however a JSON export's responses vary, the three ways to read it agree.

Responses draw keys from a small pool (so keys appear late, go missing, change type) and values
from every JSON kind; chunks are a few hundred bytes. ``write`` on a fresh export (typed while
read once), ``iter_rows`` (parsed once, spilled) and the reference two-pass reader must give the
same columns, rows and errors.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qualflow.qualtrics import _export_io, _export_json
from qualflow.qualtrics.export_file import ExportFile, ExportFileError
from tests.qualtrics.test_export_file_writer import save

KEYS = ["startDate", "status", "QID1", "QID2_TEXT", "QID3", "segment", "Q_RecaptchaScore"]
TEXT = st.text(alphabet=st.sampled_from(list('ab1 ,"\n\\é✓:{}[]')), max_size=8)
# Each key holds one kind of value per export (as Qualtrics writes them), or now and then any.
KINDS = {
    "int": st.integers(min_value=-5, max_value=5),
    "number": st.one_of(st.integers(min_value=0, max_value=3), st.sampled_from([0.5, -1.0])),
    "date": st.sampled_from(["2024-03-01T10:00:00Z", "2024-03-01 10:00:00", "2024-03-02"]),
    "numeric text": st.sampled_from(["3", "1.5", "-2"]),
    "text": TEXT,
    "list": st.lists(st.sampled_from(["1", "2", "x"]), max_size=2),
    "bool": st.booleans(),
}
ANY = st.one_of(*KINDS.values())


@st.composite
def exports(draw: st.DrawFn) -> list[dict[str, Any]]:
    kinds = {key: draw(st.sampled_from([*KINDS, "any"])) for key in KEYS}

    def value(key: str) -> st.SearchStrategy[Any]:
        kind = kinds[key]
        return st.one_of(st.none(), ANY if kind == "any" else KINDS[kind])

    responses = []
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        keys = draw(st.lists(st.sampled_from(KEYS), max_size=6, unique=True))
        labelled = draw(st.lists(st.sampled_from(KEYS[2:5]), max_size=2, unique=True))
        responses.append(
            {
                "values": {key: draw(value(key)) for key in keys},
                "labels": {key: draw(TEXT) for key in labelled},
            }
        )
    return responses


def _lines(responses: list[dict[str, Any]], compact: bool) -> bytes:
    separators = (",", ":") if compact else (", ", ": ")
    out = []
    for number, body in enumerate(responses):
        shown = sorted(body["values"])
        response = {
            "responseId": f"R_{number}",
            **body,
            "displayedFields": shown,
            "displayedValues": {key: [1, 2] for key in shown},
        }
        out.append(json.dumps(response, ensure_ascii=False, separators=separators) + "\n")
    return "".join(out).encode()


def _outcome(read: Any) -> object:
    try:
        return read()
    except ExportFileError as exc:
        return f"ExportFileError: {exc}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    responses=exports(),
    compact=st.booleans(),
    labels=st.booleans(),
    chunk=st.sampled_from([150, 700, 3000, 1 << 20]),  # the largest: one chunk, one pass
)
def test_one_pass_spill_and_reference_readers_agree(
    tmp_path_factory: pytest.TempPathFactory,
    responses: list[dict[str, Any]],
    compact: bool,
    labels: bool,
    chunk: int,
) -> None:
    folder = tmp_path_factory.mktemp("property")
    path = save(folder / "e.zip", _lines(responses, compact), compressed=True, member="S.json")

    def export() -> ExportFile:
        return ExportFile(path, format="ndjson", compressed=True, errors="null")

    def written() -> object:
        one = export()
        one.write(folder / "o.parquet", labels=labels)
        table = pq.read_table(folder / "o.parquet")
        return table.schema, table.to_pylist(), dict(one.invalid_cells)

    def spilled() -> object:
        two = export()
        schema = two.schema(labels=labels)
        return schema, list(two.iter_rows(labels=labels)), dict(two.invalid_cells)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_export_json, "_CHUNK_BYTES", chunk)
        patch.setattr(_export_io._DeflatedMember, "_STEP", 97)
        one_pass = _outcome(written)
        spill = _outcome(spilled)
        patch.setattr(_export_json, "scan", _export_json.reference_scan)
        patch.setattr(ExportFile, "_write_json_in_one_pass", lambda *_: None)
        reference = _outcome(spilled)
    assert spill == reference
    assert one_pass == reference
