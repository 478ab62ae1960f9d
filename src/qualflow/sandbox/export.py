"""Response export files: option parsing and streaming CSV/TSV/JSON/NDJSON (optionally zipped).

Files are generated while they are downloaded, row by row, so a 100k-response export never sits
in memory. CSV/TSV have the three header rows of a real export (export tags, question text,
ImportId JSON); values follow the real conventions (recodes, ``YYYY-MM-DD HH:MM:SS`` dates in the
export time zone, comma-joined multi-select codes).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from qualflow.sandbox import errors
from qualflow.sandbox.errors import bad_request
from qualflow.sandbox.model import (
    NPS_GROUPS,
    Choice,
    ExportColumn,
    Question,
    Survey,
    plain_text,
    split_multi_answers,
)

FORMATS = ("csv", "tsv", "json", "ndjson")
UNSUPPORTED_FORMATS = ("spss", "xml")

STATUS_LABELS = {
    0: "IP Address",
    1: "Survey Preview",
    2: "Survey Test",
    4: "Imported",
    8: "Spam",
    9: "Survey Preview Spam",
    12: "Imported Spam",
    16: "Offline",
    17: "Offline Survey Preview",
}

# (values key, export tag, header text, kind); the order of a real export.
METADATA_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("startDate", "StartDate", "Start Date", "date"),
    ("endDate", "EndDate", "End Date", "date"),
    ("status", "Status", "Response Type", "status"),
    ("ipAddress", "IPAddress", "IP Address", "meta"),
    ("progress", "Progress", "Progress", "meta"),
    ("duration", "Duration (in seconds)", "Duration (in seconds)", "meta"),
    ("finished", "Finished", "Finished", "finished"),
    ("recordedDate", "RecordedDate", "Recorded Date", "date"),
    ("_recordId", "ResponseId", "Response ID", "meta"),
    ("recipientLastName", "RecipientLastName", "Recipient Last Name", "meta"),
    ("recipientFirstName", "RecipientFirstName", "Recipient First Name", "meta"),
    ("recipientEmail", "RecipientEmail", "Recipient Email", "meta"),
    ("externalDataReference", "ExternalReference", "External Data Reference", "meta"),
    ("locationLatitude", "LocationLatitude", "Location Latitude", "meta"),
    ("locationLongitude", "LocationLongitude", "Location Longitude", "meta"),
    ("distributionChannel", "DistributionChannel", "Distribution Channel", "meta"),
    ("userLanguage", "UserLanguage", "User Language", "meta"),
)
METADATA_KEYS = tuple(key for key, *_ in METADATA_COLUMNS)
LAST_MODIFIED_KEY = "lastModifiedDate"
_KNOWN_FIELDS = frozenset(
    {
        "format", "compress", "useLabels", "includeLabelColumns", "startDate", "endDate",
        "timeZone", "limit", "questionIds", "embeddedDataIds", "surveyMetadataIds",
        "seenUnansweredRecode", "multiselectSeenUnansweredRecode", "includeDisplayOrder",
        "formatDecimalAsComma", "breakoutSets", "exportResponsesInProgress", "filterId",
        "sortByLastModifiedDate", "allowContinuation", "continuationToken", "newlineReplacement",
    }
)  # fmt: skip
# surveyMetadataIds spells externalDataReference as "externalReference".
_METADATA_ALIASES = {"externalReference": "externalDataReference"}


def parse_iso(value: Any, name: str) -> datetime:
    """Parse an ISO-8601 timestamp (``Z`` or offset; naive means UTC); 400 naming ``name``."""
    if not isinstance(value, str) or not value:
        raise bad_request(
            f"Invalid request. Missing or invalid parameter {name}: expected ISO-8601."
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(
            f"Invalid request. Missing or invalid parameter {name}: {value!r} is not ISO-8601."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise bad_request(
            f"Invalid request. Missing or invalid parameter {name}: expected a boolean."
        )
    return value


def _int_or_none(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid_param(name, "expected an integer")
    return value


def _str_list(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(
            f"Invalid request. Missing or invalid parameter {name}: expected an array of strings."
        )
    return list(value)


@dataclass
class ExportOptions:
    format: str = "csv"
    compress: bool = True
    use_labels: bool = False
    include_label_columns: bool = False
    start: datetime | None = None
    end: datetime | None = None
    time_zone: str = "UTC"
    limit: int | None = None
    question_ids: list[str] | None = None
    embedded_data_ids: list[str] | None = None
    survey_metadata_ids: list[str] | None = None
    allow_continuation: bool = False
    continuation_token: str | None = None
    in_progress: bool = False
    newline_replacement: str | None = None
    decimal_comma: bool = False
    sort_by_modified: bool = False
    include_display_order: bool = False
    breakout_sets: bool = True
    seen_unanswered_recode: int | None = None
    multiselect_seen_unanswered_recode: int | None = None
    filter_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def recodes_seen_unanswered(self) -> bool:
        return (
            self.seen_unanswered_recode is not None
            or self.multiselect_seen_unanswered_recode is not None
        )

    @property
    def multiselect_recode(self) -> int | None:
        """The multi-select recode; the spec: "If not set, this will be the
        ``seenUnansweredRecode`` value"."""
        if self.multiselect_seen_unanswered_recode is not None:
            return self.multiselect_seen_unanswered_recode
        return self.seen_unanswered_recode

    @classmethod
    def parse(cls, body: Any, survey: Survey) -> ExportOptions:
        """Validate an ``ExportCreationRequest`` body; 400 naming the bad field."""
        if not isinstance(body, dict):
            raise bad_request("Invalid request body: expected a JSON object.")
        fmt = body.get("format")
        if not isinstance(fmt, str) or not fmt:
            raise bad_request("Invalid request. Missing or invalid parameter format.")
        if fmt in UNSUPPORTED_FORMATS:
            raise bad_request(
                f"Export format {fmt!r} is not supported by the sandbox "
                f"(supported: {', '.join(FORMATS)})."
            )
        if fmt not in FORMATS:
            raise bad_request(
                f"Invalid request. Missing or invalid parameter format: {fmt!r} "
                f"(expected one of {', '.join(FORMATS + UNSUPPORTED_FORMATS)})."
            )
        opts = cls(format=fmt)
        opts.compress = _bool(body, "compress", True)
        opts.use_labels = _bool(body, "useLabels", False)
        opts.include_label_columns = _bool(body, "includeLabelColumns", False)
        if opts.use_labels and opts.include_label_columns:
            raise bad_request("useLabels and includeLabelColumns cannot be used together.")
        if body.get("startDate") is not None:
            opts.start = parse_iso(body["startDate"], "startDate")
        if body.get("endDate") is not None:
            opts.end = parse_iso(body["endDate"], "endDate")
        if opts.start and opts.end and opts.start >= opts.end:
            raise bad_request("Invalid request: startDate must be before endDate.")
        tz = body.get("timeZone", "UTC")
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise bad_request(
                f"Invalid request. Missing or invalid parameter timeZone: {tz!r}."
            ) from None
        opts.time_zone = str(tz)
        limit = body.get("limit")
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise errors.invalid_param("limit", "expected a positive integer")
            opts.limit = limit
        opts.question_ids = _str_list(body, "questionIds")
        if opts.question_ids is not None:
            unknown = [q for q in opts.question_ids if q not in survey.questions]
            if unknown:
                raise errors.invalid_param("questionIds", f"unknown {', '.join(unknown)}")
        opts.embedded_data_ids = _str_list(body, "embeddedDataIds")
        metadata = _str_list(body, "surveyMetadataIds")
        if metadata is not None:
            metadata = [_METADATA_ALIASES.get(m, m) for m in metadata]
            unknown = [m for m in metadata if m not in METADATA_KEYS]
            if unknown:
                raise errors.invalid_param("surveyMetadataIds", f"unknown {', '.join(unknown)}")
        opts.survey_metadata_ids = metadata
        opts.allow_continuation = _bool(body, "allowContinuation", False)
        token = body.get("continuationToken")
        # An empty token is a bad one, not "no token": read as the latter, a job whose saved
        # token came back empty would export every response again.
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise bad_request("Invalid request. Missing or invalid parameter continuationToken.")
        opts.continuation_token = token
        if (opts.allow_continuation or token) and body.get("filterId"):
            raise bad_request("Continuation exports cannot be combined with filterId.")
        opts.in_progress = _bool(body, "exportResponsesInProgress", False)
        opts.decimal_comma = _bool(body, "formatDecimalAsComma", False)
        opts.sort_by_modified = _bool(body, "sortByLastModifiedDate", False)
        opts.breakout_sets = _bool(body, "breakoutSets", True)
        opts.include_display_order = _bool(body, "includeDisplayOrder", False)
        opts.seen_unanswered_recode = _int_or_none(body, "seenUnansweredRecode")
        opts.multiselect_seen_unanswered_recode = _int_or_none(
            body, "multiselectSeenUnansweredRecode"
        )
        unknown = sorted(set(body) - _KNOWN_FIELDS)
        if unknown:
            raise bad_request(f"Invalid request: unknown export field(s) {', '.join(unknown)}.")
        replacement = body.get("newlineReplacement")
        if replacement is not None and not isinstance(replacement, str):
            raise bad_request("Invalid request. Missing or invalid parameter newlineReplacement.")
        opts.newline_replacement = replacement
        filter_id = body.get("filterId")
        if filter_id is not None:
            if not isinstance(filter_id, str) or not filter_id:
                raise errors.invalid_param("filterId", "expected a filter id")
            if opts.sort_by_modified:
                raise bad_request("sortByLastModifiedDate cannot be combined with filterId.")
            # An unknown filter is a bad request: the spec lists 404 only for an unknown survey.
            if survey.find_filter(filter_id) is None:
                raise errors.invalid_param(
                    "filterId",
                    f"{filter_id!r} is not a filter of survey {survey.id} "
                    f"(see GET /surveys/{survey.id}/filters)",
                )
            opts.filter_id = filter_id
        return opts

    def to_record(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "compress": self.compress,
            "useLabels": self.use_labels,
            "includeLabelColumns": self.include_label_columns,
            "startDate": self.start.isoformat() if self.start else None,
            "endDate": self.end.isoformat() if self.end else None,
            "timeZone": self.time_zone,
            "limit": self.limit,
            "questionIds": self.question_ids,
            "embeddedDataIds": self.embedded_data_ids,
            "surveyMetadataIds": self.survey_metadata_ids,
            "allowContinuation": self.allow_continuation,
            "continuationToken": self.continuation_token,
            "exportResponsesInProgress": self.in_progress,
            "newlineReplacement": self.newline_replacement,
            "formatDecimalAsComma": self.decimal_comma,
            "sortByLastModifiedDate": self.sort_by_modified,
            "includeDisplayOrder": self.include_display_order,
            "breakoutSets": self.breakout_sets,
            "seenUnansweredRecode": self.seen_unanswered_recode,
            "multiselectSeenUnansweredRecode": self.multiselect_seen_unanswered_recode,
            "filterId": self.filter_id,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any], survey: Survey) -> ExportOptions:
        body = {k: v for k, v in data.items() if v is not None}
        body["continuationToken"] = None
        opts = cls.parse(body, survey)
        opts.continuation_token = data.get("continuationToken")
        return opts


def selected_columns(survey: Survey, opts: ExportOptions) -> list[ExportColumn]:
    """The export's columns, in real-export order: metadata, questions, embedded data."""
    cols: list[ExportColumn] = []
    wanted_meta = set(opts.survey_metadata_ids) if opts.survey_metadata_ids is not None else None
    for key, tag, header, kind in METADATA_COLUMNS:
        if wanted_meta is not None and key not in wanted_meta:
            continue
        extra = {"timeZone": opts.time_zone} if kind == "date" else {}
        cols.append(ExportColumn(key, tag, header, kind, import_extra=extra))
    if opts.sort_by_modified:
        cols.append(
            ExportColumn(
                LAST_MODIFIED_KEY,
                "LastModifiedDate",
                "Last Modified Date",
                "date",
                import_extra={"timeZone": opts.time_zone},
            )
        )
    wanted_q = set(opts.question_ids) if opts.question_ids is not None else None
    for col in survey.question_columns():
        if wanted_q is None or (col.question is not None and col.question.qid in wanted_q):
            cols.append(col)
    wanted_ed = set(opts.embedded_data_ids) if opts.embedded_data_ids is not None else None
    for col in survey.embedded_columns():
        if wanted_ed is None or col.key in wanted_ed:
            cols.append(col)
    if wanted_ed is not None:
        declared = {c.key for c in cols}
        cols.extend(
            ExportColumn(n, n, n, "embedded")
            for n in opts.embedded_data_ids or []
            if n not in declared
        )
    if opts.include_display_order:
        cols.extend(display_order_columns(survey, wanted_q))
    return cols


# -- display order and "seen" ------------------------------------------------------------------
#
# Qualtrics records what each respondent was shown: the order of randomised flow elements,
# block questions and answer choices (``includeDisplayOrder`` exports it as ``…_DO`` columns,
# choice codes joined with ``|``), and which questions were seen (``displayedFields``, and what
# ``seenUnansweredRecode`` fills). The sandbox never randomises, so every order is the natural
# one; and it keeps no page history, so "seen" is inferred: a question that shows under
# conditions (display logic, a flow branch, a randomizer showing a subset) was seen only when it
# was answered; any other was seen when the response finished, or when the respondent answered
# it or a later question (a partial response stops where the respondent left).
# The research notes give the spec's wording only; the ``…_DO`` names and header texts follow
# real CSV exports (``Q1_DO``, ``FL_12_DO``) and are the part most worth checking against one.

_DO_SUFFIX = "_DO"
_RANDOMIZERS = {"BlockRandomizer": "Block Randomizer", "Randomizer": "Randomizer"}


def _is_randomized(setting: Any) -> bool:
    if isinstance(setting, dict):
        return str(setting.get("Type") or "None") != "None"
    return setting not in (None, "", False, "false", "None")


def _children_shown(element: dict[str, Any]) -> list[dict[str, Any]]:
    children = [c for c in element.get("Flow") or [] if isinstance(c, dict)]
    subset = element.get("SubSet")
    try:
        count = int(subset) if subset not in (None, "") else 0
    except (TypeError, ValueError):
        count = 0
    return children[:count] if 0 < count < len(children) else children


def _flow_walk(
    elements: list[Any], conditional: bool, out: list[tuple[dict[str, Any], bool]]
) -> None:
    for e in elements:
        if not isinstance(e, dict):
            continue
        out.append((e, conditional))
        kind = e.get("Type")
        children = [c for c in e.get("Flow") or [] if isinstance(c, dict)]
        if kind == "Branch":
            _flow_walk(children, True, out)
        elif kind in _RANDOMIZERS:
            shown = _children_shown(e)
            _flow_walk(children, conditional or len(shown) < len(children), out)
        else:
            _flow_walk(children, conditional, out)


def _flow(survey: Survey) -> list[tuple[dict[str, Any], bool]]:
    """Every flow element, depth first, with whether it shows only under conditions."""
    out: list[tuple[dict[str, Any], bool]] = []
    _flow_walk(survey.flow, False, out)
    return out


def _order_pool(q: Question) -> list[Choice]:
    return q.choices if q.type in ("MC", "Matrix", "RO", "Slider") else []


@dataclass(frozen=True)
class _DisplayOrder:
    """One ``…_DO`` column and the order it shows (the sandbox never shuffles: the natural one).

    ``shown_with`` is the block or question whose being seen puts the order in a response;
    ``None`` for a flow randomizer, which every response passes through."""

    column: ExportColumn
    order: str
    shown_with: str | None


def _display_orders(survey: Survey) -> list[_DisplayOrder]:
    """Flow randomizers, randomised blocks, then questions with randomised choices."""
    orders: list[_DisplayOrder] = []
    for e, _ in _flow(survey):
        kind, flow_id = e.get("Type"), e.get("FlowID")
        if kind in _RANDOMIZERS and isinstance(flow_id, str):
            key = f"{flow_id}{_DO_SUFFIX}"
            header = f"{flow_id} - {_RANDOMIZERS[str(kind)]} - Display Order"
            shown = "|".join(str(c.get("FlowID") or c.get("ID") or "") for c in _children_shown(e))
            orders.append(
                _DisplayOrder(ExportColumn(key, key, header, "display_order"), shown, None)
            )
    for block in survey.blocks.values():
        if block.type != "Trash" and _is_randomized(
            (block.options or {}).get("RandomizeQuestions")
        ):
            column = ExportColumn(
                f"{block.id}{_DO_SUFFIX}",
                f"{block.description}{_DO_SUFFIX}",
                f"{block.description} - Display Order",
                "display_order",
            )
            orders.append(_DisplayOrder(column, "|".join(block.question_ids()), block.id))
    for qid in survey.ordered_question_ids():
        q = survey.questions[qid]
        pool = _order_pool(q)
        if pool and _is_randomized(q.extra.get("Randomization")):
            column = ExportColumn(
                f"{qid}{_DO_SUFFIX}",
                f"{q.tag}{_DO_SUFFIX}",
                f"{plain_text(q.text)} - Display Order",
                "display_order",
                q,
            )
            orders.append(_DisplayOrder(column, "|".join(c.code for c in pool), qid))
    return orders


def display_order_columns(survey: Survey, wanted_q: set[str] | None = None) -> list[ExportColumn]:
    """The ``…_DO`` columns: flow randomizers and randomised blocks always (as the spec says),
    then the questions with randomised choices (only those of ``questionIds`` when given)."""
    return [
        o.column
        for o in _display_orders(survey)
        if wanted_q is None or o.column.question is None or o.column.question.qid in wanted_q
    ]


def _code_value(code: str) -> int | str:
    return int(code) if code.lstrip("-").isdecimal() else code


@dataclass(frozen=True)
class _Shown:
    """One question as the seen-model needs it."""

    qid: str
    keys: tuple[str, ...]  # every values key of the question (to tell whether it was answered)
    fields: tuple[tuple[str, str], ...]  # its answer columns, with each one's kind
    displayed_values: dict[str, list[int | str]]  # codes offered, by answer column
    conditional: bool
    block_id: str | None


def _answer_fields(q: Question) -> list[ExportColumn]:
    """The columns that hold the answer itself (not the NPS group, not an "other" text box)."""
    return [
        c
        for c in q.export_columns()
        if c.kind != "nps_group" and not (q.type == "MC" and c.kind == "text")
    ]


class SeenModel:
    """Which questions a response was shown, and the display orders, for one export."""

    def __init__(self, survey: Survey) -> None:
        flow = _flow(survey)
        conditional_blocks = {
            str(e.get("ID")) for e, conditional in flow if conditional and e.get("ID")
        }
        block_of = {
            qid: block.id for block in survey.blocks.values() for qid in block.question_ids()
        }
        self.questions: list[_Shown] = []
        for qid in survey.ordered_question_ids():
            q = survey.questions[qid]
            fields = _answer_fields(q)
            if not fields:
                continue  # descriptive text: nothing to see in the data
            shown: dict[str, list[int | str]] = {}
            for col in fields:
                if col.kind in ("single", "multi"):
                    pool = q.answers if q.type == "Matrix" else q.choices
                    shown[col.key] = [_code_value(c.code) for c in pool]
            block_id = block_of.get(qid)
            self.questions.append(
                _Shown(
                    qid=qid,
                    keys=tuple(c.key for c in q.export_columns()),
                    fields=tuple((c.key, c.kind) for c in fields),
                    displayed_values=shown,
                    conditional="DisplayLogic" in q.extra or block_id in conditional_blocks,
                    block_id=block_id,
                )
            )
        self.any_conditional = any(q.conditional for q in self.questions)
        display_orders = _display_orders(survey)
        # Flow randomizers' orders are in every response; a block's or a question's only when
        # it was seen.
        self.orders = {o.column.key: o.order for o in display_orders if o.shown_with is None}
        self.shown_orders: dict[str, list[tuple[str, str]]] = {}
        for o in display_orders:
            if o.shown_with is not None:
                self.shown_orders.setdefault(o.shown_with, []).append((o.column.key, o.order))

    def seen(self, record: dict[str, Any]) -> list[_Shown]:
        """The questions ``record`` was shown; ``self.questions`` itself when it saw them all
        (callers cache what they derive from that list)."""
        finished = str(record.get("finished", 1)) in ("1", "True", "true")
        if finished and not self.any_conditional:
            return self.questions
        answered = [any(not _blank(record.get(k)) for k in q.keys) for q in self.questions]
        last = max((i for i, a in enumerate(answered) if a), default=-1)
        return [
            q
            for i, q in enumerate(self.questions)
            if answered[i] or (not q.conditional and (finished or i <= last))
        ]

    def derive(
        self, record: dict[str, Any], opts: ExportOptions, seen: list[_Shown] | None = None
    ) -> dict[str, Any]:
        """``record`` with what the export adds: recodes of seen-unanswered answers and the
        display orders (a copy; the stored values are shared with other readers)."""
        out = dict(record)
        if seen is None:
            seen = self.seen(record)
        if opts.recodes_seen_unanswered:
            single, multi = opts.seen_unanswered_recode, opts.multiselect_recode
            text = None if single is None else str(single)
            for q in seen:
                for key, kind in q.fields:
                    recode = multi if kind == "multi" else single
                    if recode is not None and _blank(out.get(key)):
                        # A text answer is a string in JSON, so its recode is one too (a CSV
                        # cell reads the same either way).
                        out[key] = text if kind == "text" else recode
        if opts.include_display_order:
            out.update(self.orders)
            for q in seen:
                out.update(self.shown_orders.get(q.qid, ()))
            for block_id in {q.block_id for q in seen if q.block_id is not None}:
                out.update(self.shown_orders.get(block_id, ()))
        return out


class _ChoiceSplit:
    """Splits multi-answer questions into a column per choice (``breakoutSets``, CSV/TSV).

    A selected choice's column holds its code; with a multi-select recode set, an unselected
    one holds the recode, as does every choice of a question seen but left unanswered.
    """

    def __init__(self, columns: list[ExportColumn], recode: int | None) -> None:
        self.columns = columns
        self.recode = recode
        # (the question's values key, [(choice column key, code as stored, code as text)])
        self.questions: list[tuple[str, list[tuple[str, int | str, str]]]] = []
        for col in columns:
            if col.kind == "choice" and col.question is not None:
                if not self.questions or self.questions[-1][0] != col.import_key:
                    self.questions.append((col.import_key, []))
                choice = col.question.choice(col.import_extra["choiceId"])
                assert choice is not None
                self.questions[-1][1].append((col.key, _code_value(choice.code), choice.code))

    @classmethod
    def of(cls, columns: list[ExportColumn], opts: ExportOptions) -> _ChoiceSplit | None:
        if not any(c.kind == "multi" for c in columns):
            return None
        recode = opts.multiselect_recode if opts.recodes_seen_unanswered else None
        return cls(split_multi_answers(columns), recode)

    def apply(self, record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        for key, choices in self.questions:
            value = out.pop(key, None)
            if _blank(value):
                continue
            chosen = {str(v) for v in value} if isinstance(value, list) else {str(value)}
            if not isinstance(value, list) and not any(text in chosen for *_, text in choices):
                # Not a code: the seen-but-unanswered recode, which every choice shows.
                for choice_key, *_ in choices:
                    out[choice_key] = value
                continue
            for choice_key, code, text in choices:
                out[choice_key] = code if text in chosen else self.recode
        return out


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def file_name(survey: Survey, fmt: str) -> str:
    # Only characters that are unsafe in file names are replaced (as in real export entries).
    safe = "".join("_" if ch in '/\\:*?"<>|' or ord(ch) < 32 else ch for ch in survey.name)
    safe = safe.strip()
    return f"{safe or survey.id}.{fmt}"


def media_type(fmt: str, compress: bool) -> str:
    if compress:
        return "application/zip"
    return {
        "csv": "text/csv; charset=utf-8",
        "tsv": "text/tab-separated-values; charset=utf-8",
        "json": "application/json",
        "ndjson": "application/x-ndjson",
    }[fmt]


class _Sink(io.RawIOBase):
    """A write-only, unseekable stream whose bytes are drained in chunks (for zipfile)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._size += len(chunk)
        self._pos += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._pos

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        return out

    @property
    def buffered(self) -> int:
        return self._size


_CHUNK = 256 * 1024


def stream_file(
    survey: Survey, records: Iterable[dict[str, Any]], opts: ExportOptions
) -> Iterator[bytes]:
    """The export file as byte chunks: zipped (one entry) when ``opts.compress``."""
    text = _stream_text(survey, records, opts)
    if not opts.compress:
        buf: list[str] = []
        size = 0
        for piece in text:
            buf.append(piece)
            size += len(piece)
            if size >= _CHUNK:
                yield "".join(buf).encode("utf-8")
                buf.clear()
                size = 0
        if buf:
            yield "".join(buf).encode("utf-8")
        return
    sink = _Sink()
    zf = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    # Opening by name makes the entry inherit the archive's fast compression level.
    with zf, zf.open(file_name(survey, opts.format), "w", force_zip64=True) as entry:
        pending: list[str] = []
        size = 0
        for piece in text:
            pending.append(piece)
            size += len(piece)
            if size >= _CHUNK:
                entry.write("".join(pending).encode("utf-8"))
                pending.clear()
                size = 0
                if sink.buffered:
                    yield sink.drain()
        if pending:
            entry.write("".join(pending).encode("utf-8"))
    yield sink.drain()


class _LineWriter:
    """csv.writer target that hands each written line back to the generator."""

    def __init__(self) -> None:
        self.line = ""

    def write(self, s: str) -> int:
        self.line = s
        return len(s)


_FINISHED_LABELS: dict[Any, str] = {1: "True", 0: "False", "1": "True", "0": "False"}


@dataclass
class _Planned:
    """A column with its label lookup precomputed once per export (the per-row hot path)."""

    key: str
    kind: str
    labels: dict[Any, Any] | None
    is_question: bool

    def label(self, value: Any) -> Any:
        if self.labels is None or value is None or value == "":
            return None
        if isinstance(value, list):
            return [self.labels.get(v, v) for v in value]
        return self.labels.get(value)


def _label_map(col: ExportColumn) -> dict[Any, Any] | None:
    """value → label for ``col`` (keys as both str and int codes, the way values arrive)."""
    pairs: dict[str, str] = {}
    q = col.question
    if col.kind == "status":
        pairs = {str(k): v for k, v in STATUS_LABELS.items()}
    elif col.kind == "finished":
        return dict(_FINISHED_LABELS)
    elif col.kind == "nps_group":
        pairs = {str(k): v for k, v in NPS_GROUPS.items()}
    elif col.kind in ("single", "multi", "choice") and q is not None:
        pool = q.answers if q.type == "Matrix" else q.choices
        pairs = {c.code: plain_text(c.text) for c in pool}
    else:
        return None
    out: dict[Any, Any] = dict(pairs)
    for code, text in pairs.items():
        if code.lstrip("-").isdecimal():
            out[int(code)] = text
    return out


def _plan(cols: list[ExportColumn]) -> list[_Planned]:
    return [_Planned(c.key, c.kind, _label_map(c), c.question is not None) for c in cols]


def _stream_text(
    survey: Survey, records: Iterable[dict[str, Any]], opts: ExportOptions
) -> Iterator[str]:
    cols = selected_columns(survey, opts)
    derives = opts.include_display_order or opts.recodes_seen_unanswered
    if opts.format in ("csv", "tsv"):
        if derives:
            model = SeenModel(survey)
            records = (model.derive(r, opts) for r in records)
        if opts.breakout_sets:
            split = _ChoiceSplit.of(cols, opts)
            if split is not None:
                cols = split.columns
                records = (split.apply(r) for r in records)
        yield from _stream_delimited(cols, records, opts)
        return
    plan = _plan(cols)
    model = SeenModel(survey)
    dumps = json.JSONEncoder(ensure_ascii=False).encode

    exported = frozenset(p.key for p in plan)
    shown_all = _displayed(model.questions, exported)

    def pieces() -> Iterator[str]:
        for record in records:
            seen = model.seen(record)
            if derives:
                record = model.derive(record, opts, seen)
            shown = shown_all if seen is model.questions else _displayed(seen, exported)
            yield dumps(_json_response(plan, record, shown, opts.use_labels))

    if opts.format == "json":
        yield '{"responses":['
        first = True
        for piece in pieces():
            yield piece if first else "," + piece
            first = False
        yield "]}"
    else:
        for piece in pieces():
            yield piece + "\n"


def _stream_delimited(
    cols: list[ExportColumn], records: Iterable[dict[str, Any]], opts: ExportOptions
) -> Iterator[str]:
    out = _LineWriter()
    delimiter = "," if opts.format == "csv" else "\t"
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    label_cols = opts.include_label_columns
    use_labels = opts.use_labels
    plan = _plan(cols)
    tags: list[str] = []
    headers: list[str] = []
    import_ids: list[str] = []
    for col, planned in zip(cols, plan, strict=True):
        tags.append(col.tag)
        headers.append(col.header)
        import_ids.append(
            json.dumps({"ImportId": col.import_key, **col.import_extra}, separators=(",", ":"))
        )
        if label_cols and planned.labels is not None:
            tags.append(f"{col.tag}_LABEL")
            headers.append(f"{col.header} - Label")
            choice = {"choiceId": col.import_extra["choiceId"]} if col.kind == "choice" else {}
            import_ids.append(
                json.dumps(
                    {"ImportId": col.import_key, **choice, "label": True}, separators=(",", ":")
                )
            )
    for row in (tags, headers, import_ids):
        writer.writerow(row)
        yield out.line
    tz = None if opts.time_zone == "UTC" else ZoneInfo(opts.time_zone)
    replacement = opts.newline_replacement
    keys = [p.key for p in plan]
    dates = [i for i, p in enumerate(plan) if p.kind == "date"]
    # Lists (multi-select answers) are joined with commas; any column may hold one.
    with_labels = use_labels or label_cols
    decimal_comma = opts.decimal_comma
    for record in records:
        get = record.get
        if with_labels:
            cells = _labelled_cells(plan, record, tz, use_labels)
        else:
            # The hot path: one comprehension per row; None is written as "" by csv.
            cells = [get(k) for k in keys]
            for i in dates:
                if cells[i] is not None:
                    cells[i] = _csv_cell("date", cells[i], tz)
            for i, cell in enumerate(cells):
                if type(cell) is list:
                    cells[i] = ",".join(str(v) for v in cell)
                elif type(cell) is bool:
                    cells[i] = "1" if cell else "0"
                elif decimal_comma and type(cell) is float:
                    cells[i] = str(cell).replace(".", ",")
        if replacement is not None:
            cells = [
                c.replace("\r\n", replacement).replace("\n", replacement)
                if isinstance(c, str)
                else c
                for c in cells
            ]
        writer.writerow(cells)
        yield out.line


def _labelled_cells(
    plan: list[_Planned], record: dict[str, Any], tz: ZoneInfo | None, use_labels: bool
) -> list[Any]:
    cells: list[Any] = []
    append = cells.append
    for planned in plan:
        value = record.get(planned.key)
        if planned.labels is None:
            append(_csv_cell(planned.kind, value, tz))
            continue
        label = planned.label(value)
        shown = ", ".join(str(x) for x in label) if isinstance(label, list) else label
        if use_labels:
            append(_csv_cell(planned.kind, value, tz) if shown is None else shown)
        else:
            append(_csv_cell(planned.kind, value, tz))
            append("" if shown is None else shown)
    return cells


def _csv_cell(kind: str, value: Any, tz: ZoneInfo | None) -> Any:
    if value is None:
        return ""
    if kind == "date":
        text = str(value)
        if tz is None and len(text) >= 19 and text[10] == "T":
            return f"{text[:10]} {text[11:19]}"  # stored dates are UTC ISO strings
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return value
        return parsed.astimezone(tz or UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return value


def _displayed(
    seen: list[_Shown], exported: frozenset[str]
) -> tuple[list[str], dict[str, list[int | str]]]:
    """``displayedFields`` and ``displayedValues`` of a response that saw ``seen``."""
    fields: list[str] = []
    offered: dict[str, list[int | str]] = {}
    for q in seen:
        for key, _ in q.fields:
            if key in exported:
                fields.append(key)
                if key in q.displayed_values:
                    offered[key] = q.displayed_values[key]
    return fields, offered


def _json_response(
    plan: list[_Planned],
    record: dict[str, Any],
    shown: tuple[list[str], dict[str, list[int | str]]],
    use_labels: bool,
) -> dict[str, Any]:
    """One response: ``values`` (labels in place of codes with ``useLabels``, as in CSV),
    ``labels``, and the answer fields it was shown with the codes each one offered."""
    values = {p.key: record[p.key] for p in plan if p.key in record}
    labels: dict[str, Any] = {}
    for p in plan:
        if p.labels is not None:
            value = values.get(p.key)
            if value is not None:
                label = p.label(value)
                if label is not None:
                    labels[p.key] = label
                    if use_labels:
                        values[p.key] = label
    return {
        "responseId": record.get("_recordId"),
        "values": values,
        "labels": labels,
        "displayedFields": shown[0],
        "displayedValues": shown[1],
    }
