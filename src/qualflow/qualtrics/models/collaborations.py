"""Sharing a survey with a user or group."""

from __future__ import annotations

from pydantic import Field

from qualflow.qualtrics.models._base import RequestModel

__all__ = [
    "CollaborationPermissions",
    "ResponsePermissions",
    "ResultPermissions",
    "SurveyDefinitionPermissions",
    "SurveyManagementPermissions",
]


class SurveyDefinitionPermissions(RequestModel):
    copy_survey_questions: bool = False
    edit_survey_flow: bool = False
    use_blocks: bool = False
    use_skip_logic: bool = False
    use_conjoint: bool = False
    use_triggers: bool = False
    use_quotas: bool = False
    set_survey_options: bool = False
    edit_questions: bool = False
    delete_survey_questions: bool = False


class SurveyManagementPermissions(RequestModel):
    edit_surveys: bool = False
    activate_surveys: bool = False
    deactivate_surveys: bool = False
    copy_surveys: bool = False
    distribute_surveys: bool = False
    delete_surveys: bool = False
    translate_surveys: bool = False


class ResponsePermissions(RequestModel):
    edit_survey_responses: bool = False
    create_response_sets: bool = False
    view_response_id: bool = False
    use_cross_tabs: bool = False


class ResultPermissions(RequestModel):
    download_survey_results: bool = False
    view_survey_results: bool = False
    filter_survey_results: bool = False
    view_personal_data: bool = False


class CollaborationPermissions(RequestModel):
    """What a collaborator may do; everything not granted is refused.

    ``CollaborationPermissions.view_results()`` and ``.full()`` cover the common cases.
    """

    survey_definition_manipulation: SurveyDefinitionPermissions = Field(
        default_factory=SurveyDefinitionPermissions
    )
    survey_management: SurveyManagementPermissions = Field(
        default_factory=SurveyManagementPermissions
    )
    response: ResponsePermissions = Field(default_factory=ResponsePermissions)
    result: ResultPermissions = Field(default_factory=ResultPermissions)

    @classmethod
    def view_results(cls) -> CollaborationPermissions:
        return cls(result=ResultPermissions(view_survey_results=True, filter_survey_results=True))

    @classmethod
    def full(cls) -> CollaborationPermissions:
        def all_true(model: type[RequestModel]) -> dict[str, bool]:
            return dict.fromkeys(model.model_fields, True)

        return cls(
            survey_definition_manipulation=SurveyDefinitionPermissions(
                **all_true(SurveyDefinitionPermissions)
            ),
            survey_management=SurveyManagementPermissions(**all_true(SurveyManagementPermissions)),
            response=ResponsePermissions(**all_true(ResponsePermissions)),
            result=ResultPermissions(**all_true(ResultPermissions)),
        )

    def to_body(self) -> dict[str, object]:
        # Every flag is sent, granted or not: the API expects the full matrix.
        return self.model_dump(mode="json", by_alias=True)
