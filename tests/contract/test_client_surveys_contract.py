"""whoami, /surveys and /survey-definitions: the client against the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from qualflow.qualtrics import NotFound, SurveySummary
from qualflow.qualtrics.models import QuestionDefinition, SurveyExpirationUpdate
from qualflow.sandbox import seed
from tests.contract.contract_support import Api, Sandbox


def test_whoami(api: Api, sandbox: Sandbox) -> None:
    me = api(api.client.whoami())
    assert me.user_id == sandbox.user_id
    assert me.user_name == "contract.tester@example.com"
    assert me.brand_id == sandbox.state.config.brand_id
    assert me.datacenter == "iad1"


def test_surveys_are_paged_lazily_across_all_pages(api: Api, sandbox: Sandbox) -> None:
    created = [seed.customer_satisfaction(sandbox.state).id for _ in range(7)]
    pages = api.pages(api.client.surveys.iter())
    assert [len(page.elements) for page in pages] == [3, 3, 1]  # the sandbox pages by 3 here
    assert pages[0].next_page is not None
    assert pages[0].next_page.startswith(api.base_url)
    assert pages[-1].next_page is None
    listed = api(api.client.surveys.list())
    assert [s.id for s in listed] == created
    assert all(isinstance(s, SurveySummary) for s in listed)
    assert api(api.client.surveys.list(limit=4)) == listed[:4]
    assert api.collect(api.client.surveys.iter(), limit=2) == listed[:2]


def test_get_survey_full_object(api: Api, survey_id: str) -> None:
    survey = api(api.client.surveys.get(survey_id))
    assert survey.id == survey_id
    assert survey.name == "Customer Satisfaction & NPS"
    assert survey.is_active is True
    assert survey.questions["QID3"].sub_questions is not None
    assert survey.export_tags()["Q3_2"] == "QID3"
    assert survey.response_counts.auditable == 0
    assert survey.expiration.end_date is None
    labels = api(api.client.surveys.label_map(survey_id))
    assert labels["QID1"]["5"] == "Extremely satisfied"
    assert labels["QID2_NPS_GROUP"]["3"] == "Promoter"


def test_get_unknown_survey_is_not_found(api: Api) -> None:
    with pytest.raises(NotFound) as info:
        api(api.client.surveys.get("SV_000000000000000"))
    error = info.value
    assert error.status_code == 404
    assert error.error_code
    assert error.error_message
    assert error.request_id
    assert not error.retriable


def test_update_name_activation_and_expiration(api: Api, survey_id: str) -> None:
    end = datetime(2031, 1, 31, 12, 0, tzinfo=UTC)
    api(
        api.client.surveys.update(
            survey_id,
            name="Renamed",
            expiration=SurveyExpirationUpdate(start_date=None, end_date=end),
        )
    )
    api(api.client.surveys.deactivate(survey_id))
    survey = api(api.client.surveys.get(survey_id))
    assert survey.name == "Renamed"
    assert survey.is_active is False
    assert survey.expiration.end_date == end
    api(api.client.surveys.activate(survey_id))
    assert api(api.client.surveys.get(survey_id)).is_active is True


def test_update_without_fields_is_refused_before_sending(api: Api, survey_id: str) -> None:
    with pytest.raises(ValueError, match="nothing to update"):
        api(api.client.surveys.update(survey_id))


def test_import_qsf_copy_and_delete(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    qsf = api(api.client.survey_definitions.get_qsf(survey_id))
    assert "SurveyElements" in qsf
    imported = api(api.client.surveys.import_qsf("Imported CSAT", qsf))
    assert imported.startswith("SV_")
    assert imported != survey_id
    original = api(api.client.surveys.get(survey_id))
    again = api(api.client.surveys.get(imported))
    assert again.name == "Imported CSAT"
    assert set(again.questions) == set(original.questions)

    copied = api(api.client.surveys.copy(survey_id, name="CSAT copy", owner_id=sandbox.user_id))
    assert api(api.client.surveys.get(copied)).name == "CSAT copy"

    api(api.client.surveys.delete(copied))
    with pytest.raises(NotFound):
        api(api.client.surveys.get(copied))


def test_survey_definition_and_metadata(api: Api, survey_id: str) -> None:
    definition = api(api.client.survey_definitions.get(survey_id))
    assert definition.survey_id == survey_id
    assert definition.questions["QID1"].question_type == "MC"
    assert definition.blocks

    metadata = api(api.client.survey_definitions.metadata(survey_id))
    assert metadata.survey_id == survey_id
    assert metadata.survey_status == "Active"

    closes = datetime(2030, 6, 1, 8, 30, tzinfo=UTC)
    api(
        api.client.survey_definitions.update_metadata(
            survey_id, name="CSAT 2030", status="Inactive", expiration_date=closes
        )
    )
    metadata = api(api.client.survey_definitions.metadata(survey_id))
    assert metadata.survey_name == "CSAT 2030"
    assert metadata.survey_status == "Inactive"
    assert metadata.survey_expiration_date is not None
    assert metadata.survey_expiration_date.replace(tzinfo=UTC) == closes


def test_definition_questions_crud(api: Api, survey_id: str) -> None:
    questions = api(api.client.survey_definitions.questions(survey_id))
    assert {q.question_id for q in questions} >= {"QID1", "QID2", "QID5"}

    new = QuestionDefinition(
        question_text="Anything else?",
        question_type="TE",
        selector="SL",
        data_export_tag="anything_else",
    )
    qid = api(api.client.survey_definitions.create_question(survey_id, new))
    fetched = api(api.client.survey_definitions.get_question(survey_id, qid))
    assert fetched.question_text == "Anything else?"
    assert fetched.data_export_tag == "anything_else"

    changed = fetched.model_copy(update={"question_text": "Anything else to add?"})
    api(api.client.survey_definitions.update_question(survey_id, qid, changed))
    fetched = api(api.client.survey_definitions.get_question(survey_id, qid))
    assert fetched.question_text == "Anything else to add?"

    api(api.client.survey_definitions.delete_question(survey_id, qid))
    with pytest.raises(NotFound):
        api(api.client.survey_definitions.get_question(survey_id, qid))


def test_create_and_delete_survey_definition(api: Api) -> None:
    created = api(api.client.survey_definitions.create("Brand new", project_category="CX"))
    assert created.survey_id.startswith("SV_")
    assert created.default_block_id is not None
    assert api(api.client.surveys.get(created.survey_id)).name == "Brand new"
    api(api.client.survey_definitions.delete(created.survey_id))
    with pytest.raises(NotFound):
        api(api.client.survey_definitions.get(created.survey_id))
