"""The README's in-process sandbox example, run as written: its user reaches the seeded survey
with the token and with OAuth, and (as the README says) another user of the sandbox neither
lists nor reads it until it is shared."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qualflow.qualtrics.transports import SyncASGITransport

README = Path(__file__).resolve().parents[1] / "README.md"
BASE = "http://sandbox.test"


def _in_process_example() -> str:
    section = README.read_text(encoding="utf-8").split("## The sandbox", 1)[1]
    section = section.split("In tests, run it in-process", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the sandbox section has no in-process Python example"
    return match.group(1)


async def _accept(request: Request) -> Response:
    return Response(status_code=200)


def _run_example() -> dict[str, Any]:
    receiver = Starlette(routes=[Route("/{path:path}", _accept, methods=["POST"])])
    namespace: dict[str, Any] = {"my_receiver": receiver}
    exec(compile(_in_process_example(), "README.md", "exec"), namespace)
    return namespace


def _survey_ids(client: httpx.Client) -> list[str]:
    resp = client.get("/API/v3/surveys")
    assert resp.status_code == 200, resp.text
    return [s["id"] for s in resp.json()["result"]["elements"]]


def test_the_examples_user_reaches_its_survey_with_the_token_and_with_oauth() -> None:
    example = _run_example()
    survey_id = example["survey"].id
    transport = SyncASGITransport(example["app"])
    with httpx.Client(
        transport=transport, base_url=BASE, headers={"X-API-TOKEN": example["token"]}
    ) as client:
        assert _survey_ids(client) == [survey_id]
        resp = client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(example["client_id"], example["secret"]),
        )
        assert resp.status_code == 200, resp.text
        bearer = {"Authorization": f"Bearer {resp.json()['access_token']}"}
        with httpx.Client(transport=transport, base_url=BASE, headers=bearer) as with_oauth:
            resp = with_oauth.get(f"/API/v3/surveys/{survey_id}")
        assert resp.status_code == 200, resp.text
        assert resp.json()["result"]["ownerId"] == example["user"].id
    transport.close()


def test_another_user_sees_the_examples_survey_only_once_it_is_shared() -> None:
    example = _run_example()
    state, survey_id = example["state"], example["survey"].id
    other, other_token = state.create_user("other@example.com")
    transport = SyncASGITransport(example["app"])
    with (
        httpx.Client(
            transport=transport, base_url=BASE, headers={"X-API-TOKEN": other_token}
        ) as as_other,
        httpx.Client(
            transport=transport, base_url=BASE, headers={"X-API-TOKEN": example["token"]}
        ) as as_owner,
    ):
        assert _survey_ids(as_other) == []
        assert as_other.get(f"/API/v3/surveys/{survey_id}").status_code == 404
        resp = as_owner.post(
            f"/API/v3/surveys/{survey_id}/permissions/collaborations",
            json={
                "recipientId": other.id,
                "permissions": {"surveyDefinitionManipulation": {"copySurveyQuestions": True}},
            },
        )
        assert resp.status_code == 200, resp.text
        assert _survey_ids(as_other) == [survey_id]
        assert as_other.get(f"/API/v3/surveys/{survey_id}").status_code == 200
    transport.close()
