"""Single survey responses: read (waiting out 202s if asked), create, update, delete."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from qualflow.qualtrics._core import ApiCall, Envelope, nothing, path_segment, result_as
from qualflow.qualtrics.errors import NotYetAvailable
from qualflow.qualtrics.models import ResponseCreated, SurveyResponse, SurveyResponseUpdate
from qualflow.qualtrics.resources._resource import AsyncResource, SyncResource

__all__ = ["AsyncResponses", "Responses"]

_parse_response = result_as(SurveyResponse)


def _response_or_not_yet(envelope: Envelope) -> SurveyResponse:
    if envelope.status_code == 202:
        message = None
        if isinstance(envelope.result, dict):
            message = envelope.result.get("message")
        raise NotYetAvailable(
            str(message or "The survey response is not yet available; try again shortly."),
            status_code=202,
            request_id=envelope.request_id,
        )
    return _parse_response(envelope)


class _Calls:
    @staticmethod
    def one(survey_id: str, response_id: str) -> str:
        sid = path_segment(survey_id, "survey_id")
        return f"/surveys/{sid}/responses/{path_segment(response_id, 'response_id')}"

    @staticmethod
    def get(survey_id: str, response_id: str) -> ApiCall[SurveyResponse]:
        return ApiCall("GET", _Calls.one(survey_id, response_id), _response_or_not_yet)

    @staticmethod
    def create(
        survey_id: str, values: Mapping[str, Any], idempotency_key: str | None
    ) -> ApiCall[str]:
        sid = path_segment(survey_id, "survey_id")
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return ApiCall(
            "POST",
            f"/surveys/{sid}/responses",
            lambda envelope: result_as(ResponseCreated)(envelope).response_id,
            json={"values": dict(values)},
            headers=headers,
        )

    @staticmethod
    def update(
        response_id: str, survey_id: str, embedded_data: Mapping[str, Any], reset: bool | None
    ) -> ApiCall[None]:
        rid = path_segment(response_id, "response_id")
        path_segment(survey_id, "survey_id")
        if not embedded_data:
            raise ValueError("embedded_data must name at least one field to update")
        fields: dict[str, Any] = {"survey_id": survey_id, "embedded_data": dict(embedded_data)}
        if reset is not None:
            fields["reset_recorded_date"] = reset
        body = SurveyResponseUpdate(**fields).to_body()
        # PUT /responses/{id} is not under /surveys: only embedded data can be changed.
        return ApiCall("PUT", f"/responses/{rid}", nothing, json=body)

    @staticmethod
    def delete(
        survey_id: str, response_id: str, decrement_quotas: bool | None
    ) -> ApiCall[None]:
        return ApiCall(
            "DELETE",
            _Calls.one(survey_id, response_id),
            nothing,
            params={"decrementQuotas": decrement_quotas},
        )


def _check_wait(wait: float, poll_interval: float) -> None:
    # Written so that NaN fails too (every comparison with NaN is false): a NaN wait would
    # poll forever.
    if not (wait >= 0 and poll_interval > 0):
        raise ValueError("wait must be >= 0 and poll_interval > 0")


class Responses(SyncResource):
    """Single responses: ``client.responses``."""

    def get(
        self,
        survey_id: str,
        response_id: str,
        *,
        wait: float = 0.0,
        poll_interval: float = 1.0,
    ) -> SurveyResponse:
        """One response with its ``values`` and ``labels``.

        Right after a response is recorded Qualtrics may answer 202 ("not yet available"):
        with ``wait=0`` that raises :class:`NotYetAvailable`; with ``wait=N`` the client asks
        again every ``poll_interval`` seconds for up to N seconds before raising it.
        """
        _check_wait(wait, poll_interval)
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._run(_Calls.get(survey_id, response_id))
            except NotYetAvailable:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                self._client._sleep(min(poll_interval, remaining))

    def create(
        self,
        survey_id: str,
        values: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> str:
        """Record a response (``values`` keyed by ImportId: ``QID1``, ``finished``…).

        Pass ``idempotency_key`` to make the call safe to repeat: Qualtrics then records one
        response however often the request arrives, and the client may retry it on 5xx and
        timeouts. Without it a failed create is retried only when it cannot have been recorded.
        """
        return self._run(_Calls.create(survey_id, values, idempotency_key))

    def update_embedded_data(
        self,
        survey_id: str,
        response_id: str,
        embedded_data: Mapping[str, Any],
        *,
        reset_recorded_date: bool | None = None,
    ) -> None:
        """Set embedded data fields of a recorded response (the only updatable part)."""
        self._run(_Calls.update(response_id, survey_id, embedded_data, reset_recorded_date))

    def delete(
        self, survey_id: str, response_id: str, *, decrement_quotas: bool | None = None
    ) -> None:
        self._run(_Calls.delete(survey_id, response_id, decrement_quotas))


class AsyncResponses(AsyncResource):
    """Async counterpart of :class:`Responses`."""

    async def get(
        self,
        survey_id: str,
        response_id: str,
        *,
        wait: float = 0.0,
        poll_interval: float = 1.0,
    ) -> SurveyResponse:
        _check_wait(wait, poll_interval)
        deadline = time.monotonic() + wait
        while True:
            try:
                return await self._run(_Calls.get(survey_id, response_id))
            except NotYetAvailable:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                await self._client._sleep(min(poll_interval, remaining))

    async def create(
        self,
        survey_id: str,
        values: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> str:
        return await self._run(_Calls.create(survey_id, values, idempotency_key))

    async def update_embedded_data(
        self,
        survey_id: str,
        response_id: str,
        embedded_data: Mapping[str, Any],
        *,
        reset_recorded_date: bool | None = None,
    ) -> None:
        await self._run(_Calls.update(response_id, survey_id, embedded_data, reset_recorded_date))

    async def delete(
        self, survey_id: str, response_id: str, *, decrement_quotas: bool | None = None
    ) -> None:
        await self._run(_Calls.delete(survey_id, response_id, decrement_quotas))
