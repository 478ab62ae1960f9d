"""Column model of a response export: what each column is and which Arrow type it gets.

Types are decided before any data row is read, from the column's ImportId (row 3 of a CSV/TSV
export, the ``values`` keys of a JSON export) and the survey-metadata names Qualtrics uses, so
every batch of one export shares one schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

ColumnKind = Literal["timestamp", "integer", "float", "string"]
"""How a column is typed: UTC timestamp, int64, float64 or UTF-8 string."""

COLUMN_KINDS: tuple[ColumnKind, ...] = ("timestamp", "integer", "float", "string")

ARROW_TYPES: dict[ColumnKind, pa.DataType] = {
    "timestamp": pa.timestamp("us", tz="UTC"),
    "integer": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
}

# Survey metadata ImportIds (research notes §4.1 surveyMetadataIds + CSV ImportIds).
_TIMESTAMP_IDS = frozenset({"startDate", "endDate", "recordedDate", "lastModifiedDate"})
_INTEGER_IDS = frozenset({"status", "progress", "duration", "finished"})
_FLOAT_IDS = frozenset(
    {
        "locationLatitude",
        "locationLongitude",
        # Qualtrics fraud-detection embedded fields.
        "Q_RecaptchaScore",
        "Q_RelevantIDDuplicateScore",
        "Q_RelevantIDFraudScore",
    }
)

# `QID12`, `QID12_3`, `QID12_TEXT`, loop & merge `1_QID10_1`.
_QUESTION_RE = re.compile(r"^(?:\d+_)?QID\d+(?P<suffix>(?:_.*)?)$")
_STRING_QUESTION_SUFFIX_RE = re.compile(r"(?:_TEXT|_DO$|_FILE_ID$|_FILE_NAME$|_FILE_TYPE$)")
_SCORE_RE = re.compile(r"^SC_\w+$")


def kind_for_import_id(import_id: str, *, has_time_zone: bool = False) -> ColumnKind:
    """The type a column gets from its ImportId alone.

    Dates (known metadata names, or any ImportId carrying a ``timeZone``) are timestamps;
    ``status/progress/duration/finished`` integers; latitude/longitude and scores floats;
    question columns (``QID…``) floats (recodes, matrix rows, sliders, NPS groups, timings) except
    text-like ones (``_TEXT``, display order ``_DO``, file-upload names) which are strings;
    ids, labels, embedded data and anything unknown stay strings.
    """
    if has_time_zone or import_id in _TIMESTAMP_IDS:
        return "timestamp"
    if import_id in _INTEGER_IDS:
        return "integer"
    if import_id in _FLOAT_IDS or _SCORE_RE.match(import_id):
        return "float"
    match = _QUESTION_RE.match(import_id)
    if match is not None:
        if _STRING_QUESTION_SUFFIX_RE.search(match.group("suffix")):
            return "string"
        return "float"
    return "string"


@dataclass(frozen=True, slots=True)
class ExportColumn:
    """One column of a response export.

    Attributes:
        name: the column's name in rows, batches and written files (the export tag, de-duplicated,
            or the ImportId; see ``ExportFile(names=...)``).
        export_tag: row 1 of a CSV/TSV export (``"Q1"``, ``"StartDate"``); the ImportId for
            JSON exports, which carry no tags.
        question_text: row 2 of a CSV/TSV export (may contain newlines); ``None`` for JSON.
        import_id: row 3 ``ImportId`` (``"QID1"``, ``"startDate"``, ``"1_QID10_1"``) or the
            ``values`` key of a JSON export; ``"responseId"`` for the JSON response id.
        time_zone: the ``timeZone`` of a date column in a CSV/TSV export, if given.
        choice_id: the ``choiceId`` of a CSV/TSV column that holds one choice of a multi-answer
            question (exports with ``breakoutSets``, the default, split those into a column per
            choice, each with the question's ImportId).
        kind: how the values are typed (see :data:`ColumnKind`).
        is_label: True for a label column (``includeLabelColumns`` exports, or ``*_label``
            columns added by ``labels=True``).
        label_of: for a label column, the ``name`` of the column it labels (if present).
    """

    name: str
    export_tag: str
    question_text: str | None
    import_id: str
    time_zone: str | None
    kind: ColumnKind
    is_label: bool = False
    label_of: str | None = None
    choice_id: str | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.kind]


class HeaderError(ValueError):
    """A CSV/TSV header cell that is not the expected ImportId JSON."""


@dataclass(frozen=True, slots=True)
class ImportIdCell:
    import_id: str
    time_zone: str | None
    is_label_column: bool
    choice_id: str | None = None


def parse_import_id_cell(cell: str) -> ImportIdCell:
    """Parse one row-3 cell: ``{"ImportId":"QID1","timeZone":"…","IsLabelsColumn":true}``,
    or ``{"ImportId":"QID4","choiceId":"2"}`` for one choice of a split multi-answer question."""
    try:
        decoded = json.loads(cell)
    except json.JSONDecodeError:
        raise HeaderError(f"not ImportId JSON: {cell[:80]!r}") from None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("ImportId"), str):
        raise HeaderError(f"no ImportId string in {cell[:80]!r}")
    time_zone = decoded.get("timeZone")
    if time_zone is not None and not isinstance(time_zone, str):
        raise HeaderError(f"timeZone is not a string in {cell[:80]!r}")
    choice_id = decoded.get("choiceId")
    if choice_id is not None and not isinstance(choice_id, str | int):
        raise HeaderError(f"choiceId is not a string in {cell[:80]!r}")
    return ImportIdCell(
        import_id=decoded["ImportId"],
        time_zone=time_zone or None,
        # Qualtrics documents IsLabelsColumn; some exporters write "label": true.
        is_label_column=bool(decoded.get("IsLabelsColumn") or decoded.get("label") is True),
        choice_id=None if choice_id is None else str(choice_id),
    )


# Question types whose every export column is text (forms, browser meta info, drill-downs…).
_TEXT_QUESTION_TYPES = frozenset({"TE", "Meta", "DD", "FileUpload", "Draw", "Captcha", "SBS"})
_QUESTION_ID_RE = re.compile(r"^(?:\d+_)?(?P<qid>QID\d+)(?P<suffix>(?:_.*)?)$")


def text_import_ids_from_survey(
    survey: Mapping[str, object],
) -> Callable[[str, str | None], bool]:
    """From a survey definition, a predicate: does the column with this ImportId (and choiceId,
    for one choice of a split multi-answer question) hold text, not a number?

    Accepts ``GET /survey-definitions/{id}`` (``Questions`` with ``QuestionType``/``Selector``)
    or the legacy ``GET /surveys/{id}`` object (``questions`` with ``questionType``), with or
    without the ``result`` envelope. Text: multi-answer choices (codes comma-joined in one
    cell), multi-answer matrix rows, and every column of text-entry, meta-info, drill-down,
    file-upload, signature and side-by-side questions. A split choice column holds one code,
    so it is a number like any single answer.
    """
    body: object = survey.get("result", survey)
    whole: set[str] = set()  # every column of these questions is text
    bare: set[str] = set()  # the QIDn / QIDn_row columns hold comma-joined codes
    if isinstance(body, Mapping):
        definitions = body.get("Questions")
        legacy = body.get("questions")
        if isinstance(definitions, Mapping):
            for qid, question in definitions.items():
                if isinstance(question, Mapping):
                    _classify(
                        str(qid),
                        question.get("QuestionType"),
                        question.get("Selector"),
                        question.get("SubSelector"),
                        whole,
                        bare,
                    )
        elif isinstance(legacy, Mapping):
            for qid, question in legacy.items():
                kind = question.get("questionType") if isinstance(question, Mapping) else None
                if isinstance(kind, Mapping):
                    _classify(
                        str(qid),
                        kind.get("type"),
                        kind.get("selector"),
                        kind.get("subSelector"),
                        whole,
                        bare,
                    )

    def is_text(import_id: str, choice_id: str | None = None) -> bool:
        match = _QUESTION_ID_RE.match(import_id)
        if match is None:
            return False
        qid, suffix = match.group("qid"), match.group("suffix")
        if qid in whole:
            return True
        if choice_id is not None:
            return False
        return qid in bare and (suffix == "" or suffix.count("_") == 1)

    return is_text


def _classify(
    qid: str,
    question_type: object,
    selector: object,
    sub_selector: object,
    whole: set[str],
    bare: set[str],
) -> None:
    multi_choice = question_type == "MC" and isinstance(selector, str) and selector.startswith("MA")
    multi_matrix = question_type == "Matrix" and sub_selector == "MultipleAnswer"
    if question_type in _TEXT_QUESTION_TYPES:
        whole.add(qid)
    elif multi_choice or multi_matrix:
        bare.add(qid)


def unique_names(names: Iterable[str]) -> list[str]:
    """Make names unique by suffixing repeats with ``_2``, ``_3``… (first one unchanged)."""
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        candidate, counter = name, 1
        while candidate in seen:
            counter += 1
            candidate = f"{name}_{counter}"
        seen.add(candidate)
        result.append(candidate)
    return result


def resolve_overrides(
    columns: Iterable[ExportColumn],
    overrides: Mapping[str, ColumnKind] | None,
    *,
    absent_ok: bool = False,
) -> dict[str, ColumnKind]:
    """Map ``column_types`` keys (name, export tag or ImportId) to column names.

    A key naming no column is an error, unless ``absent_ok`` (JSON exports: a response holds
    only the keys it answered, so an export without responses, or none answering a question,
    lacks that question's column). A kind that is not a :data:`ColumnKind` is always an error.
    """
    if not overrides:
        return {}
    columns = list(columns)
    resolved: dict[str, ColumnKind] = {}
    for key, kind in overrides.items():
        if kind not in COLUMN_KINDS:
            raise ValueError(f"column_types[{key!r}] must be one of {COLUMN_KINDS}, not {kind!r}")
        matches = [
            c.name for c in columns if not c.is_label and key in (c.name, c.export_tag, c.import_id)
        ]
        if not matches and not absent_ok:
            raise ValueError(f"column_types names a column that is not in the export: {key!r}")
        for name in matches:
            resolved[name] = kind
    return resolved
