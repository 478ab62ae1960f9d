"""Parsing real recorded Qualtrics answers into the client's typed models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from qualflow.qualtrics._core import ApiCall, decode_response, result_as
from qualflow.qualtrics.models import Survey, SurveyDefinition


def _as_http_response(recording: dict[str, Any]) -> httpx.Response:
    url = "https://iad1.qualtrics.com" + recording["request"]["path"]
    request = httpx.Request(recording["request"]["method"], url)
    return httpx.Response(
        recording["status"],
        content=json.dumps(recording["body"]).encode(),
        headers={"content-type": "application/json"},
        request=request,
    )


def test_recorded_survey_decodes_through_the_envelope(recorded_survey: dict[str, Any]) -> None:
    call = ApiCall("GET", "/surveys/SV_3gbwq8aJgqPwQDP", result_as(Survey))
    envelope = decode_response(_as_http_response(recorded_survey), call)
    assert envelope.meta.http_status == "200 - OK"
    assert envelope.request_id == recorded_survey["body"]["meta"]["requestId"]
    survey = call.parse(envelope)
    assert survey.id == "SV_3gbwq8aJgqPwQDP"
    assert survey.name == "Beskar Armor"
    assert survey.is_active is True
    assert survey.creation_date == datetime(2020, 2, 20, 0, 35, 40, tzinfo=UTC)
    assert survey.expiration.start_date is None
    assert survey.expiration.end_date is None
    assert survey.response_counts.auditable == 27
    assert survey.response_counts.generated == 17
    assert survey.response_counts.deleted == 0


def test_recorded_survey_questions_and_choices(recorded_survey: dict[str, Any]) -> None:
    survey = Survey.model_validate(recorded_survey["body"]["result"])
    q16 = survey.questions["QID16"]
    assert (q16.question_type.type, q16.question_type.selector) == ("MC", "SAVR")
    assert q16.validation is not None
    assert q16.validation.does_force_response is True
    assert q16.choices is not None
    assert q16.choices["5"].recode == "5"
    # HTML is removed from labels; the raw text stays available.
    assert q16.choices["5"].label == "Extremely satisfied"
    assert "<strong>" in (q16.choices["5"].choice_text or "")
    assert survey.questions["QID19"].choices is None  # a text entry question
    assert [e.type for e in survey.blocks["BL_bvJSDbLJ6WXqDU9"].elements][:2] == [
        "Question",
        "PageBreak",
    ]
    assert survey.flow[0].type == "Group"
    assert survey.flow[0].flow is not None
    assert survey.embedded_data[0].name == "SolutionRevision"
    assert survey.embedded_data[0].default_value == "2"


def test_label_map_of_recorded_survey(recorded_survey: dict[str, Any]) -> None:
    survey = Survey.model_validate(recorded_survey["body"]["result"])
    labels = survey.label_map()
    assert labels["QID16"]["1"] == "Extremely dissatisfied"
    assert labels["QID63"] == {
        "1": "Daily",
        "2": "Weekly",
        "3": "Once a month",
        "4": "Less often",
        "5": "Do not use",
    }
    assert "QID19" not in labels  # no choices, no labels


def test_export_column_map_tags_differ_from_qids(
    recorded_survey_with_column_map: dict[str, Any],
) -> None:
    survey = Survey.model_validate(recorded_survey_with_column_map["body"]["result"])
    tags = survey.export_tags()
    assert tags["Q16"] == "QID2001"  # an export tag is not a QID
    assert tags["Q1_3"] == "QID1"
    assert survey.export_column_map["Q1_3"].sub_question == "QID1.subQuestions.3"
    # Matrix rows share the matrix's scale, keyed by the row's ImportId.
    labels = survey.label_map()
    matrix = survey.questions["QID1"]
    assert matrix.sub_questions is not None
    for row in matrix.sub_questions:
        assert labels[f"QID1_{row}"] == matrix.choice_labels()


def test_unknown_fields_are_kept(recorded_survey: dict[str, Any]) -> None:
    data = dict(recorded_survey["body"]["result"], brandNewField={"x": 1})
    survey = Survey.model_validate(data)
    assert survey.model_extra is not None
    assert survey.model_extra["brandNewField"] == {"x": 1}


def test_recorded_survey_definition(recorded_definition: dict[str, Any]) -> None:
    definition = SurveyDefinition.model_validate(recorded_definition["body"]["result"])
    assert definition.survey_id == "SV_3gbwq8aJgqPwQDP"
    assert definition.question_count == 1000  # sent as the string "1000"
    assert definition.brand_id == "conjoint"
    assert definition.brand_base_url == "https://conjoint.qualtrics.com"
    assert definition.last_accessed is None
    q16 = definition.questions["QID16"]
    assert q16.question_id == "QID16"
    assert q16.data_export_tag == "Q16"
    assert q16.choice_order == ["5", "4", "3", "2", "1"]
    # Keys the model does not name survive a round trip back to Qualtrics.
    body = q16.to_body()
    assert body["QuestionID"] == "QID16"
    assert body["NextChoiceId"] == q16.model_extra["NextChoiceId"]  # type: ignore[index]
    assert definition.blocks["BL_3guR0F0lGVfF5tj"].type == "Trash"
    assert definition.response_sets == {"RS_2fxluyWmFQTx1E9": "Default Response Set"}


@pytest.mark.parametrize(
    "name",
    ["get_survey.json", "get_survey_with_export_column_map.json", "get_survey_definition.json"],
)
def test_recordings_survive_json_round_trip(recorded: Any, name: str) -> None:
    recording = recorded(name)
    model = SurveyDefinition if "definition" in name else Survey
    parsed = model.model_validate(recording["body"]["result"])
    again = model.model_validate(parsed.model_dump(mode="json", by_alias=True))
    assert again == parsed
