"""``/survey-definitions``: the survey's full definition, its questions and metadata."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from qualflow.qualtrics._core import (
    ApiCall,
    Envelope,
    elements_of,
    nothing,
    parse_model,
    path_segment,
    result_as,
)
from qualflow.qualtrics.errors import UnexpectedResponse
from qualflow.qualtrics.models import (
    QuestionDefinition,
    SurveyDefinition,
    SurveyDefinitionCreate,
    SurveyDefinitionCreated,
    SurveyDefinitionDeleted,
    SurveyMetadata,
    SurveyMetadataUpdate,
)
from qualflow.qualtrics.resources._resource import AsyncResource, SyncResource

__all__ = ["AsyncSurveyDefinitions", "SurveyDefinitions"]

QuestionSource = QuestionDefinition | Mapping[str, Any]
ProjectCategory = Literal["CORE", "CX", "EX", "BX", "PX"]


def _question_body(question: QuestionSource) -> dict[str, Any]:
    model = (
        question
        if isinstance(question, QuestionDefinition)
        else QuestionDefinition.model_validate(dict(question))
    )
    return model.to_body()


def _question_id(envelope: Envelope) -> str:
    result = envelope.result
    if isinstance(result, dict) and isinstance(result.get("QuestionID"), str):
        return str(result["QuestionID"])
    raise UnexpectedResponse("creating a question returned no QuestionID")


def _raw_result(envelope: Envelope) -> dict[str, Any]:
    if not isinstance(envelope.result, dict):
        raise UnexpectedResponse("expected a QSF document in the result")
    return envelope.result


def _deleted(envelope: Envelope) -> SurveyDefinitionDeleted:
    return parse_model(SurveyDefinitionDeleted, envelope.result or {}, envelope)


class _Calls:
    @staticmethod
    def base(survey_id: str) -> str:
        return f"/survey-definitions/{path_segment(survey_id, 'survey_id')}"

    @staticmethod
    def get(survey_id: str) -> ApiCall[SurveyDefinition]:
        return ApiCall("GET", _Calls.base(survey_id), result_as(SurveyDefinition))

    @staticmethod
    def get_qsf(survey_id: str) -> ApiCall[dict[str, Any]]:
        return ApiCall("GET", _Calls.base(survey_id), _raw_result, params={"format": "qsf"})

    @staticmethod
    def create(body: SurveyDefinitionCreate) -> ApiCall[SurveyDefinitionCreated]:
        return ApiCall(
            "POST", "/survey-definitions", result_as(SurveyDefinitionCreated), json=body.to_body()
        )

    @staticmethod
    def delete(survey_id: str) -> ApiCall[SurveyDefinitionDeleted]:
        return ApiCall("DELETE", _Calls.base(survey_id), _deleted)

    @staticmethod
    def questions(survey_id: str) -> ApiCall[list[QuestionDefinition]]:
        return ApiCall(
            "GET", f"{_Calls.base(survey_id)}/questions", elements_of(QuestionDefinition)
        )

    @staticmethod
    def question(survey_id: str, question_id: str) -> str:
        return f"{_Calls.base(survey_id)}/questions/{path_segment(question_id, 'question_id')}"

    @staticmethod
    def get_question(survey_id: str, question_id: str) -> ApiCall[QuestionDefinition]:
        return ApiCall(
            "GET", _Calls.question(survey_id, question_id), result_as(QuestionDefinition)
        )

    @staticmethod
    def create_question(
        survey_id: str, question: QuestionSource, block_id: str | None
    ) -> ApiCall[str]:
        if block_id is not None:
            path_segment(block_id, "block_id")
        return ApiCall(
            "POST",
            f"{_Calls.base(survey_id)}/questions",
            _question_id,
            params={"blockId": block_id},
            json=_question_body(question),
        )

    @staticmethod
    def update_question(
        survey_id: str, question_id: str, question: QuestionSource
    ) -> ApiCall[None]:
        return ApiCall(
            "PUT",
            _Calls.question(survey_id, question_id),
            nothing,
            json=_question_body(question),
        )

    @staticmethod
    def delete_question(survey_id: str, question_id: str) -> ApiCall[None]:
        return ApiCall("DELETE", _Calls.question(survey_id, question_id), nothing)

    @staticmethod
    def metadata(survey_id: str) -> ApiCall[SurveyMetadata]:
        return ApiCall("GET", f"{_Calls.base(survey_id)}/metadata", result_as(SurveyMetadata))

    @staticmethod
    def update_metadata(survey_id: str, update: SurveyMetadataUpdate) -> ApiCall[None]:
        body = update.to_body()
        if not body:
            raise ValueError("nothing to update in the survey metadata")
        return ApiCall("PUT", f"{_Calls.base(survey_id)}/metadata", nothing, json=body)


def _metadata_update(
    name: str | None,
    description: str | None,
    status: Literal["Active", "Inactive"] | None,
    start_date: datetime | None,
    expiration_date: datetime | None,
) -> SurveyMetadataUpdate:
    fields = {
        "survey_name": name,
        "survey_description": description,
        "survey_status": status,
        "survey_start_date": start_date,
        "survey_expiration_date": expiration_date,
    }
    return SurveyMetadataUpdate(**{k: v for k, v in fields.items() if v is not None})


class SurveyDefinitions(SyncResource):
    """The survey-definitions API: ``client.survey_definitions``."""

    def get(self, survey_id: str) -> SurveyDefinition:
        """The complete definition: ``Questions``, ``Blocks``, ``SurveyFlow``, options…"""
        return self._run(_Calls.get(survey_id))

    def get_qsf(self, survey_id: str) -> dict[str, Any]:
        """The survey as a QSF document (``SurveyEntry``, ``SurveyElements``), e.g. to import
        it elsewhere with :meth:`Surveys.import_qsf`."""
        return self._run(_Calls.get_qsf(survey_id))

    def create(
        self, name: str, *, language: str = "EN", project_category: ProjectCategory = "CORE"
    ) -> SurveyDefinitionCreated:
        """Create an empty survey; returns its ``survey_id`` and ``default_block_id``."""
        body = SurveyDefinitionCreate(
            survey_name=name, language=language, project_category=project_category
        )
        return self._run(_Calls.create(body))

    def delete(self, survey_id: str) -> SurveyDefinitionDeleted:
        return self._run(_Calls.delete(survey_id))

    def questions(self, survey_id: str) -> list[QuestionDefinition]:
        return self._run(_Calls.questions(survey_id))

    def get_question(self, survey_id: str, question_id: str) -> QuestionDefinition:
        return self._run(_Calls.get_question(survey_id, question_id))

    def create_question(
        self, survey_id: str, question: QuestionSource, *, block_id: str | None = None
    ) -> str:
        """Add a question (to ``block_id``, else the default block); returns its QID."""
        return self._run(_Calls.create_question(survey_id, question, block_id))

    def update_question(self, survey_id: str, question_id: str, question: QuestionSource) -> None:
        """Replace a question's definition."""
        self._run(_Calls.update_question(survey_id, question_id, question))

    def delete_question(self, survey_id: str, question_id: str) -> None:
        self._run(_Calls.delete_question(survey_id, question_id))

    def metadata(self, survey_id: str) -> SurveyMetadata:
        return self._run(_Calls.metadata(survey_id))

    def update_metadata(
        self,
        survey_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        status: Literal["Active", "Inactive"] | None = None,
        start_date: datetime | None = None,
        expiration_date: datetime | None = None,
    ) -> None:
        """Change the survey's name, description, status or availability dates."""
        update = _metadata_update(name, description, status, start_date, expiration_date)
        self._run(_Calls.update_metadata(survey_id, update))


class AsyncSurveyDefinitions(AsyncResource):
    """Async counterpart of :class:`SurveyDefinitions`."""

    async def get(self, survey_id: str) -> SurveyDefinition:
        return await self._run(_Calls.get(survey_id))

    async def get_qsf(self, survey_id: str) -> dict[str, Any]:
        return await self._run(_Calls.get_qsf(survey_id))

    async def create(
        self, name: str, *, language: str = "EN", project_category: ProjectCategory = "CORE"
    ) -> SurveyDefinitionCreated:
        body = SurveyDefinitionCreate(
            survey_name=name, language=language, project_category=project_category
        )
        return await self._run(_Calls.create(body))

    async def delete(self, survey_id: str) -> SurveyDefinitionDeleted:
        return await self._run(_Calls.delete(survey_id))

    async def questions(self, survey_id: str) -> list[QuestionDefinition]:
        return await self._run(_Calls.questions(survey_id))

    async def get_question(self, survey_id: str, question_id: str) -> QuestionDefinition:
        return await self._run(_Calls.get_question(survey_id, question_id))

    async def create_question(
        self, survey_id: str, question: QuestionSource, *, block_id: str | None = None
    ) -> str:
        return await self._run(_Calls.create_question(survey_id, question, block_id))

    async def update_question(
        self, survey_id: str, question_id: str, question: QuestionSource
    ) -> None:
        await self._run(_Calls.update_question(survey_id, question_id, question))

    async def delete_question(self, survey_id: str, question_id: str) -> None:
        await self._run(_Calls.delete_question(survey_id, question_id))

    async def metadata(self, survey_id: str) -> SurveyMetadata:
        return await self._run(_Calls.metadata(survey_id))

    async def update_metadata(
        self,
        survey_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        status: Literal["Active", "Inactive"] | None = None,
        start_date: datetime | None = None,
        expiration_date: datetime | None = None,
    ) -> None:
        update = _metadata_update(name, description, status, start_date, expiration_date)
        await self._run(_Calls.update_metadata(survey_id, update))
