"""Survey definitions (the newer ``/survey-definitions`` API, PascalCase on the wire)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_pascal

from qualflow.qualtrics.models._base import ApiDatetime, AwareUtcDatetime, format_utc

__all__ = [
    "BlockDefinition",
    "DefinitionModel",
    "QuestionDefinition",
    "SurveyDefinition",
    "SurveyDefinitionCreate",
    "SurveyDefinitionCreated",
    "SurveyDefinitionDeleted",
    "SurveyMetadata",
    "SurveyMetadataUpdate",
]


class DefinitionModel(BaseModel):
    """Base of survey-definition shapes: PascalCase keys, unknown keys kept."""

    model_config = ConfigDict(
        alias_generator=to_pascal,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )


class QuestionDefinition(DefinitionModel):
    """One question as the definitions API reads and writes it.

    Only the common keys are typed; everything else (``DisplayLogic``, ``Randomization``,
    ``RecodeValues``…) is preserved in ``model_extra`` and sent back unchanged.
    """

    question_text: str = ""
    data_export_tag: str | None = None
    question_type: str
    selector: str | None = None
    sub_selector: str | None = None
    configuration: dict[str, Any] | None = None
    question_description: str | None = None
    choices: dict[str, dict[str, Any]] | None = None
    choice_order: list[str | int] | None = None
    validation: dict[str, Any] | None = None
    language: list[Any] | dict[str, Any] | None = None
    question_id: str | None = Field(default=None, alias="QuestionID")
    data_visibility: dict[str, Any] | None = None

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class BlockDefinition(DefinitionModel):
    type: str | None = None
    sub_type: str | None = None
    description: str | None = None
    id: str | None = Field(default=None, alias="ID")
    block_elements: list[dict[str, Any]] = Field(default_factory=list)
    options: dict[str, Any] | None = None


class SurveyDefinition(DefinitionModel):
    """``GET /survey-definitions/{id}``."""

    survey_id: str = Field(alias="SurveyID")
    survey_name: str
    survey_status: str | None = None
    question_count: int | None = None
    survey_options: dict[str, Any] = Field(default_factory=dict)
    last_modified: ApiDatetime = None
    last_accessed: ApiDatetime = None
    last_activated: ApiDatetime = None
    brand_id: str | None = Field(default=None, alias="BrandID")
    owner_id: str | None = Field(default=None, alias="OwnerID")
    creator_id: str | None = Field(default=None, alias="CreatorID")
    questions: dict[str, QuestionDefinition] = Field(default_factory=dict)
    blocks: dict[str, BlockDefinition] = Field(default_factory=dict)
    response_sets: dict[str, str] = Field(default_factory=dict)
    survey_flow: dict[str, Any] | None = None
    scoring: dict[str, Any] | None = None
    project_info: dict[str, Any] | None = None
    brand_base_url: str | None = Field(default=None, alias="BrandBaseURL")


class SurveyDefinitionCreate(DefinitionModel):
    model_config = ConfigDict(extra="forbid")

    survey_name: str = Field(min_length=1)
    language: str = "EN"
    project_category: Literal["CORE", "CX", "EX", "BX", "PX"] = "CORE"

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class SurveyDefinitionCreated(DefinitionModel):
    survey_id: str = Field(alias="SurveyID")
    default_block_id: str | None = Field(default=None, alias="DefaultBlockID")


class SurveyDefinitionDeleted(DefinitionModel):
    deleted_date: ApiDatetime = None


class SurveyMetadata(DefinitionModel):
    """``GET /survey-definitions/{id}/metadata``."""

    survey_id: str | None = Field(default=None, alias="SurveyID")
    survey_name: str | None = None
    survey_description: str | None = None
    survey_owner_id: str | None = Field(default=None, alias="SurveyOwnerID")
    survey_brand_id: str | None = Field(default=None, alias="SurveyBrandID")
    division_id: str | None = Field(default=None, alias="DivisionID")
    survey_language: str | None = None
    survey_active_response_set: str | None = None
    survey_status: str | None = None
    survey_start_date: ApiDatetime = None
    survey_expiration_date: ApiDatetime = None
    survey_creation_date: ApiDatetime = None
    creator_id: str | None = Field(default=None, alias="CreatorID")
    last_modified: ApiDatetime = None
    last_accessed: ApiDatetime = None
    last_activated: ApiDatetime = None
    deleted: Any = None


def _mysql_datetime(value: Any) -> str:
    # The metadata PUT takes "YYYY-MM-DD HH:MM:SS" in UTC, not ISO-8601.
    return format_utc(value)[:19].replace("T", " ")


class SurveyMetadataUpdate(DefinitionModel):
    """Body of ``PUT /survey-definitions/{id}/metadata``."""

    model_config = ConfigDict(extra="forbid")

    survey_name: str | None = None
    survey_description: str | None = None
    survey_status: Literal["Active", "Inactive"] | None = None
    survey_start_date: AwareUtcDatetime | None = None
    survey_expiration_date: AwareUtcDatetime | None = None

    def to_body(self) -> dict[str, Any]:
        body = self.model_dump(mode="python", by_alias=True, exclude_none=True)
        for key in ("SurveyStartDate", "SurveyExpirationDate"):
            if body.get(key) is not None:
                body[key] = _mysql_datetime(body[key])
        return body
