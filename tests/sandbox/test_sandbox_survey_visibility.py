"""A user sees the surveys they own or that were shared with them (research notes §3.1, §7.5),
not every survey of the brand: ``GET /surveys`` lists just those, and every per-survey call on
another user's survey answers 404 as for an unknown survey (the notes give no other status)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from qualflow.sandbox import SandboxState
from tests.sandbox.conftest import BASE
from tests.sandbox.sandbox_support import assert_error

pytestmark = pytest.mark.anyio

_OTHER_TOKEN = "O" * 40
_ALL_RESULTS = {"result": {"viewSurveyResults": True, "downloadSurveyResults": True}}


@pytest.fixture
def other_user_id(state: SandboxState) -> str:
    """A second user of the brand, owning no survey."""
    user, _ = state.create_user("bo@example.com", api_token=_OTHER_TOKEN)
    return user.id


@pytest.fixture
async def other(app: Any, other_user_id: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, headers={"X-API-TOKEN": _OTHER_TOKEN}
    ) as c:
        yield c


async def _listed(client: httpx.AsyncClient) -> list[str]:
    resp = await client.get("/API/v3/surveys")
    assert resp.status_code == 200, resp.text
    return [s["id"] for s in resp.json()["result"]["elements"]]


def _per_survey_calls(survey_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/API/v3/surveys/{survey_id}", None),
        ("PUT", f"/API/v3/surveys/{survey_id}", {"isActive": False}),
        ("GET", f"/API/v3/survey-definitions/{survey_id}", None),
        ("GET", f"/API/v3/survey-definitions/{survey_id}/questions", None),
        ("GET", f"/API/v3/surveys/{survey_id}/filters", None),
        ("POST", f"/API/v3/surveys/{survey_id}/export-responses", {"format": "json"}),
        ("POST", f"/API/v3/surveys/{survey_id}/responses", {"values": {"finished": 1}}),
        ("GET", f"/API/v3/distributions?surveyId={survey_id}", None),
        ("DELETE", f"/API/v3/surveys/{survey_id}", None),
    ]


async def test_a_user_lists_only_their_own_surveys(
    client: httpx.AsyncClient, other: httpx.AsyncClient, csat: str
) -> None:
    assert csat in await _listed(client)
    assert await _listed(other) == []


async def test_another_users_survey_answers_404_as_an_unknown_one(
    client: httpx.AsyncClient, other: httpx.AsyncClient, csat: str
) -> None:
    for method, url, body in _per_survey_calls(csat):
        resp = await other.request(method, url, json=body)
        message = assert_error(resp, 404)
        assert csat in message, (method, url)
    # The owner's survey is untouched by the refused calls.
    resp = await client.get(f"/API/v3/surveys/{csat}")
    assert resp.status_code == 200
    assert resp.json()["result"]["isActive"] is True


async def test_another_users_response_and_copy_are_refused(
    state: SandboxState, other: httpx.AsyncClient, csat: str
) -> None:
    response_id = state.record_response(csat, {"finished": 1}).id
    resp = await other.put(
        f"/API/v3/responses/{response_id}",
        json={"surveyId": csat, "embeddedData": {"team": "x"}},
    )
    assert csat in assert_error(resp, 404)
    resp = await other.post("/API/v3/surveys", headers={"X-COPY-SOURCE": csat}, json={})
    assert csat in assert_error(resp, 404)


async def test_a_shared_survey_is_listed_and_readable_by_the_collaborator(
    client: httpx.AsyncClient, other: httpx.AsyncClient, other_user_id: str, csat: str
) -> None:
    shared = await client.post(
        f"/API/v3/surveys/{csat}/permissions/collaborations",
        json={"userId": other_user_id, "permissions": _ALL_RESULTS},
    )
    assert shared.status_code == 200, shared.text
    assert await _listed(other) == [csat]
    assert (await other.get(f"/API/v3/surveys/{csat}")).status_code == 200
    started = await other.post(f"/API/v3/surveys/{csat}/export-responses", json={"format": "json"})
    assert started.status_code == 200, started.text


async def test_a_survey_shared_with_a_group_is_seen_by_its_members(
    client: httpx.AsyncClient, other: httpx.AsyncClient, other_user_id: str, csat: str
) -> None:
    created = await client.post("/API/v3/groups", json={"type": "GT_abc", "name": "Team"})
    group_id = created.json()["result"]["id"]
    shared = await client.post(
        f"/API/v3/surveys/{csat}/permissions/collaborations",
        json={"recipientId": group_id, "permissions": _ALL_RESULTS},
    )
    assert shared.status_code == 200, shared.text
    assert await _listed(other) == []
    added = await client.post(f"/API/v3/groups/{group_id}/members", json={"userId": other_user_id})
    assert added.status_code == 200, added.text
    assert await _listed(other) == [csat]
    assert (await other.get(f"/API/v3/survey-definitions/{csat}")).status_code == 200


async def test_a_survey_the_other_user_creates_is_theirs_alone(
    client: httpx.AsyncClient, other: httpx.AsyncClient, csat: str
) -> None:
    created = await other.post(
        "/API/v3/survey-definitions", json={"SurveyName": "Bo's", "ProjectCategory": "CORE"}
    )
    assert created.status_code == 200, created.text
    own = created.json()["result"]["SurveyID"]
    assert await _listed(other) == [own]
    assert own not in await _listed(client)
    assert_error(await client.get(f"/API/v3/surveys/{own}"), 404)
