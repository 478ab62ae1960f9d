"""The real answer shapes quoted in the research notes, parsed the way the client parses them.

Each fixture in ``tests/fixtures/qualtrics-shapes`` is turned into the ``httpx.Response`` the
client would receive and goes through the client's own path: ``decode_response`` (status,
envelope, error mapping) and then the ``parse`` of the very ``ApiCall`` the resource builds.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from qualflow.qualtrics import (
    AuthError,
    BadRequest,
    ExportFailed,
    NotYetAvailable,
    QualtricsError,
)
from qualflow.qualtrics._core import ApiCall, decode_response, result_as
from qualflow.qualtrics.models import (
    EventSubscription,
    EventSubscriptionCreate,
    ExportOptions,
    ExportProgress,
    Page,
    SurveySummary,
    WhoAmI,
)
from qualflow.qualtrics.resources import exports, responses, subscriptions, surveys

SHAPES = Path(__file__).resolve().parent.parent / "fixtures" / "qualtrics-shapes"
SURVEY_ID = "SV_3gbwq8aJgqPwQDP"
PROGRESS_ID = "ES_0d2n60qVHB9jSLz"


def load_shape(name: str) -> dict[str, Any]:
    """``{"source", "request", "status", "body"}`` of one shape from the research notes."""
    with (SHAPES / name).open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def as_http_response(shape: dict[str, Any]) -> httpx.Response:
    request = httpx.Request(
        shape["request"]["method"], "https://iad1.qualtrics.com" + shape["request"]["path"]
    )
    return httpx.Response(
        shape["status"],
        content=json.dumps(shape["body"]).encode(),
        headers={"content-type": "application/json"},
        request=request,
    )


def answer(name: str, call: ApiCall[Any]) -> Any:
    """What the client returns for ``call`` when Qualtrics answers with shape ``name``."""
    return call.parse(decode_response(as_http_response(load_shape(name)), call))


def test_every_shape_is_documented_and_requested_as_the_client_would() -> None:
    names = sorted(p.name for p in SHAPES.glob("*.json"))
    readme = (SHAPES / "README.md").read_text(encoding="utf-8")
    assert names
    for name in names:
        shape = load_shape(name)
        assert name in readme
        assert shape["source"].startswith("research notes §")
        assert shape["request"]["path"].startswith("/API/v3/")
        meta = shape["body"]["meta"]
        assert meta["httpStatus"].startswith(f"{shape['status']} - ")
        if "requestId" in meta:  # a UUID4 string (§1.5)
            assert uuid.UUID(meta["requestId"]).version == 4


# -- surveys and whoami -----------------------------------------------------------------------


def test_list_surveys_element_uses_last_modified() -> None:
    shape = load_shape("list_surveys_page.json")
    element = shape["body"]["result"]["elements"][0]
    assert "lastModified" in element
    assert "lastModifiedDate" not in element  # that spelling is the single-survey GET's
    page: Page[SurveySummary] = answer("list_surveys_page.json", surveys._Calls.list(None))
    assert page.next_page is None
    [summary] = page.elements
    assert isinstance(summary, SurveySummary)
    assert summary.id == SURVEY_ID
    assert summary.name == "Beskar Armor"
    assert summary.owner_id == "UR_8wfG5qsMxuh0Jrn"
    assert summary.last_modified == datetime(2024, 6, 10, 23, 20, 9, tzinfo=UTC)
    assert summary.creation_date == datetime(2020, 2, 20, 0, 35, 40, tzinfo=UTC)
    assert summary.is_active is True
    # Each of the six fields lands in a named field: none is left over as an unknown extra.
    assert summary.model_extra == {}
    assert summary.model_dump(mode="json", by_alias=True) == element


def test_whoami() -> None:
    # The call Client.whoami / AsyncClient.whoami execute.
    me = answer("whoami.json", ApiCall("GET", "/whoami", result_as(WhoAmI)))
    assert isinstance(me, WhoAmI)
    assert me.user_id == "UR_8wfG5qsMxuh0Jrn"
    assert me.brand_id == "conjoint"
    assert me.user_name == "jane.doe@conjoint.example"
    assert me.account_type is not None
    assert me.account_type.startswith("UT_")
    assert (me.first_name, me.last_name) == ("Jane", "Doe")
    assert me.email == "jane.doe@conjoint.example"
    assert me.datacenter == "iad1"
    assert me.model_extra == {}


# -- response export progress -------------------------------------------------------------------


def test_export_start() -> None:
    call = exports._Calls.start(SURVEY_ID, ExportOptions(format="csv"))
    started: ExportProgress = answer("export_start.json", call)
    assert started.progress_id == PROGRESS_ID
    assert started.percent_complete == 0.0
    assert started.status == "inProgress"
    assert not started.is_complete
    assert not started.is_failed
    assert started.file_id is None
    assert exports._checked(started, SURVEY_ID) is started


def test_export_progress_complete() -> None:
    call = exports._Calls.status(SURVEY_ID, PROGRESS_ID)
    done: ExportProgress = answer("export_progress_complete.json", call)
    assert done.is_complete
    assert done.percent_complete == 100.0
    assert done.file_id == "1dc4c492-fbb6-4713-a7ba-bae9b988a965-def"
    # The status answer names no progressId: the client fills in the one it asked about.
    assert done.progress_id == PROGRESS_ID
    assert exports._checked(done, SURVEY_ID) is done


def test_export_progress_failed_shape() -> None:
    shape = load_shape("export_progress_failed.json")
    assert type(shape["body"]["result"]["percentComplete"]) is int  # 100, not 100.0
    call = exports._Calls.status(SURVEY_ID, PROGRESS_ID)
    failed: ExportProgress = answer("export_progress_failed.json", call)
    assert failed.status == "failed"
    assert failed.is_failed
    assert not failed.is_complete
    assert failed.file_id is None
    assert failed.percent_complete == 100.0
    assert failed.progress_id == PROGRESS_ID
    # What the polling loop does with it: stop with ExportFailed, not poll on at 100 %.
    with pytest.raises(ExportFailed) as info:
        exports._checked(failed, SURVEY_ID)
    assert info.value.progress_id == PROGRESS_ID
    assert not info.value.retriable


# -- error bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "code", "message", "request_id"),
    [
        pytest.param(
            "error_atp_2_no_auth.json",
            400,
            "ATP_2",
            "Expected authorization in headers, but none provided.",
            "d2b8c0f4-3e1a-4f7b-8c6d-9a0e1f2b3c4d",
            id="ATP_2",
        ),
        pytest.param(
            "error_dcd_7_bad_token.json",
            401,
            "DCD_7",
            "Unrecognized X-API-TOKEN.",
            None,  # the quoted body carries none
            id="DCD_7",
        ),
    ],
)
def test_auth_error_bodies(
    name: str, status: int, code: str, message: str, request_id: str | None
) -> None:
    call = ApiCall("GET", "/whoami", result_as(WhoAmI))
    with pytest.raises(QualtricsError) as info:
        answer(name, call)
    error = info.value
    # ATP_2 comes as a 400 but means "no credentials": an AuthError, not a BadRequest.
    assert type(error) is AuthError
    assert not isinstance(error, BadRequest)
    assert error.status_code == status
    assert error.error_code == code
    assert error.error_message == message
    assert error.request_id == request_id
    assert not error.retriable
    assert code in str(error)
    if request_id is not None:
        assert request_id in str(error)


# -- event subscriptions ------------------------------------------------------------------------


def test_event_subscription_create() -> None:
    body = EventSubscriptionCreate(
        topics="surveyengine.completedResponse.*",
        publication_url="https://kyma-project.io/qualtrics",
        shared_key="s3cret",
    )
    created = answer("eventsubscription_create.json", subscriptions._Calls.create(body))
    assert created == "SUB_8pSh6Kbqjgvwynb"


def test_event_subscription_list() -> None:
    page: Page[EventSubscription] = answer(
        "eventsubscriptions_list.json", subscriptions._Calls.list()
    )
    assert page.next_page is None
    assert [s.id for s in page.elements] == ["SUB_8BXPypz7dWUm8e1", "SUB_8pSh6Kbqjgvwynb"]
    first = page.elements[0]
    assert first.scope == "dummy"
    assert first.topics == "controlpanel.activateSurvey"
    assert first.publication_url == "https://kyma-project.io/qualtrics"
    assert first.encrypted is False
    assert first.successful_calls == 109
    assert page.elements[1].topics == "surveyengine.completedResponse.*"
    assert all(s.model_extra == {} for s in page.elements)


def test_event_subscription_get() -> None:
    shape = load_shape("eventsubscription_get.json")
    sub = answer("eventsubscription_get.json", subscriptions._Calls.get("SUB_8BXPypz7dWUm8e1"))
    assert isinstance(sub, EventSubscription)
    assert sub.id == "SUB_8BXPypz7dWUm8e1"
    assert sub.successful_calls == 109
    assert sub.model_dump(mode="json", by_alias=True) == shape["body"]["result"]


def test_event_subscription_delete_is_meta_only() -> None:
    call = subscriptions._Calls.delete("SUB_8BXPypz7dWUm8e1")
    envelope = decode_response(as_http_response(load_shape("eventsubscription_delete.json")), call)
    assert envelope.result is None
    assert envelope.meta.http_status == "200 - OK"
    assert envelope.request_id == "852606ad-40e5-46be-9f40-659377fab60f"
    assert call.parse(envelope) is None


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(subscriptions._Calls.delete("SUB_8BXPypz7dWUm8e1"), id="eventsubscription"),
        pytest.param(surveys._Calls.delete(SURVEY_ID), id="survey"),
        pytest.param(responses._Calls.delete(SURVEY_ID, "R_1Cx8FIukucgqM94", None), id="response"),
        pytest.param(
            surveys._Calls.update(SURVEY_ID, surveys._update_body("Renamed", None, None)),
            id="survey-update",
        ),
    ],
)
def test_meta_only_envelope_of_write_calls(call: ApiCall[None]) -> None:
    # DELETE /eventsubscriptions/{id} is the recorded one; DELETE /surveys/{id},
    # DELETE /surveys/{id}/responses/{rid} and PUT /surveys/{id} answer the same {meta} (§10).
    assert answer("eventsubscription_delete.json", call) is None


# -- single responses ---------------------------------------------------------------------------


def test_response_not_yet_available() -> None:
    call = responses._Calls.get(SURVEY_ID, "R_1Cx8FIukucgqM94")
    with pytest.raises(NotYetAvailable) as info:
        answer("response_not_yet_available.json", call)
    error = info.value
    assert error.status_code == 202
    assert str(error).startswith(
        "The Survey Response is not yet available. Please try again later."
    )
    assert error.request_id == "b4e6f8a0-2c3d-4e5f-8a9b-1c2d3e4f5a6b"
    assert error.retriable  # Responses.get(wait=…) asks again
