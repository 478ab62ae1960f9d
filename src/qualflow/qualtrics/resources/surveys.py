"""``/surveys``: list, read, update, import, copy and delete surveys."""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qualflow.qualtrics._core import (
    ApiCall,
    Envelope,
    nothing,
    page_of,
    path_segment,
    result_as,
)
from qualflow.qualtrics.models import (
    CollaborationPermissions,
    CreatedId,
    Page,
    ResponseFilter,
    Survey,
    SurveyExpirationUpdate,
    SurveySummary,
    SurveyUpdate,
)
from qualflow.qualtrics.paging import AsyncPager, SyncPager
from qualflow.qualtrics.resources._resource import AsyncResource, SyncResource

__all__ = ["QSF_CONTENT_TYPE", "AsyncSurveys", "Surveys"]

QSF_CONTENT_TYPE = "application/vnd.qualtrics.survey.qsf"

QsfSource = bytes | str | Path | Mapping[str, Any]


def _created_id(envelope: Envelope) -> str:
    return result_as(CreatedId)(envelope).id


class _Calls:
    @staticmethod
    def list(offset: int | None) -> ApiCall[Page[SurveySummary]]:
        return ApiCall("GET", "/surveys", page_of(SurveySummary), params={"offset": offset})

    @staticmethod
    def filters(survey_id: str) -> ApiCall[Page[ResponseFilter]]:
        sid = path_segment(survey_id, "survey_id")
        return ApiCall("GET", f"/surveys/{sid}/filters", page_of(ResponseFilter))

    @staticmethod
    def get(survey_id: str) -> ApiCall[Survey]:
        sid = path_segment(survey_id, "survey_id")
        return ApiCall("GET", f"/surveys/{sid}", result_as(Survey))

    @staticmethod
    def update(survey_id: str, update: SurveyUpdate) -> ApiCall[None]:
        sid = path_segment(survey_id, "survey_id")
        body = update.to_body()
        if not body:
            raise ValueError("nothing to update: give name, is_active or expiration")
        return ApiCall("PUT", f"/surveys/{sid}", nothing, json=body)

    @staticmethod
    def import_qsf(name: str, qsf: QsfSource, content_type: str) -> ApiCall[str]:
        if not name.strip():
            raise ValueError("the imported survey needs a name")
        content = _qsf_bytes(qsf)
        return ApiCall(
            "POST",
            "/surveys",
            _created_id,
            form={"name": name},
            files={"file": (f"{name}.qsf", content, content_type)},
        )

    @staticmethod
    def copy(survey_id: str, name: str, owner_id: str) -> ApiCall[str]:
        sid = path_segment(survey_id, "survey_id")
        owner = path_segment(owner_id, "owner_id")
        if not name.strip():
            raise ValueError("the copy needs a name")
        return ApiCall(
            "POST",
            "/surveys",
            _created_id,
            json={"projectName": name},
            headers={"X-COPY-SOURCE": sid, "X-COPY-DESTINATION-OWNER": owner},
        )

    @staticmethod
    def delete(survey_id: str) -> ApiCall[None]:
        return ApiCall("DELETE", f"/surveys/{path_segment(survey_id, 'survey_id')}", nothing)

    @staticmethod
    def share(
        survey_id: str, recipient_id: str, permissions: CollaborationPermissions
    ) -> ApiCall[None]:
        sid = path_segment(survey_id, "survey_id")
        path_segment(recipient_id, "recipient_id")
        return ApiCall(
            "POST",
            f"/surveys/{sid}/permissions/collaborations",
            nothing,
            json={"recipientId": recipient_id, "permissions": permissions.to_body()},
            # Sharing again with the same permissions leaves the same state.
            safe_to_repeat=True,
        )


def _qsf_bytes(qsf: QsfSource) -> bytes:
    if isinstance(qsf, bytes):
        return qsf
    if isinstance(qsf, Path):
        return qsf.read_bytes()
    if isinstance(qsf, str):
        return qsf.encode("utf-8")
    return json.dumps(qsf).encode("utf-8")


def _update_body(
    name: str | None, is_active: bool | None, expiration: SurveyExpirationUpdate | None
) -> SurveyUpdate:
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = name
    if is_active is not None:
        fields["is_active"] = is_active
    if expiration is not None:
        fields["expiration"] = expiration
    return SurveyUpdate(**fields)


class Surveys(SyncResource):
    """Surveys of the account: ``client.surveys``."""

    def iter(self, *, offset: int | None = None) -> SyncPager[SurveySummary]:
        """All surveys the credentials can see, fetched page by page as you iterate."""
        return self._pager(_Calls.list(offset))

    def list(self, *, limit: int | None = None) -> list[SurveySummary]:
        """The surveys as a list (all of them, or the first ``limit``)."""
        return self.iter().take(limit)

    def get(self, survey_id: str) -> Survey:
        """The full survey: questions with choices, ``export_column_map``, blocks, flow,
        embedded data, ``expiration`` and ``response_counts``."""
        return self._run(_Calls.get(survey_id))

    def filters(self, survey_id: str) -> builtins.list[ResponseFilter]:
        """The survey's saved response filters: an export's ``filter_id`` takes one's id."""
        return self._pager(_Calls.filters(survey_id)).take(None)

    def update(
        self,
        survey_id: str,
        *,
        name: str | None = None,
        is_active: bool | None = None,
        expiration: SurveyExpirationUpdate | None = None,
    ) -> None:
        """Rename, activate/deactivate, or set the response window (only what you pass)."""
        self._run(_Calls.update(survey_id, _update_body(name, is_active, expiration)))

    def activate(self, survey_id: str) -> None:
        self.update(survey_id, is_active=True)

    def deactivate(self, survey_id: str) -> None:
        self.update(survey_id, is_active=False)

    def import_qsf(
        self, name: str, qsf: QsfSource, *, content_type: str = QSF_CONTENT_TYPE
    ) -> str:
        """Create a survey from a QSF file (bytes, text, path or parsed JSON); returns its id."""
        return self._run(_Calls.import_qsf(name, qsf, content_type))

    def copy(self, survey_id: str, *, name: str, owner_id: str) -> str:
        """Copy a survey into ``owner_id``'s account under ``name``; returns the new id."""
        return self._run(_Calls.copy(survey_id, name, owner_id))

    def delete(self, survey_id: str) -> None:
        self._run(_Calls.delete(survey_id))

    def share(
        self,
        survey_id: str,
        recipient_id: str,
        permissions: CollaborationPermissions | None = None,
    ) -> None:
        """Share a survey with a user (``UR_…``) or group (``GR_…``) as collaborator.

        ``permissions`` defaults to viewing results only.
        """
        perms = permissions or CollaborationPermissions.view_results()
        self._run(_Calls.share(survey_id, recipient_id, perms))

    def label_map(self, survey_id: str) -> dict[str, dict[str, str]]:
        """``{import id: {code: label}}`` for the survey's choice questions (see
        :meth:`Survey.label_map`)."""
        return self.get(survey_id).label_map()


class AsyncSurveys(AsyncResource):
    """Async counterpart of :class:`Surveys`."""

    def iter(self, *, offset: int | None = None) -> AsyncPager[SurveySummary]:
        return self._pager(_Calls.list(offset))

    async def list(self, *, limit: int | None = None) -> list[SurveySummary]:
        return await self.iter().take(limit)

    async def get(self, survey_id: str) -> Survey:
        return await self._run(_Calls.get(survey_id))

    async def filters(self, survey_id: str) -> builtins.list[ResponseFilter]:
        return await self._pager(_Calls.filters(survey_id)).take(None)

    async def update(
        self,
        survey_id: str,
        *,
        name: str | None = None,
        is_active: bool | None = None,
        expiration: SurveyExpirationUpdate | None = None,
    ) -> None:
        await self._run(_Calls.update(survey_id, _update_body(name, is_active, expiration)))

    async def activate(self, survey_id: str) -> None:
        await self.update(survey_id, is_active=True)

    async def deactivate(self, survey_id: str) -> None:
        await self.update(survey_id, is_active=False)

    async def import_qsf(
        self, name: str, qsf: QsfSource, *, content_type: str = QSF_CONTENT_TYPE
    ) -> str:
        return await self._run(_Calls.import_qsf(name, qsf, content_type))

    async def copy(self, survey_id: str, *, name: str, owner_id: str) -> str:
        return await self._run(_Calls.copy(survey_id, name, owner_id))

    async def delete(self, survey_id: str) -> None:
        await self._run(_Calls.delete(survey_id))

    async def share(
        self,
        survey_id: str,
        recipient_id: str,
        permissions: CollaborationPermissions | None = None,
    ) -> None:
        perms = permissions or CollaborationPermissions.view_results()
        await self._run(_Calls.share(survey_id, recipient_id, perms))

    async def label_map(self, survey_id: str) -> dict[str, dict[str, str]]:
        return (await self.get(survey_id)).label_map()
