"""Surveys as the legacy ``/surveys`` endpoints describe them."""

from __future__ import annotations

import html
import re
from typing import Any

from pydantic import Field

from qualflow.qualtrics.models._base import ApiDatetime, ApiModel, AwareUtcDatetime, RequestModel

__all__ = [
    "Block",
    "BlockElement",
    "Choice",
    "EmbeddedDataField",
    "ExportColumn",
    "FlowElement",
    "Question",
    "QuestionType",
    "QuestionValidation",
    "ResponseCounts",
    "ResponseFilter",
    "Survey",
    "SurveyExpiration",
    "SurveyExpirationUpdate",
    "SurveySummary",
    "SurveyUpdate",
    "plain_text",
]

_NPS_GROUPS = {"1": "Detractor", "2": "Passive", "3": "Promoter"}
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def plain_text(markup: str) -> str:
    """Question and choice texts carry HTML; this is what a person reads."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", markup))).strip()


class SurveySummary(ApiModel):
    """One element of ``GET /surveys``."""

    id: str
    name: str
    owner_id: str | None = None
    last_modified: ApiDatetime = None
    creation_date: ApiDatetime = None
    is_active: bool | None = None


class ResponseFilter(ApiModel):
    """One element of ``GET /surveys/{id}/filters``: a saved response filter, whose
    ``filter_id`` an export's ``filter_id`` takes."""

    filter_id: str
    filter_name: str | None = None
    creation_date: ApiDatetime = None


class SurveyExpiration(ApiModel):
    start_date: ApiDatetime = None
    end_date: ApiDatetime = None


class QuestionType(ApiModel):
    type: str
    selector: str | None = None
    sub_selector: str | None = None


class QuestionValidation(ApiModel):
    does_force_response: bool | None = None


class Choice(ApiModel):
    """A choice (or a matrix sub-question): ``recode`` is the value exports carry."""

    recode: str | None = None
    description: str | None = None
    choice_text: str | None = None
    image_description: str | None = None
    variable_name: str | None = None
    analyze: bool | None = None

    @property
    def label(self) -> str:
        """The readable text of the choice (HTML removed)."""
        return plain_text(self.choice_text or self.description or self.recode or "")


class Question(ApiModel):
    question_type: QuestionType
    question_text: str = ""
    question_label: str | None = None
    question_name: str | None = None
    validation: QuestionValidation | None = None
    choices: dict[str, Choice] | None = None
    sub_questions: dict[str, Choice] | None = None

    @property
    def text(self) -> str:
        return plain_text(self.question_text)

    def choice_labels(self) -> dict[str, str]:
        """``{recode: label}`` of this question's choices (empty when it has none)."""
        return {
            (choice.recode if choice.recode is not None else key): choice.label
            for key, choice in (self.choices or {}).items()
        }


class ExportColumn(ApiModel):
    """Where an export column comes from: ``question`` QID, optional sub-question/choice path."""

    question: str | None = None
    sub_question: str | None = None
    choice: str | None = None
    text_entry: str | None = None


class BlockElement(ApiModel):
    type: str
    question_id: str | None = None


class Block(ApiModel):
    description: str | None = None
    elements: list[BlockElement] = Field(default_factory=list)


class FlowElement(ApiModel):
    type: str
    id: str | None = None
    flow: list[FlowElement] | None = None


class EmbeddedDataField(ApiModel):
    name: str
    default_value: str | None = None


class ResponseCounts(ApiModel):
    auditable: int = 0
    generated: int = 0
    deleted: int = 0


class Survey(ApiModel):
    """``GET /surveys/{id}``: the survey with its questions, export column map and counts."""

    id: str
    name: str
    owner_id: str | None = None
    organization_id: str | None = None
    is_active: bool | None = None
    creation_date: ApiDatetime = None
    last_modified_date: ApiDatetime = None
    expiration: SurveyExpiration = Field(default_factory=SurveyExpiration)
    questions: dict[str, Question] = Field(default_factory=dict)
    export_column_map: dict[str, ExportColumn] = Field(default_factory=dict)
    blocks: dict[str, Block] = Field(default_factory=dict)
    flow: list[FlowElement] = Field(default_factory=list)
    embedded_data: list[EmbeddedDataField] = Field(default_factory=list)
    comments: dict[str, Any] = Field(default_factory=dict)
    loop_and_merge: dict[str, Any] = Field(default_factory=dict)
    response_counts: ResponseCounts = Field(default_factory=ResponseCounts)

    def label_map(self) -> dict[str, dict[str, str]]:
        """``{import id: {recode: label}}`` for every column whose values are choice codes.

        Keys are the ImportIds of export columns: ``QID16`` for a single-answer question,
        ``QID1_3`` for row 3 of matrix ``QID1`` (each row shares the matrix's scale) and
        ``QID2_NPS_GROUP`` for the group column of an NPS question. Use it
        to show labels beside the numeric codes of a CSV export.
        """
        labels: dict[str, dict[str, str]] = {}
        for qid, question in self.questions.items():
            choice_labels = question.choice_labels()
            if not choice_labels:
                continue
            if question.sub_questions:
                for row in question.sub_questions:
                    labels[f"{qid}_{row}"] = dict(choice_labels)
            else:
                labels[qid] = choice_labels
            if question.question_type.selector == "NPS":
                labels[f"{qid}_NPS_GROUP"] = dict(_NPS_GROUPS)
        return labels

    def export_tags(self) -> dict[str, str]:
        """``{export tag: QID}``; export tags (``Q16``) need not match QIDs (``QID2001``)."""
        return {
            tag: column.question
            for tag, column in self.export_column_map.items()
            if column.question is not None
        }


class SurveyUpdate(RequestModel):
    """Body of ``PUT /surveys/{id}``: rename, (de)activate, or set the availability window."""

    name: str | None = None
    is_active: bool | None = None
    expiration: SurveyExpirationUpdate | None = None

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        if self.expiration is not None:
            body["expiration"] = self.expiration.to_body()
        return body


class SurveyExpirationUpdate(RequestModel):
    """When the survey accepts responses; a date explicitly set to ``None`` removes that bound
    (it is sent as ``null``), a date not given is left as it is."""

    start_date: AwareUtcDatetime | None = None
    end_date: AwareUtcDatetime | None = None

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


SurveyUpdate.model_rebuild()
