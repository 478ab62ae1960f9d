"""Error paths of every resource: the client (sync and async) against the sandbox's answers.

Each case runs with both clients (the ``api`` fixture) and checks, against the bytes the sandbox
really sent (recorded by a pass-through transport), what the research notes say Qualtrics
answers (§2.2, §10): the error envelope ``{"meta": {"httpStatus": "<code> - <reason>",
"requestId": <uuid4>, "error": {"errorCode", "errorMessage"}}}`` and no ``result``; and what the
client makes of it: the error class, the HTTP status, ``errorCode``/``errorMessage`` and the
``requestId`` carried over unchanged, nothing retried, and nothing changed in the account.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest

from qualflow.qualtrics import (
    APIError,
    AsyncClient,
    BadRequest,
    Client,
    NotFound,
    PayloadTooLarge,
)
from tests.contract.contract_support import Api, Sandbox

UNKNOWN_SURVEY = "SV_0000000000000zz"
UNKNOWN_RESPONSE = "R_000000000000zz"
UNKNOWN_SUBSCRIPTION = "SUB_00000000000zz"
SMALL_BODY_LIMIT = 4096

AnyClient = Client | AsyncClient


@dataclass(frozen=True)
class Exchange:
    request: httpx.Request
    status: int
    headers: httpx.Headers
    raw: bytes

    def json(self) -> Any:
        decoded = httpx.Response(self.status, headers=self.headers, content=self.raw)
        return json.loads(decoded.read())


class RecordingTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Passes every request to the real sandbox and keeps a copy of each answer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.exchanges: list[Exchange] = []

    def _keep(self, request: httpx.Request, response: httpx.Response, raw: bytes) -> httpx.Response:
        self.exchanges.append(Exchange(request, response.status_code, response.headers, raw))
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=raw,
            request=request,
            extensions=response.extensions,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = cast(httpx.Response, self.inner.handle_request(request))
        stream = cast(httpx.SyncByteStream, response.stream)
        try:
            raw = b"".join(stream)
        finally:
            stream.close()
        return self._keep(request, response, raw)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = cast(httpx.Response, await self.inner.handle_async_request(request))
        stream = cast(httpx.AsyncByteStream, response.stream)
        try:
            raw = b"".join([chunk async for chunk in stream])
        finally:
            await stream.aclose()
        return self._keep(request, response, raw)

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class World:
    """What a case may refer to: a seeded survey with one recorded response."""

    survey_id: str
    response_id: str
    user_id: str


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[AnyClient, World], Any]
    error: type[APIError]
    status: int
    #: Text the errorMessage must contain (case-insensitive).
    mentions: str
    setup: Callable[[Sandbox], None] | None = None
    marks: tuple[Any, ...] = ()


def _small_body_limit(sandbox: Sandbox) -> None:
    sandbox.state.config.max_body_bytes = SMALL_BODY_LIMIT


def _qsf(name: str, elements: list[Any], **entry: Any) -> dict[str, Any]:
    return {"SurveyEntry": {"SurveyName": name, **entry}, "SurveyElements": elements}


_BIG_QSF = _qsf("Too big", [], SurveyDescription="x" * (2 * SMALL_BODY_LIMIT))


CASES = [
    # -- /surveys ----------------------------------------------------------------------------
    Case(
        "update-unknown-survey",
        lambda c, w: c.surveys.update(UNKNOWN_SURVEY, name="Renamed"),
        NotFound,
        404,
        UNKNOWN_SURVEY,
    ),
    Case(
        "deactivate-unknown-survey",
        lambda c, w: c.surveys.deactivate(UNKNOWN_SURVEY),
        NotFound,
        404,
        UNKNOWN_SURVEY,
    ),
    Case(
        "delete-unknown-survey",
        lambda c, w: c.surveys.delete(UNKNOWN_SURVEY),
        NotFound,
        404,
        UNKNOWN_SURVEY,
    ),
    Case(
        "copy-unknown-survey",
        lambda c, w: c.surveys.copy(UNKNOWN_SURVEY, name="Copy", owner_id=w.user_id),
        NotFound,
        404,
        UNKNOWN_SURVEY,
    ),
    Case(
        "import-qsf-not-json",
        lambda c, w: c.surveys.import_qsf("Broken", b"this is not a QSF file"),
        BadRequest,
        400,
        "QSF",
    ),
    Case(
        "import-qsf-without-survey-elements",
        lambda c, w: c.surveys.import_qsf("Broken", {"SurveyEntry": {"SurveyName": "Broken"}}),
        BadRequest,
        400,
        "SurveyElements",
    ),
    Case(
        "import-qsf-element-not-an-object",
        lambda c, w: c.surveys.import_qsf("Broken", _qsf("Broken", ["SQ"])),
        BadRequest,
        400,
        "SurveyElements",
    ),
    Case(
        "import-qsf-question-without-type",
        lambda c, w: c.surveys.import_qsf(
            "Broken", _qsf("Broken", [{"Element": "SQ", "Payload": {"QuestionID": "QID1"}}])
        ),
        BadRequest,
        400,
        "QuestionType",
    ),
    Case(
        "import-qsf-question-payload-not-an-object",
        lambda c, w: c.surveys.import_qsf(
            "Broken",
            _qsf("Broken", [{"Element": "SQ", "PrimaryAttribute": "QID1", "Payload": "QID1"}]),
        ),
        BadRequest,
        400,
        "QSF",
    ),
    Case(
        "import-qsf-survey-entry-not-an-object",
        lambda c, w: c.surveys.import_qsf(
            "Broken", {"SurveyEntry": "Broken", "SurveyElements": []}
        ),
        BadRequest,
        400,
        "SurveyEntry",
    ),
    Case(
        "import-qsf-flow-not-a-list",
        lambda c, w: c.surveys.import_qsf(
            "Broken", _qsf("Broken", [{"Element": "FL", "Payload": {"Flow": "Standard"}}])
        ),
        BadRequest,
        400,
        "Flow",
    ),
    Case(
        "import-qsf-body-too-large",
        lambda c, w: c.surveys.import_qsf("Too big", _BIG_QSF),
        PayloadTooLarge,
        413,
        "too large",
        setup=_small_body_limit,
    ),
    # -- /survey-definitions -------------------------------------------------------------------
    Case(
        "definition-of-unknown-survey",
        lambda c, w: c.survey_definitions.get(UNKNOWN_SURVEY),
        NotFound,
        404,
        UNKNOWN_SURVEY,
    ),
    Case(
        "metadata-of-unknown-survey",
        lambda c, w: c.survey_definitions.metadata(UNKNOWN_SURVEY),
        NotFound,
        404,
        UNKNOWN_SURVEY,
    ),
    Case(
        "update-metadata-of-unknown-survey",
        lambda c, w: c.survey_definitions.update_metadata(UNKNOWN_SURVEY, name="Renamed"),
        NotFound,
        404,
        UNKNOWN_SURVEY,
    ),
    Case(
        "question-of-unknown-survey",
        lambda c, w: c.survey_definitions.get_question(UNKNOWN_SURVEY, "QID1"),
        NotFound,
        404,
        UNKNOWN_SURVEY,
    ),
    Case(
        "unknown-question",
        lambda c, w: c.survey_definitions.get_question(w.survey_id, "QID999"),
        NotFound,
        404,
        "QID999",
    ),
    # -- single responses ----------------------------------------------------------------------
    Case(
        "embedded-data-with-a-question-id",
        lambda c, w: c.responses.update_embedded_data(w.survey_id, w.response_id, {"QID1": 5}),
        BadRequest,
        400,
        "QID1",
    ),
    Case(
        "embedded-data-with-a-text-entry-column",
        lambda c, w: c.responses.update_embedded_data(
            w.survey_id, w.response_id, {"QID5_TEXT": "changed"}
        ),
        BadRequest,
        400,
        "QID5_TEXT",
    ),
    Case(
        "embedded-data-with-metadata-finished",
        lambda c, w: c.responses.update_embedded_data(w.survey_id, w.response_id, {"finished": 0}),
        BadRequest,
        400,
        "finished",
    ),
    Case(
        "embedded-data-with-metadata-recorded-date",
        lambda c, w: c.responses.update_embedded_data(
            w.survey_id, w.response_id, {"customer_id": "C-2", "recordedDate": "2020-01-01"}
        ),
        BadRequest,
        400,
        "recordedDate",
    ),
    Case(
        "embedded-data-of-unknown-response",
        lambda c, w: c.responses.update_embedded_data(
            w.survey_id, UNKNOWN_RESPONSE, {"customer_id": "C-2"}
        ),
        NotFound,
        404,
        UNKNOWN_RESPONSE,
    ),
    Case(
        "embedded-data-of-response-in-unknown-survey",
        lambda c, w: c.responses.update_embedded_data(
            UNKNOWN_SURVEY, w.response_id, {"customer_id": "C-2"}
        ),
        NotFound,
        404,
        UNKNOWN_SURVEY,
    ),
    Case(
        "delete-unknown-response",
        lambda c, w: c.responses.delete(w.survey_id, UNKNOWN_RESPONSE),
        NotFound,
        404,
        UNKNOWN_RESPONSE,
    ),
    Case(
        "delete-response-of-unknown-survey",
        lambda c, w: c.responses.delete(UNKNOWN_SURVEY, w.response_id),
        NotFound,
        404,
        UNKNOWN_SURVEY,
    ),
    Case(
        "create-response-body-too-large",
        lambda c, w: c.responses.create(
            w.survey_id, {"QID1": 4, "finished": 1, "QID5_TEXT": "y" * (2 * SMALL_BODY_LIMIT)}
        ),
        PayloadTooLarge,
        413,
        "too large",
        setup=_small_body_limit,
    ),
    # -- event subscriptions -------------------------------------------------------------------
    Case(
        "delete-unknown-event-subscription",
        lambda c, w: c.event_subscriptions.delete(UNKNOWN_SUBSCRIPTION),
        NotFound,
        404,
        UNKNOWN_SUBSCRIPTION,
    ),
]

#: ``meta.httpStatus`` as Qualtrics spells it (§2.1; the 413 wording is not in the notes).
HTTP_STATUS_TEXT = {400: "400 - Bad Request", 404: "404 - Not Found"}


@pytest.fixture
def world(sandbox: Sandbox, survey_id: str) -> World:
    response = sandbox.state.record_response(
        survey_id,
        {"QID1": 4, "QID2": 9, "QID5_TEXT": "Faster delivery", "finished": 1, "customer_id": "C-1"},
        emit=False,
    )
    return World(survey_id=survey_id, response_id=response.id, user_id=sandbox.user_id)


def _account(sandbox: Sandbox) -> Any:
    """Everything an error must leave untouched."""
    state = sandbox.state
    with state.lock:
        return (
            {sid: (s.name, s.is_active, s.description) for sid, s in state.surveys.items()},
            {
                sid: {rid: dict(r.values) for rid, r in by_id.items()}
                for sid, by_id in state.responses.items()
            },
            sorted(state.subscriptions),
        )


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_error_path(api: Api, sandbox: Sandbox, world: World, case: Case) -> None:
    inner: Any = httpx.ASGITransport(app=sandbox.app) if api.is_async else httpx.HTTPTransport()
    recorder = RecordingTransport(inner)
    client = api.make(transport=recorder)
    if case.setup is not None:
        case.setup(sandbox)
    before = _account(sandbox)

    with pytest.raises(APIError) as info:
        api(case.call(client, world))
    error = info.value

    # One request, one answer: a 4xx is final, never retried.
    [exchange] = recorder.exchanges
    assert api.sleeps == []
    assert exchange.status == case.status

    # What the sandbox sent is the Qualtrics error envelope (research §2.2 / §10).
    body = exchange.json()
    assert set(body) == {"meta"}
    meta = body["meta"]
    assert meta["httpStatus"] == HTTP_STATUS_TEXT.get(case.status, meta["httpStatus"])
    assert meta["httpStatus"].startswith(f"{case.status} - ")
    assert uuid.UUID(meta["requestId"]).version == 4
    assert meta["error"]["errorCode"]
    assert meta["error"]["errorMessage"]

    # What the client made of it.
    assert type(error) is case.error
    assert error.status_code == case.status
    assert error.error_code == meta["error"]["errorCode"]
    assert error.error_message == meta["error"]["errorMessage"]
    assert error.request_id == meta["requestId"]
    assert meta["requestId"] in str(error)
    assert case.mentions.lower() in (error.error_message or "").lower()
    assert not error.retriable

    assert _account(sandbox) == before


def test_refused_embedded_data_update_keeps_the_answers(
    api: Api, sandbox: Sandbox, world: World
) -> None:
    """A 400 for one bad key is all-or-nothing: the good key in the same body is not applied."""
    with pytest.raises(BadRequest):
        api(
            api.client.responses.update_embedded_data(
                world.survey_id, world.response_id, {"customer_id": "C-2", "QID1": 1}
            )
        )
    response = api(api.client.responses.get(world.survey_id, world.response_id))
    assert response.values["customer_id"] == "C-1"
    assert response.values["QID1"] == 4


def test_body_under_the_limit_is_accepted(api: Api, sandbox: Sandbox, world: World) -> None:
    """The 413 cases fail for their size only: the same kind of body, smaller, goes through."""
    _small_body_limit(sandbox)
    new_id = api(api.client.surveys.import_qsf("Small enough", _qsf("Small enough", [])))
    assert new_id.startswith("SV_")
    assert api(api.client.surveys.get(new_id)).name == "Small enough"
