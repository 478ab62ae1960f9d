"""NaN and Infinity are not JSON: Qualtrics refuses such bodies with a 400 (RFC 8259 §6)."""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox.sandbox_support import assert_error

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_response_values_with_a_non_json_number_are_a_400_naming_it(
    client: httpx.AsyncClient, csat: str, constant: str
) -> None:
    body = '{"values": {"QID1": 4, "finished": 1, "customer_id": ' + constant + "}}"
    resp = await client.post(f"/API/v3/surveys/{csat}/responses", content=body, headers=JSON)
    message = assert_error(resp, 400)
    assert constant.lstrip("-") in message
    # Nothing was recorded, so the survey's responses stay readable.
    listed = await client.get(f"/API/v3/surveys/{csat}")
    assert listed.json()["result"]["responseCounts"]["auditable"] == 0


async def test_contact_embedded_data_with_nan_is_refused(client: httpx.AsyncClient) -> None:
    directories = (await client.get("/API/v3/directories")).json()["result"]["elements"]
    directory = directories[0]["directoryId"]
    body = '{"email": "a@example.com", "embeddedData": {"score": NaN}}'
    resp = await client.post(
        f"/API/v3/directories/{directory}/contacts", content=body, headers=JSON
    )
    assert_error(resp, 400)
    listed = await client.get(f"/API/v3/directories/{directory}/contacts")
    assert listed.status_code == 200
    assert listed.json()["result"]["elements"] == []


async def test_json_event_with_infinity_is_refused(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/inbound-event/v1/events/json/triggers?urlTokenId=abc",
        content='{"amount": Infinity}',
        headers=JSON,
    )
    assert_error(resp, 400)


async def test_qsf_import_with_nan_is_refused(client: httpx.AsyncClient) -> None:
    qsf = '{"SurveyEntry": {"SurveyName": "N"}, "SurveyElements": [], "Score": NaN}'
    resp = await client.post(
        "/API/v3/surveys",
        data={"name": "N"},
        files={"file": ("n.qsf", qsf, "application/vnd.qualtrics.survey.qsf")},
    )
    assert_error(resp, 400)
