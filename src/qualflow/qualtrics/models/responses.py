"""Single survey responses."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from qualflow.qualtrics.models._base import ApiModel, RequestModel

__all__ = ["ResponseCreated", "SurveyResponse", "SurveyResponseUpdate"]


class SurveyResponse(ApiModel):
    """``GET /surveys/{id}/responses/{rid}``: answer codes in ``values``, texts in ``labels``.

    Keys of ``values`` are ImportIds (``QID3``, ``QID2_TEXT``, ``QID1_2``), survey metadata
    (``startDate``, ``finished``, ``recordedDate``…) and embedded data fields.
    """

    response_id: str
    values: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)
    displayed_fields: list[str] | None = None
    displayed_values: dict[str, Any] | None = None


class ResponseCreated(ApiModel):
    response_id: str


class SurveyResponseUpdate(RequestModel):
    """Body of ``PUT /responses/{rid}``: only embedded data can be changed."""

    survey_id: str
    embedded_data: dict[str, Any]
    reset_recorded_date: bool | None = None
