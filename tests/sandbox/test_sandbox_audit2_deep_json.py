"""A request body nested too deeply to parse is a 400 saying so, not a 500 (RecursionError)."""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox.sandbox_support import assert_error

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}
# Far beyond Python's recursion limit, yet within the 100 KB limit of a JSON event.
DEPTH = 50_000


def _deep(key: str) -> str:
    return '{"' + key + '":' + "[" * DEPTH + "]" * DEPTH + "}"


async def test_deeply_nested_api_body_is_a_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/API/v3/eventsubscriptions", content=_deep("topics"), headers=JSON)
    assert "nested too deeply" in assert_error(resp, 400)


async def test_deeply_nested_json_event_is_a_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/inbound-event/v1/events/json/triggers?urlTokenId=abc",
        content=_deep("payload"),
        headers=JSON,
    )
    assert "nested too deeply" in assert_error(resp, 400)


async def test_deeply_nested_qsf_is_a_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/API/v3/surveys",
        data={"name": "Deep"},
        files={"file": ("d.qsf", _deep("SurveyElements"), "application/vnd.qualtrics.survey.qsf")},
    )
    assert "nested too deeply" in assert_error(resp, 400)
