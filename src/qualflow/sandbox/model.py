"""The sandbox's one internal survey model, and the Qualtrics shapes derived from it.

A :class:`Survey` is rendered three ways: the legacy ``GET /surveys/{id}`` object (camelCase,
``questions`` / ``exportColumnMap`` / ``blocks`` / ``flow``), the survey-definitions object
(PascalCase, ``Questions`` / ``Blocks`` / ``SurveyFlow``) and a QSF file. It is parsed back from
the definitions shape (which QSF shares), so one parser serves question CRUD, QSF import and
persistence.
It also knows its export columns: the single source of truth for CSV/TSV/JSON exports and for
response validation.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from qualflow.sandbox import ids
from qualflow.sandbox.errors import ApiError, bad_request
from qualflow.sandbox.filters import ResponseFilter
from qualflow.sandbox.survey_options import default_survey_options

_T = TypeVar("_T")

MULTI_SELECTORS = frozenset({"MAVR", "MAHR", "MACOL", "MSB", "MAVRTXT"})
TEXT_SELECTORS = frozenset({"SL", "ML", "ESTB", "PW"})
SUPPORTED_TYPES = frozenset({"MC", "TE", "Matrix", "Slider", "RO", "DB"})

# Fraud-detection options in SurveyOptions, and the embedded fields each one records.
FRAUD_OPTIONS: dict[str, tuple[str, ...]] = {
    "RecaptchaV3": ("Q_RecaptchaScore",),
    "RelevantID": (
        "Q_RelevantIDDuplicate",
        "Q_RelevantIDDuplicateScore",
        "Q_RelevantIDFraudScore",
        "Q_RelevantIDLastStartDate",
    ),
    "BallotBoxStuffingPrevention": ("Q_BallotBoxStuffing",),
}

NPS_GROUPS = {1: "Detractor", 2: "Passive", 3: "Promoter"}

_BREAK_RE = re.compile(r"<(?:br|/?div|/?p|/?li)\b[^>]*>", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^>]+>")


def plain_text(markup: str) -> str:
    """Question/choice text without HTML tags, the way export header rows show it."""
    return " ".join(html.unescape(_TAG_RE.sub("", _BREAK_RE.sub(" ", markup))).split())


def short_description(markup: str, limit: int = 100) -> str:
    """``QuestionDescription``: plain text, cut with "..." when long."""
    text = plain_text(markup)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def split_multi_answers(columns: list[ExportColumn]) -> list[ExportColumn]:
    """``columns`` with each multi-answer question's column replaced by its choice columns."""
    out: list[ExportColumn] = []
    for col in columns:
        if col.kind == "multi" and col.question is not None:
            out.extend(col.question.choice_columns())
        else:
            out.append(col)
    return out


def nps_group(score: int) -> int:
    """1 = Detractor (0–6), 2 = Passive (7–8), 3 = Promoter (9–10)."""
    if score <= 6:
        return 1
    return 2 if score <= 8 else 3


@dataclass
class Choice:
    """A choice (MC/RO/Slider item, Matrix statement) or a Matrix scale point (an "answer")."""

    id: str
    text: str
    recode: str | None = None
    variable_name: str | None = None
    text_entry: bool = False
    exclusive: bool = False

    @property
    def code(self) -> str:
        return self.recode if self.recode is not None else self.id


@dataclass
class ExportColumn:
    """One column of a response export.

    ``key`` is the key of the value in a response's ``values`` (and the CSV ImportId, unless
    ``import_id`` names another); ``tag`` is the export tag (CSV row 1); ``header`` the question
    text (row 2).
    """

    key: str
    tag: str
    header: str
    # meta | date | single | multi | choice | text | number | nps_group | rank | embedded
    kind: str
    question: Question | None = None
    import_extra: dict[str, str] = field(default_factory=dict)
    column_map: dict[str, str] | None = None
    valid: frozenset[str] | None = None  # accepted codes (single/multi), set by the question
    # A choice column of a split multi-answer question has its question's ImportId (with a
    # choiceId), so its key, which must tell the choices apart, cannot serve as one.
    import_id: str | None = None

    @property
    def import_key(self) -> str:
        return self.import_id or self.key

    def __post_init__(self) -> None:
        q = self.question
        if q is not None and self.kind in ("single", "multi"):
            self.valid = frozenset(q.codes(matrix=q.type == "Matrix" and self.kind == "single"))

    def label(self, value: Any) -> Any:
        """The label Qualtrics shows for ``value`` (choice text, NPS group, ...), else None."""
        if value is None or value == "":
            return None
        q = self.question
        if self.kind == "nps_group":
            try:
                return NPS_GROUPS.get(int(value))
            except (TypeError, ValueError):
                return None
        if q is None:
            return None
        if self.kind in ("single", "choice"):
            return q.label_for(str(value), matrix=q.type == "Matrix")
        if self.kind == "multi" and isinstance(value, list):
            return [q.label_for(str(v)) for v in value]
        return None


@dataclass
class Question:
    qid: str
    tag: str
    type: str
    selector: str
    sub_selector: str | None
    text: str
    choices: list[Choice] = field(default_factory=list)
    answers: list[Choice] = field(default_factory=list)
    force_response: bool = False
    content_type: str | None = None  # "ValidEmail", "ValidNumber", ...
    configuration: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    preserved: dict[str, Any] = field(default_factory=dict)  # given counters/description

    # -- classification --------------------------------------------------------------
    @property
    def is_multi(self) -> bool:
        return self.type == "MC" and self.selector in MULTI_SELECTORS

    @property
    def is_nps(self) -> bool:
        return self.type == "MC" and self.selector == "NPS"

    def choice(self, choice_id: str) -> Choice | None:
        for c in self.choices:
            if c.id == choice_id:
                return c
        return None

    def label_for(self, code: str, *, matrix: bool = False) -> str | None:
        pool = self.answers if matrix else self.choices
        for c in pool:
            if c.code == code:
                return plain_text(c.text)
        return None

    def codes(self, *, matrix: bool = False) -> set[str]:
        return {c.code for c in (self.answers if matrix else self.choices)}

    # -- export columns --------------------------------------------------------------
    def export_columns(self) -> list[ExportColumn]:
        text = plain_text(self.text)
        qid, tag = self.qid, self.tag
        cols: list[ExportColumn] = []
        if self.type == "DB":
            return cols
        if self.type == "MC":
            kind = "multi" if self.is_multi else "single"
            cols.append(ExportColumn(qid, tag, text, kind, self, column_map={"question": qid}))
            if self.is_nps:
                cols.append(
                    ExportColumn(
                        f"{qid}_NPS_GROUP",
                        f"{tag}_NPS_GROUP",
                        f"{text} - Group",
                        "nps_group",
                        self,
                        column_map={"question": qid},
                    )
                )
            for c in self.choices:
                if c.text_entry:
                    cols.append(
                        ExportColumn(
                            f"{qid}_{c.id}_TEXT",
                            f"{tag}_{c.id}_TEXT",
                            f"{text} - {plain_text(c.text)} - Text",
                            "text",
                            self,
                            column_map={"question": qid, "choice": f"{qid}.choices.{c.id}"},
                        )
                    )
            return cols
        if self.type == "TE":
            if self.selector == "FORM":
                for c in self.choices:
                    cols.append(
                        ExportColumn(
                            f"{qid}_{c.id}",
                            f"{tag}_{c.id}",
                            f"{text} - {plain_text(c.text)}",
                            "text",
                            self,
                            column_map={"question": qid, "choice": f"{qid}.choices.{c.id}"},
                        )
                    )
            else:
                cols.append(
                    ExportColumn(
                        f"{qid}_TEXT", tag, text, "text", self, column_map={"question": qid}
                    )
                )
            return cols
        sub_kind = {"Matrix": "single", "Slider": "number", "RO": "rank"}[self.type]
        for c in self.choices:
            ref = (
                {"question": qid, "subQuestion": f"{qid}.subQuestions.{c.id}"}
                if self.type == "Matrix"
                else {"question": qid, "choice": f"{qid}.choices.{c.id}"}
            )
            cols.append(
                ExportColumn(
                    f"{qid}_{c.id}",
                    f"{tag}_{c.id}",
                    f"{text} - {plain_text(c.text)}",
                    sub_kind,
                    self,
                    column_map=ref,
                )
            )
        return cols

    def choice_columns(self) -> list[ExportColumn]:
        """A multi-answer question's answer as CSV/TSV exports with ``breakoutSets`` (the
        default) write it: one column per choice (``Q4_2``), holding that choice's code when it
        was selected. Each keeps the question's ImportId, told apart by its ``choiceId``."""
        text = plain_text(self.text)
        return [
            ExportColumn(
                f"{self.qid}.choices.{c.id}",
                f"{self.tag}_{c.id}",
                f"{text} - {plain_text(c.text)}",
                "choice",
                self,
                import_extra={"choiceId": c.id},
                column_map={"question": self.qid, "choice": f"{self.qid}.choices.{c.id}"},
                import_id=self.qid,
            )
            for c in self.choices
        ]

    # -- value validation (POST /responses) --------------------------------------------
    def validate_value(self, key: str, value: Any, column: ExportColumn) -> None:
        """Raise a 400 naming ``key`` when ``value`` cannot be an answer to this column."""
        if value is None:
            return
        kind = column.kind
        if kind == "text":
            if not isinstance(value, str | int | float):
                raise bad_request(f"Invalid value for {key}: expected text.")
            return
        if kind == "multi":
            items = value if isinstance(value, list) else [value]
            valid = column.valid or frozenset()
            for item in items:
                if str(item) not in valid:
                    raise bad_request(
                        f"Invalid value for {key}: {item!r} is not a choice of {self.qid}."
                    )
            return
        if kind == "single":
            valid = column.valid or frozenset()
            if str(value) not in valid:
                raise bad_request(
                    f"Invalid value for {key}: {value!r} is not a choice of {self.qid}."
                )
            return
        if kind in ("number", "rank", "nps_group"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                try:
                    float(str(value))
                except ValueError:
                    raise bad_request(f"Invalid value for {key}: expected a number.") from None
            return

    # -- renderers ---------------------------------------------------------------------
    def to_legacy(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "questionType": {
                "type": self.type,
                "selector": self.selector,
                "subSelector": self.sub_selector,
            },
            "questionText": self.text,
            "questionLabel": None,
            "validation": {"doesForceResponse": self.force_response},
            "questionName": self.tag,
        }
        if self.type == "Matrix":
            out["subQuestions"] = {
                c.id: {
                    "recode": c.code,
                    "description": c.variable_name or c.text,
                    "choiceText": c.text,
                    "variableName": c.variable_name,
                    "imageDescription": None,
                }
                for c in self.choices
            }
            out["choices"] = {c.id: _legacy_choice(c) for c in self.answers}
        elif self.type in ("MC", "Slider", "RO") or (self.type == "TE" and self.choices):
            out["choices"] = {c.id: _legacy_choice(c) for c in self.choices}
        return out

    def to_definition(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "QuestionText": self.text,
            "DataExportTag": self.tag,
            "QuestionType": self.type,
            "Selector": self.selector,
        }
        if self.sub_selector is not None:
            out["SubSelector"] = self.sub_selector
        out["Configuration"] = {"QuestionDescriptionOption": "UseText", **self.configuration}
        out["QuestionDescription"] = self.preserved.get(
            "QuestionDescription", short_description(self.text)
        )
        if self.choices:
            out["Choices"] = {c.id: _definition_choice(c) for c in self.choices}
            out["ChoiceOrder"] = [c.id for c in self.choices]
            recodes = {c.id: c.recode for c in self.choices if c.recode is not None}
            if recodes:
                out["RecodeValues"] = recodes
            names = {c.id: c.variable_name for c in self.choices if c.variable_name}
            if names:
                out["VariableNaming"] = names
        if self.answers:
            out["Answers"] = {c.id: _definition_choice(c) for c in self.answers}
            out["AnswerOrder"] = [c.id for c in self.answers]
        settings: dict[str, Any] = {
            "ForceResponse": "ON" if self.force_response else "OFF",
            "ForceResponseType": "ON",
            "Type": "ContentType" if self.content_type else "None",
        }
        if self.content_type:
            settings["ContentType"] = self.content_type
        out["Validation"] = {"Settings": settings}
        out["Language"] = []
        # Qualtrics never reuses a choice id: keep the counters it gave us if they are ahead.
        out["NextChoiceId"] = max(
            _next_numeric_id(self.choices), _int_or(self.preserved.get("NextChoiceId"), 0)
        )
        out["NextAnswerId"] = max(
            _next_numeric_id(self.answers), _int_or(self.preserved.get("NextAnswerId"), 0)
        )
        out["QuestionID"] = self.qid
        out["DataVisibility"] = {"Private": False, "Hidden": False}
        out["QuestionText_Unsafe"] = self.text
        for key, value in self.extra.items():
            out.setdefault(key, copy.deepcopy(value))
        return out

    @classmethod
    def from_definition(cls, qid: str, data: Any) -> Question:
        """Parse a QuestionDefinition (definitions API / QSF payload); 400 naming bad fields."""
        if not isinstance(data, dict):
            raise bad_request("Invalid question definition: expected a JSON object.")
        qtype = data.get("QuestionType")
        if not isinstance(qtype, str) or not qtype:
            raise bad_request("Invalid question definition: QuestionType is required.")
        if qtype not in SUPPORTED_TYPES:
            raise bad_request(
                f"Invalid question definition: QuestionType {qtype!r} is not supported by the "
                f"sandbox (supported: {', '.join(sorted(SUPPORTED_TYPES))})."
            )
        selector = data.get("Selector")
        if not isinstance(selector, str) or not selector:
            raise bad_request("Invalid question definition: Selector is required.")
        text = data.get("QuestionText", "")
        if not isinstance(text, str):
            raise bad_request("Invalid question definition: QuestionText must be a string.")
        tag = data.get("DataExportTag") or qid.replace("QID", "Q", 1)
        if not isinstance(tag, str):
            raise bad_request("Invalid question definition: DataExportTag must be a string.")
        recodes = data.get("RecodeValues") or {}
        names = data.get("VariableNaming") or {}
        choices = _parse_choices(
            data.get("Choices"), data.get("ChoiceOrder"), recodes, names, "Choices"
        )
        answers = _parse_choices(data.get("Answers"), data.get("AnswerOrder"), {}, {}, "Answers")
        if qtype in ("MC", "RO", "Slider", "Matrix") and not choices:
            raise bad_request(f"Invalid question definition: {qtype} questions need Choices.")
        if qtype == "Matrix" and not answers:
            raise bad_request("Invalid question definition: Matrix questions need Answers.")
        settings = (data.get("Validation") or {}).get("Settings") or {}
        if not isinstance(settings, dict):
            raise bad_request("Invalid question definition: Validation.Settings must be an object.")
        configuration = dict(data.get("Configuration") or {})
        configuration.pop("QuestionDescriptionOption", None)
        known = {
            "QuestionText", "DataExportTag", "QuestionType", "Selector", "SubSelector",
            "Configuration", "QuestionDescription", "Choices", "ChoiceOrder", "Answers",
            "AnswerOrder", "Validation", "Language", "NextChoiceId", "NextAnswerId", "QuestionID",
            "DataVisibility", "QuestionText_Unsafe", "RecodeValues", "VariableNaming",
        }  # fmt: skip
        sub_selector = data.get("SubSelector")
        return cls(
            qid=qid,
            tag=tag,
            type=qtype,
            selector=selector,
            sub_selector=sub_selector if isinstance(sub_selector, str) else None,
            text=text,
            choices=choices,
            answers=answers,
            force_response=settings.get("ForceResponse") == "ON",
            content_type=settings.get("ContentType")
            if settings.get("Type") == "ContentType"
            else None,
            configuration=configuration,
            extra={k: copy.deepcopy(v) for k, v in data.items() if k not in known},
            preserved={
                k: data[k]
                for k in ("NextChoiceId", "NextAnswerId", "QuestionDescription")
                if isinstance(data.get(k), int | str)
            },
        )


def _legacy_choice(c: Choice) -> dict[str, Any]:
    return {
        "recode": c.code,
        # Real answers describe a choice by its variable name when it has one, else its text.
        "description": c.variable_name or c.text,
        "choiceText": c.text,
        "imageDescription": None,
        "variableName": c.variable_name,
        "analyze": True,
    }


def _definition_choice(c: Choice) -> dict[str, Any]:
    out: dict[str, Any] = {"Display": c.text}
    if c.text_entry:
        out["TextEntry"] = "true"
    if c.exclusive:
        out["ExclusiveAnswer"] = True
    return out


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _next_numeric_id(choices: list[Choice]) -> int:
    numbers = [int(c.id) for c in choices if c.id.isdecimal()]
    return max(numbers, default=0) + 1


def _parse_choices(raw: Any, order: Any, recodes: Any, names: Any, what: str) -> list[Choice]:
    if raw in (None, {}, []):
        return []
    if isinstance(raw, list):  # QSF sometimes stores choices as a 1-based list
        raw = {str(i + 1): v for i, v in enumerate(raw)}
    if not isinstance(raw, dict):
        raise bad_request(f"Invalid question definition: {what} must be an object.")
    keys = [str(k) for k in order] if isinstance(order, list) and order else list(raw)
    keys += [k for k in raw if k not in keys]
    out: list[Choice] = []
    for key in keys:
        item = raw.get(key)
        if item is None:
            raise bad_request(
                f"Invalid question definition: {what} order names unknown id {key!r}."
            )
        if not isinstance(item, dict) or not isinstance(item.get("Display", ""), str):
            raise bad_request(
                f"Invalid question definition: {what}.{key} must be an object with Display text."
            )
        recode = recodes.get(key) if isinstance(recodes, dict) else None
        name = names.get(key) if isinstance(names, dict) else None
        out.append(
            Choice(
                id=str(key),
                text=item.get("Display", ""),
                recode=str(recode) if recode is not None else None,
                variable_name=name,
                text_entry=str(item.get("TextEntry", "")).lower() in ("true", "on", "1"),
                exclusive=bool(item.get("ExclusiveAnswer", False)),
            )
        )
    return out


@dataclass
class Block:
    id: str
    description: str
    type: str = "Standard"  # Default | Standard | Trash
    elements: list[dict[str, str]] = field(default_factory=list)  # definitions shape
    options: dict[str, Any] | None = field(
        default_factory=lambda: {
            "BlockLocking": "false",
            "RandomizeQuestions": "false",
            "BlockVisibility": "Expanded",
        }
    )

    def question_ids(self) -> list[str]:
        return [e["QuestionID"] for e in self.elements if e.get("Type") == "Question"]

    def to_legacy(self) -> dict[str, Any]:
        elements: list[dict[str, str]] = []
        for e in self.elements:
            if e.get("Type") == "Question":
                elements.append({"type": "Question", "questionId": e["QuestionID"]})
            else:
                elements.append({"type": "PageBreak"})
        return {"description": self.description, "elements": elements}

    def to_definition(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": self.type, "Description": self.description, "ID": self.id}
        if self.type != "Trash":
            out["SubType"] = ""
        out["BlockElements"] = [dict(e) for e in self.elements]
        if self.options is not None and self.type != "Trash":
            out["Options"] = copy.deepcopy(self.options)
        return out

    @classmethod
    def from_definition(cls, data: Any) -> Block:
        if not isinstance(data, dict) or not isinstance(data.get("ID"), str):
            raise bad_request("Invalid block: ID is required.")
        elements = []
        for e in data.get("BlockElements") or []:
            if not isinstance(e, dict):
                raise bad_request("Invalid block: BlockElements must be objects.")
            if e.get("Type") == "Question":
                if not isinstance(e.get("QuestionID"), str):
                    raise bad_request("Invalid block: a Question element needs QuestionID.")
                elements.append({"Type": "Question", "QuestionID": e["QuestionID"]})
            else:
                elements.append({"Type": "Page Break"})
        options = data.get("Options")
        return cls(
            id=data["ID"],
            description=str(data.get("Description", "")),
            type=str(data.get("Type", "Standard")),
            elements=elements,
            options=dict(options) if isinstance(options, dict) else None,
        )


def _legacy_flow(elements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in elements:
        kind = e.get("Type")
        if kind in ("Standard", "Block", "Default"):
            out.append({"id": e.get("ID"), "type": "Block"})
        elif kind == "EmbeddedData":
            out.append({"type": "EmbeddedData"})
        elif kind == "BlockRandomizer":
            out.append(
                {
                    "type": "BlockRandomizer",
                    "randomizationOptions": {
                        "randomSubset": e.get("SubSet", 0),
                        "evenPresentation": bool(e.get("EvenPresentation", False)),
                    },
                }
            )
        elif kind in ("Group", "Branch", "Randomizer"):
            out.append({"type": kind, "flow": _legacy_flow(e.get("Flow") or [])})
        else:
            out.append({"type": str(kind)})
    return out


def _walk_flow(elements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in elements:
        out.append(e)
        out.extend(_walk_flow(e.get("Flow") or []))
    return out


def _parsed(what: str, parse: Callable[..., _T], *args: Any) -> _T:
    """``parse(*args)``, or a 400 saying which part of the QSF file could not be read."""
    try:
        return parse(*args)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise bad_request(f"Invalid QSF file: {what} could not be read ({exc}).") from None


@dataclass
class Survey:
    id: str
    name: str
    owner_id: str
    brand_id: str
    creation_date: str
    last_modified: str
    is_active: bool = False
    last_activated: str | None = None
    expiration_start: str | None = None
    expiration_end: str | None = None
    language: str = "EN"
    description: str = ""
    project_category: str = "CORE"
    project_type: str = "Survey"
    questions: dict[str, Question] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)
    flow: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    response_set_id: str = field(default_factory=ids.response_set_id)
    deleted_responses: int = 0
    generated_responses: int = 0
    revision: int = 0
    filters: list[ResponseFilter] = field(default_factory=list)

    def touch(self, now: str) -> None:
        """Record a change: bumps ``revision`` (invalidates cached columns) and lastModified."""
        self.revision += 1
        self.last_modified = now

    # -- structure -------------------------------------------------------------------
    @property
    def default_block_id(self) -> str:
        for b in self.blocks.values():
            if b.type == "Default":
                return b.id
        for b in self.blocks.values():
            if b.type != "Trash":
                return b.id
        raise ApiError(500, "SRV_1", f"Survey {self.id} has no block.")

    def ordered_question_ids(self) -> list[str]:
        """Questions in flow order (blocks as the flow visits them), then any unplaced ones."""
        seen: list[str] = []
        block_order = [
            e.get("ID")
            for e in _walk_flow(self.flow)
            if e.get("Type") in ("Standard", "Block", "Default")
        ]
        block_order += [b for b in self.blocks if b not in block_order]
        for bid in block_order:
            block = self.blocks.get(str(bid))
            if block is None or block.type == "Trash":
                continue
            seen.extend(q for q in block.question_ids() if q in self.questions and q not in seen)
        trashed = {q for b in self.blocks.values() if b.type == "Trash" for q in b.question_ids()}
        seen.extend(q for q in self.questions if q not in seen and q not in trashed)
        return seen

    def find_filter(self, filter_id: str) -> ResponseFilter | None:
        return next((f for f in self.filters if f.filter_id == filter_id), None)

    def email_question_id(self) -> str | None:
        """The first question (in flow order) that validates its answer as an email."""
        for qid in self.ordered_question_ids():
            if self.questions[qid].content_type == "ValidEmail":
                return qid
        return None

    def embedded_fields(self) -> list[tuple[str, str | None]]:
        """(name, default value) of every embedded-data field declared in the flow."""
        out: list[tuple[str, str | None]] = []
        names: set[str] = set()
        for e in _walk_flow(self.flow):
            if e.get("Type") != "EmbeddedData":
                continue
            for f in e.get("EmbeddedData") or []:
                name = f.get("Field")
                if isinstance(name, str) and name not in names:
                    names.add(name)
                    value = f.get("Value")
                    out.append((name, None if value is None else str(value)))
        return out

    def fraud_fields(self) -> list[str]:
        out: list[str] = []
        for option, fields in FRAUD_OPTIONS.items():
            if str(self.options.get(option, "")).lower() == "true":
                out.extend(fields)
        return out

    def next_question_id(self) -> str:
        used = [int(q[3:]) for q in self.questions if q[3:].isdecimal()]
        return f"QID{max(used, default=0) + 1}"

    def next_flow_id(self) -> str:
        used = [
            int(str(e.get("FlowID", "FL_0"))[3:])
            for e in _walk_flow(self.flow)
            if str(e.get("FlowID", "")).startswith("FL_") and str(e.get("FlowID"))[3:].isdecimal()
        ]
        return f"FL_{max(used, default=1) + 1}"

    def add_question(self, question: Question, block_id: str | None = None) -> None:
        bid = block_id or self.default_block_id
        block = self.blocks.get(bid)
        if block is None:
            raise bad_request(f"Invalid request. Missing or invalid parameter blockId: {bid}.")
        if any(q.tag == question.tag for q in self.questions.values()):
            question.tag = f"{question.tag}_{question.qid}"
        self.questions[question.qid] = question
        block.elements.append({"Type": "Question", "QuestionID": question.qid})

    def remove_question(self, qid: str) -> None:
        self.questions.pop(qid, None)
        for b in self.blocks.values():
            b.elements = [e for e in b.elements if e.get("QuestionID") != qid]

    # -- export columns ----------------------------------------------------------------
    def question_columns(self) -> list[ExportColumn]:
        cols: list[ExportColumn] = []
        for qid in self.ordered_question_ids():
            cols.extend(self.questions[qid].export_columns())
        return cols

    def embedded_columns(self) -> list[ExportColumn]:
        names = [n for n, _ in self.embedded_fields()]
        names += [f for f in self.fraud_fields() if f not in names]
        return [ExportColumn(n, n, n, "embedded") for n in names]

    def column_index(self) -> dict[str, ExportColumn]:
        return {c.key: c for c in self.question_columns()}

    # -- renderers ---------------------------------------------------------------------
    def list_element(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "ownerId": self.owner_id,
            "lastModified": self.last_modified,
            "creationDate": self.creation_date,
            "isActive": self.is_active,
        }

    def to_legacy(self, auditable: int) -> dict[str, Any]:
        export_map: dict[str, dict[str, str]] = {}
        # The map describes the default export, whose multi-answer questions are split.
        for col in split_multi_answers(self.question_columns()):
            if col.column_map is not None:
                export_map[col.tag] = dict(col.column_map)
        return {
            "id": self.id,
            "name": self.name,
            "ownerId": self.owner_id,
            "organizationId": self.brand_id,
            "isActive": self.is_active,
            "creationDate": self.creation_date,
            "lastModifiedDate": self.last_modified,
            "expiration": {"startDate": self.expiration_start, "endDate": self.expiration_end},
            "questions": {
                qid: self.questions[qid].to_legacy() for qid in self.ordered_question_ids()
            },
            "exportColumnMap": export_map,
            "blocks": {b.id: b.to_legacy() for b in self.blocks.values() if b.type != "Trash"},
            "flow": _legacy_flow(self.flow),
            "embeddedData": [
                {"name": name, "defaultValue": value} for name, value in self.embedded_fields()
            ],
            "comments": {},
            "loopAndMerge": {},
            "responseCounts": {
                "auditable": auditable,
                "generated": self.generated_responses,
                "deleted": self.deleted_responses,
            },
        }

    @property
    def status(self) -> str:
        return "Active" if self.is_active else "Inactive"

    def survey_options(self) -> dict[str, Any]:
        """``SurveyOptions`` as served: defaults, the stored options, the survey's own fields."""
        languages = self.options.get("AvailableLanguages")
        return {
            **default_survey_options(),
            **copy.deepcopy(self.options),
            "ActiveResponseSet": self.response_set_id,
            "AvailableLanguages": (
                copy.deepcopy(languages) if isinstance(languages, dict) else {self.language: []}
            ),
            "SurveyName": self.name,
            "SurveyLanguage": self.language,
            "SurveyStartDate": self.expiration_start,
            "SurveyExpirationDate": self.expiration_end,
            "SurveyCreationDate": self.creation_date,
        }

    def to_definition(self, brand_base_url: str) -> dict[str, Any]:
        return {
            "QuestionCount": str(len(self.questions)),
            "SurveyOptions": self.survey_options(),
            "SurveyID": self.id,
            "SurveyName": self.name,
            "SurveyStatus": self.status,
            "LastModified": self.last_modified,
            "BrandID": self.brand_id,
            "OwnerID": self.owner_id,
            "LastAccessed": None,
            "CreatorID": self.owner_id,
            "LastActivated": self.last_activated,
            "Questions": {q.qid: q.to_definition() for q in self.questions.values()},
            "Blocks": {b.id: b.to_definition() for b in self.blocks.values()},
            "ResponseSets": {self.response_set_id: "Default Response Set"},
            "SurveyFlow": self.flow_definition(),
            "Scoring": {
                "ScoringCategories": [],
                "ScoringCategoryGroups": [],
                "ScoringSummaryCategory": None,
                "ScoringSummaryAfterQuestions": 0,
                "ScoringSummaryAfterSurvey": 0,
                "DefaultScoringCategory": None,
                "AutoScoringCategory": None,
            },
            "ProjectInfo": {
                "SurveyID": self.id,
                "ProjectCategory": self.project_category,
                "ProjectType": self.project_type,
                "CompositionType": None,
                "ContentBundle": None,
            },
            "BrandBaseURL": brand_base_url,
        }

    def flow_definition(self) -> dict[str, Any]:
        return {
            "Type": "Root",
            "FlowID": "FL_1",
            "Flow": copy.deepcopy(self.flow),
            "Properties": {"Count": len(_walk_flow(self.flow)) + 1, "RemovedFieldsets": []},
        }

    def to_metadata(self) -> dict[str, Any]:
        return {
            "SurveyID": self.id,
            "SurveyName": self.name,
            "SurveyDescription": self.description,
            "SurveyOwnerID": self.owner_id,
            "SurveyBrandID": self.brand_id,
            "DivisionID": None,
            "SurveyLanguage": self.language,
            "SurveyActiveResponseSet": self.response_set_id,
            "SurveyStatus": self.status,
            "SurveyStartDate": _mysql_date(self.expiration_start) or "0000-00-00 00:00:00",
            "SurveyExpirationDate": _mysql_date(self.expiration_end) or "0000-00-00 00:00:00",
            "SurveyCreationDate": _mysql_date(self.creation_date),
            "CreatorID": self.owner_id,
            "LastModified": _mysql_date(self.last_modified),
            "LastAccessed": "0000-00-00 00:00:00",
            "LastActivated": _mysql_date(self.last_activated) or "0000-00-00 00:00:00",
            "Deleted": None,
        }

    def to_qsf(self) -> dict[str, Any]:
        meta = self.to_metadata()
        elements: list[dict[str, Any]] = [
            _qsf_element(
                self.id, "BL", "Survey Blocks", [b.to_definition() for b in self.blocks.values()]
            ),
            _qsf_element(self.id, "FL", "Survey Flow", self.flow_definition()),
            _qsf_element(self.id, "SO", "Survey Options", self.survey_options()),
            _qsf_element(self.id, "RS", self.response_set_id, None, "Default Response Set"),
        ]
        for q in self.questions.values():
            elements.append(
                _qsf_element(self.id, "SQ", q.qid, q.to_definition(), plain_text(q.text)[:100])
            )
        return {
            "SurveyEntry": {**meta, "SurveyStatus": self.status},
            "SurveyElements": elements,
        }

    # -- persistence / import --------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner_id": self.owner_id,
            "brand_id": self.brand_id,
            "creation_date": self.creation_date,
            "last_modified": self.last_modified,
            "is_active": self.is_active,
            "last_activated": self.last_activated,
            "expiration_start": self.expiration_start,
            "expiration_end": self.expiration_end,
            "language": self.language,
            "description": self.description,
            "project_category": self.project_category,
            "project_type": self.project_type,
            "response_set_id": self.response_set_id,
            "deleted_responses": self.deleted_responses,
            "generated_responses": self.generated_responses,
            "questions": [q.to_definition() for q in self.questions.values()],
            "blocks": [b.to_definition() for b in self.blocks.values()],
            "flow": copy.deepcopy(self.flow),
            "options": copy.deepcopy(self.options),
            "filters": [f.to_record() for f in self.filters],
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Survey:
        questions = [Question.from_definition(q["QuestionID"], q) for q in data["questions"]]
        blocks = [Block.from_definition(b) for b in data["blocks"]]
        return cls(
            id=data["id"],
            name=data["name"],
            owner_id=data["owner_id"],
            brand_id=data["brand_id"],
            creation_date=data["creation_date"],
            last_modified=data["last_modified"],
            is_active=data["is_active"],
            last_activated=data.get("last_activated"),
            expiration_start=data.get("expiration_start"),
            expiration_end=data.get("expiration_end"),
            language=data.get("language", "EN"),
            description=data.get("description", ""),
            project_category=data.get("project_category", "CORE"),
            project_type=data.get("project_type", "Survey"),
            response_set_id=data.get("response_set_id") or ids.response_set_id(),
            deleted_responses=data.get("deleted_responses", 0),
            generated_responses=data.get("generated_responses", 0),
            questions={q.qid: q for q in questions},
            blocks={b.id: b for b in blocks},
            flow=data.get("flow") or [],
            options=data.get("options") or {},
            filters=[ResponseFilter.from_record(f) for f in data.get("filters") or []],
        )

    @classmethod
    def from_qsf(
        cls, qsf: Any, *, survey_id: str, name: str | None, owner_id: str, brand_id: str, now: str
    ) -> Survey:
        """Build a survey from a QSF document (new id); 400 naming what is wrong."""
        if not isinstance(qsf, dict) or not isinstance(qsf.get("SurveyElements"), list):
            raise bad_request("Invalid QSF file: expected an object with SurveyElements.")
        entry = qsf.get("SurveyEntry") or {}
        if not isinstance(entry, dict):
            raise bad_request("Invalid QSF file: SurveyEntry must be an object.")
        questions: dict[str, Question] = {}
        blocks: dict[str, Block] = {}
        flow: list[dict[str, Any]] = []
        options: dict[str, Any] = {}
        for element in qsf["SurveyElements"]:
            if not isinstance(element, dict):
                raise bad_request("Invalid QSF file: SurveyElements must be objects.")
            kind = element.get("Element")
            payload = element.get("Payload")
            if kind == "SQ":
                if not isinstance(payload, dict):
                    raise bad_request("Invalid QSF file: a question's Payload must be an object.")
                qid = payload.get("QuestionID") or element.get("PrimaryAttribute")
                if not isinstance(qid, str):
                    raise bad_request("Invalid QSF file: a question has no QuestionID.")
                questions[qid] = _parsed(f"question {qid}", Question.from_definition, qid, payload)
            elif kind == "BL":
                items = list(payload.values()) if isinstance(payload, dict) else payload or []
                if not isinstance(items, list) or not all(isinstance(b, dict) for b in items):
                    raise bad_request("Invalid QSF file: the blocks must be objects.")
                for raw in items:
                    block = _parsed("a block", Block.from_definition, raw)
                    blocks[block.id] = block
            elif kind == "FL" and isinstance(payload, dict):
                raw_flow = payload.get("Flow") or []
                if not isinstance(raw_flow, list) or not all(isinstance(f, dict) for f in raw_flow):
                    raise bad_request("Invalid QSF file: the flow must be a list of objects.")
                flow = list(raw_flow)
            elif kind == "SO" and isinstance(payload, dict):
                options = dict(payload)
        survey_name = name or entry.get("SurveyName")
        if not survey_name:
            raise bad_request("Invalid request. Missing or invalid parameter name.")
        if not blocks:
            default = Block(ids.block_id(), "Default Question Block", "Default")
            default.elements = [{"Type": "Question", "QuestionID": q} for q in questions]
            blocks[default.id] = default
        if not flow:
            flow = [
                {
                    "Type": "Block" if b.type == "Default" else "Standard",
                    "ID": b.id,
                    "FlowID": f"FL_{i + 2}",
                }
                for i, b in enumerate(blocks.values())
                if b.type != "Trash"
            ]
        return cls(
            id=survey_id,
            name=str(survey_name),
            owner_id=owner_id,
            brand_id=brand_id,
            creation_date=now,
            last_modified=now,
            language=str(entry.get("SurveyLanguage") or "EN"),
            description=str(entry.get("SurveyDescription") or ""),
            questions=questions,
            blocks=blocks,
            flow=flow,
            options=options,
        )


def _qsf_element(
    survey_id: str, kind: str, primary: str, payload: Any, secondary: str | None = None
) -> dict[str, Any]:
    return {
        "SurveyID": survey_id,
        "Element": kind,
        "PrimaryAttribute": primary,
        "SecondaryAttribute": secondary,
        "TertiaryAttribute": None,
        "Payload": payload,
    }


def _mysql_date(iso: str | None) -> str | None:
    """``2020-02-20T00:35:40Z`` → ``2020-02-20 00:35:40`` (survey-definitions metadata format)."""
    if not iso:
        return None
    return iso.replace("T", " ").replace("Z", "")[:19]
