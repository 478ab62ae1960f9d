"""Envelope, auth, whoami, surveys, survey-definitions and single responses."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx
import pytest

from qualflow.sandbox import SandboxState
from qualflow.sandbox.seed import employee_pulse, seed_generated
from tests.sandbox.sandbox_support import assert_error, assert_ok_envelope

pytestmark = pytest.mark.anyio

SV_RE = re.compile(r"^SV_[A-Za-z0-9]{15}$")
R_RE = re.compile(r"^R_[A-Za-z0-9]{15}$")


# -- auth & envelope ----------------------------------------------------------------------


async def test_no_auth_is_400_atp_2(anon: httpx.AsyncClient) -> None:
    msg = assert_error(await anon.get("/API/v3/whoami"), 400, "ATP_2")
    assert "authorization" in msg.lower()


async def test_bad_token_is_401_dcd_7(anon: httpx.AsyncClient) -> None:
    resp = await anon.get("/API/v3/surveys", headers={"X-API-TOKEN": "x" * 40})
    assert assert_error(resp, 401, "DCD_7") == "Unrecognized X-API-TOKEN."
    assert resp.json()["meta"]["httpStatus"] == "401 - Unauthorized"


async def test_whoami(client: httpx.AsyncClient, state: SandboxState) -> None:
    resp = await client.get("/API/v3/whoami")
    body = resp.json()
    assert_ok_envelope(body)
    result = body["result"]
    assert set(result) == {
        "brandId", "userId", "userName", "accountType", "firstName", "lastName", "email",
        "datacenter",
    }  # fmt: skip
    assert result["userName"] == "ana@example.com"
    assert result["brandId"] == state.config.brand_id
    assert result["userId"].startswith("UR_")


async def test_unknown_path_is_404_envelope(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/API/v3/no-such-thing"), 404)


async def test_wrong_method_is_405_envelope(client: httpx.AsyncClient, csat: str) -> None:
    assert "PATCH" in assert_error(await client.patch(f"/API/v3/surveys/{csat}", json={}), 405)


async def test_trailing_slash_is_accepted(client: httpx.AsyncClient, csat: str) -> None:
    resp = await client.get(f"/API/v3/surveys/{csat}/")
    assert resp.status_code == 200
    assert resp.json()["result"]["id"] == csat


async def test_oauth_client_credentials(anon: httpx.AsyncClient, state: SandboxState) -> None:
    client_id, secret = state.add_oauth_client(scopes=["read:surveys", "manage:all"])
    resp = await anon.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "read:surveys"},
        auth=(client_id, secret),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "read:surveys"
    assert "meta" not in body
    who = await anon.get(
        "/API/v3/whoami", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert who.status_code == 200
    assert who.json()["result"]["userName"] == "ana@example.com"


async def test_oauth_errors(anon: httpx.AsyncClient, state: SandboxState) -> None:
    client_id, secret = state.add_oauth_client()
    bad = await anon.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, "nope")
    )
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    grant = await anon.post(
        "/oauth2/token", data={"grant_type": "password"}, auth=(client_id, secret)
    )
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"
    bearer = await anon.get("/API/v3/whoami", headers={"Authorization": "Bearer not-a-token"})
    assert_error(bearer, 401)


# -- surveys ------------------------------------------------------------------------------


async def test_list_surveys_pages_by_100_with_absolute_next_page(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    seed_generated(state, 230, seed=1)
    seen: list[str] = []
    url: str | None = "/API/v3/surveys"
    pages = 0
    while url:
        body = (await client.get(url)).json()
        assert_ok_envelope(body)
        elements = body["result"]["elements"]
        assert len(elements) <= 100
        seen += [e["id"] for e in elements]
        url = body["result"]["nextPage"]
        if url:
            assert url.startswith("http://sandbox.test/API/v3/surveys?offset=")
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 230
    element = (await client.get("/API/v3/surveys")).json()["result"]["elements"][0]
    assert set(element) == {"id", "name", "ownerId", "lastModified", "creationDate", "isActive"}
    assert SV_RE.match(element["id"])


async def test_bad_offset_is_400(client: httpx.AsyncClient) -> None:
    assert "offset" in assert_error(await client.get("/API/v3/surveys?offset=-3"), 400)


async def test_get_survey_legacy_shape(client: httpx.AsyncClient, csat: str) -> None:
    body = (await client.get(f"/API/v3/surveys/{csat}")).json()
    assert_ok_envelope(body)
    s = body["result"]
    for key in (
        "id", "name", "ownerId", "organizationId", "isActive", "creationDate", "lastModifiedDate",
        "expiration", "questions", "exportColumnMap", "blocks", "flow", "embeddedData", "comments",
        "loopAndMerge", "responseCounts",
    ):  # fmt: skip
        assert key in s
    assert s["expiration"] == {"startDate": None, "endDate": None}
    assert s["responseCounts"] == {"auditable": 0, "generated": 0, "deleted": 0}
    q1 = s["questions"]["QID1"]
    assert q1["questionType"] == {"type": "MC", "selector": "SAVR", "subSelector": "TX"}
    assert q1["choices"]["5"]["recode"] == "5"
    nps = s["questions"]["QID2"]
    assert nps["questionType"]["selector"] == "NPS"
    matrix = s["questions"]["QID3"]
    assert set(matrix["subQuestions"]) == {"1", "2", "3", "4"}
    assert s["exportColumnMap"]["Q3_2"] == {
        "question": "QID3",
        "subQuestion": "QID3.subQuestions.2",
    }
    assert s["exportColumnMap"]["Q1"] == {"question": "QID1"}
    block = next(iter(s["blocks"].values()))
    assert block["elements"][0] == {"type": "Question", "questionId": "QID1"}
    assert any(f["type"] == "Block" for f in s["flow"])
    assert {"name": "channel", "defaultValue": "web"} in s["embeddedData"]


async def test_get_unknown_survey_is_404(client: httpx.AsyncClient) -> None:
    assert "SV_000000000000000" in assert_error(
        await client.get("/API/v3/surveys/SV_000000000000000"), 404
    )


async def test_update_survey(client: httpx.AsyncClient, csat: str) -> None:
    resp = await client.put(
        f"/API/v3/surveys/{csat}",
        json={
            "name": "Renamed",
            "isActive": False,
            "expiration": {"startDate": "2030-01-01T00:00:00Z", "endDate": None},
        },
    )
    assert resp.status_code == 200
    assert "result" not in resp.json()
    s = (await client.get(f"/API/v3/surveys/{csat}")).json()["result"]
    assert s["name"] == "Renamed"
    assert s["isActive"] is False
    assert s["expiration"] == {"startDate": "2030-01-01T00:00:00Z", "endDate": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"isActive": "yes"}, "isActive"),
        ({"name": ""}, "name"),
        ({"expiration": {"startDate": "soon"}}, "expiration.startDate"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_update_survey_bad_body_names_field(
    client: httpx.AsyncClient, csat: str, body: dict[str, Any], field: str
) -> None:
    assert field in assert_error(await client.put(f"/API/v3/surveys/{csat}", json=body), 400)


async def test_invalid_json_is_400(client: httpx.AsyncClient, csat: str) -> None:
    resp = await client.put(
        f"/API/v3/surveys/{csat}",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert "JSON" in assert_error(resp, 400)


async def test_import_qsf_roundtrip_and_copy(client: httpx.AsyncClient, csat: str) -> None:
    qsf = (await client.get(f"/API/v3/survey-definitions/{csat}?format=qsf")).json()["result"]
    assert {"SurveyEntry", "SurveyElements"} <= set(qsf)
    files = {"file": ("s.qsf", json.dumps(qsf).encode(), "application/vnd.qualtrics.survey.qsf")}
    resp = await client.post("/API/v3/surveys", data={"name": "Imported"}, files=files)
    assert resp.status_code == 200, resp.text
    new_id = resp.json()["result"]["id"]
    assert SV_RE.match(new_id)
    assert new_id != csat
    original = (await client.get(f"/API/v3/surveys/{csat}")).json()["result"]
    imported = (await client.get(f"/API/v3/surveys/{new_id}")).json()["result"]
    assert imported["name"] == "Imported"
    assert imported["questions"] == original["questions"]
    assert imported["exportColumnMap"] == original["exportColumnMap"]

    copy = await client.post(
        "/API/v3/surveys", headers={"X-COPY-SOURCE": csat}, json={"projectName": "Copy of CSAT"}
    )
    copy_id = copy.json()["result"]["id"]
    copied = (await client.get(f"/API/v3/surveys/{copy_id}")).json()["result"]
    assert copied["name"] == "Copy of CSAT"
    assert copied["questions"] == original["questions"]


async def test_import_bad_qsf_is_400(client: httpx.AsyncClient) -> None:
    files = {"file": ("s.qsf", b"nope", "application/vnd.qualtrics.survey.qsf")}
    assert "QSF" in assert_error(await client.post("/API/v3/surveys", files=files), 400)
    copy = await client.post("/API/v3/surveys", headers={"X-COPY-SOURCE": "SV_missing0000000"})
    assert_error(copy, 404)


async def test_delete_survey(client: httpx.AsyncClient, csat: str) -> None:
    resp = await client.delete(f"/API/v3/surveys/{csat}")
    assert resp.status_code == 200
    assert set(resp.json()) == {"meta"}
    assert_error(await client.get(f"/API/v3/surveys/{csat}"), 404)


# -- survey definitions ---------------------------------------------------------------------


async def test_definition_shape(client: httpx.AsyncClient, csat: str) -> None:
    body = (await client.get(f"/API/v3/survey-definitions/{csat}")).json()
    assert_ok_envelope(body)
    d = body["result"]
    assert set(d) >= {
        "QuestionCount", "SurveyOptions", "SurveyID", "SurveyName", "SurveyStatus", "LastModified",
        "BrandID", "OwnerID", "LastAccessed", "CreatorID", "LastActivated", "Questions", "Blocks",
        "ResponseSets", "SurveyFlow", "Scoring", "ProjectInfo", "BrandBaseURL",
    }  # fmt: skip
    assert d["SurveyStatus"] == "Active"
    assert d["QuestionCount"] == str(len(d["Questions"]))
    q = d["Questions"]["QID1"]
    assert q["QuestionType"] == "MC"
    assert q["Selector"] == "SAVR"
    assert q["DataExportTag"] == "Q1"
    assert q["Validation"]["Settings"]["ForceResponse"] == "ON"
    assert d["SurveyFlow"]["Type"] == "Root"
    assert d["ProjectInfo"]["ProjectCategory"] == "CX"


async def test_definition_create_questions_crud(client: httpx.AsyncClient) -> None:
    created = (
        await client.post(
            "/API/v3/survey-definitions",
            json={"SurveyName": "Blank", "Language": "EN", "ProjectCategory": "CORE"},
        )
    ).json()["result"]
    sid, block = created["SurveyID"], created["DefaultBlockID"]
    assert SV_RE.match(sid)
    assert block.startswith("BL_")
    question = {
        "QuestionText": "Pick one",
        "QuestionType": "MC",
        "Selector": "SAVR",
        "SubSelector": "TX",
        "Choices": {"1": {"Display": "Yes"}, "2": {"Display": "No"}},
        "ChoiceOrder": ["1", "2"],
    }
    qid = (
        await client.post(
            f"/API/v3/survey-definitions/{sid}/questions?blockId={block}", json=question
        )
    ).json()["result"]["QuestionID"]
    assert qid == "QID1"
    got = (await client.get(f"/API/v3/survey-definitions/{sid}/questions/{qid}")).json()["result"]
    assert got["Choices"]["2"] == {"Display": "No"}
    question["QuestionText"] = "Pick one, please"
    put = await client.put(f"/API/v3/survey-definitions/{sid}/questions/{qid}", json=question)
    assert put.status_code == 200
    assert set(put.json()) == {"meta"}
    listed = (await client.get(f"/API/v3/survey-definitions/{sid}/questions")).json()["result"]
    assert [q["QuestionText"] for q in listed["elements"]] == ["Pick one, please"]
    legacy = (await client.get(f"/API/v3/surveys/{sid}")).json()["result"]
    assert legacy["questions"]["QID1"]["questionText"] == "Pick one, please"
    assert (
        await client.delete(f"/API/v3/survey-definitions/{sid}/questions/{qid}")
    ).status_code == 200
    assert_error(await client.get(f"/API/v3/survey-definitions/{sid}/questions/{qid}"), 404)
    deleted = (await client.delete(f"/API/v3/survey-definitions/{sid}")).json()["result"]
    assert "DeletedDate" in deleted


@pytest.mark.parametrize(
    ("question", "needle"),
    [
        ({"QuestionType": "MC", "Selector": "SAVR"}, "Choices"),
        ({"QuestionType": "HeatMap", "Selector": "X"}, "HeatMap"),
        ({"Selector": "SAVR"}, "QuestionType"),
        (
            {"QuestionType": "Matrix", "Selector": "Likert", "Choices": {"1": {"Display": "a"}}},
            "Answers",
        ),
    ],
)
async def test_bad_question_definition_is_400(
    client: httpx.AsyncClient, csat: str, question: dict[str, Any], needle: str
) -> None:
    resp = await client.post(f"/API/v3/survey-definitions/{csat}/questions", json=question)
    assert needle in assert_error(resp, 400)


async def test_metadata_get_put(client: httpx.AsyncClient, csat: str) -> None:
    meta = (await client.get(f"/API/v3/survey-definitions/{csat}/metadata")).json()["result"]
    assert meta["SurveyID"] == csat
    assert meta["SurveyStatus"] == "Active"
    resp = await client.put(
        f"/API/v3/survey-definitions/{csat}/metadata",
        json={"SurveyStatus": "Inactive", "SurveyExpirationDate": "2031-05-01 12:00:00"},
    )
    assert resp.status_code == 200
    meta = (await client.get(f"/API/v3/survey-definitions/{csat}/metadata")).json()["result"]
    assert meta["SurveyStatus"] == "Inactive"
    assert meta["SurveyExpirationDate"] == "2031-05-01 12:00:00"
    bad = await client.put(
        f"/API/v3/survey-definitions/{csat}/metadata", json={"SurveyStartDate": "tomorrow"}
    )
    assert "SurveyStartDate" in assert_error(bad, 400)


# -- single responses ------------------------------------------------------------------


async def test_create_get_update_delete_response(client: httpx.AsyncClient, csat: str) -> None:
    values = {"QID1": 4, "QID2": 9, "QID3_1": 5, "QID4": ["1", "5"], "QID4_5_TEXT": "Gift card",
              "QID5_TEXT": "Great", "customer_id": "C-1"}  # fmt: skip
    resp = await client.post(f"/API/v3/surveys/{csat}/responses", json={"values": values})
    assert resp.status_code == 200, resp.text
    rid = resp.json()["result"]["responseId"]
    assert R_RE.match(rid)
    got = (await client.get(f"/API/v3/surveys/{csat}/responses/{rid}")).json()["result"]
    assert got["responseId"] == rid
    v = got["values"]
    assert v["QID1"] == 4
    assert v["QID2"] == 9
    assert v["QID2_NPS_GROUP"] == 3
    assert v["QID4"] == ["1", "5"]
    assert v["finished"] == 1
    assert v["progress"] == 100
    assert v["_recordId"] == rid
    assert v["customer_id"] == "C-1"
    assert v["recordedDate"].endswith("Z")
    assert "." in v["recordedDate"]
    assert got["labels"]["QID1"] == "Somewhat satisfied"
    assert got["labels"]["QID2_NPS_GROUP"] == "Promoter"
    assert got["labels"]["finished"] == "True"
    assert "QID1" in got["displayedFields"]

    put = await client.put(
        f"/API/v3/responses/{rid}", json={"surveyId": csat, "embeddedData": {"tier": "gold"}}
    )
    assert put.status_code == 200
    assert set(put.json()) == {"meta"}
    got = (await client.get(f"/API/v3/surveys/{csat}/responses/{rid}")).json()["result"]
    assert got["values"]["tier"] == "gold"

    assert (await client.delete(f"/API/v3/surveys/{csat}/responses/{rid}")).status_code == 200
    assert_error(await client.get(f"/API/v3/surveys/{csat}/responses/{rid}"), 404)
    counts = (await client.get(f"/API/v3/surveys/{csat}")).json()["result"]["responseCounts"]
    assert counts == {"auditable": 0, "generated": 0, "deleted": 1}


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"QID1": 9}, "QID1"),
        ({"QID99": 1}, "QID99"),
        ({"QID4": ["7"]}, "QID4"),
        ({"finished": 3}, "finished"),
        ({"startDate": "yesterday"}, "startDate"),
    ],
)
async def test_bad_response_values_name_the_field(
    client: httpx.AsyncClient, csat: str, values: dict[str, Any], needle: str
) -> None:
    resp = await client.post(f"/API/v3/surveys/{csat}/responses", json={"values": values})
    assert needle in assert_error(resp, 400)


async def test_response_body_without_values_is_400(client: httpx.AsyncClient, csat: str) -> None:
    resp = await client.post(f"/API/v3/surveys/{csat}/responses", json={"QID1": 1})
    assert "values" in assert_error(resp, 400)


async def test_update_response_rejects_question_fields(
    client: httpx.AsyncClient, csat: str
) -> None:
    rid = (
        await client.post(f"/API/v3/surveys/{csat}/responses", json={"values": {"QID1": 1}})
    ).json()["result"]["responseId"]
    bad = await client.put(
        f"/API/v3/responses/{rid}", json={"surveyId": csat, "embeddedData": {"QID1": 2}}
    )
    assert "QID1" in assert_error(bad, 400)
    missing = await client.put(f"/API/v3/responses/{rid}", json={"embeddedData": {"a": "b"}})
    assert "surveyId" in assert_error(missing, 400)
    gone = await client.put(
        "/API/v3/responses/R_000000000000000", json={"surveyId": csat, "embeddedData": {"a": 1}}
    )
    assert_error(gone, 404)


async def test_idempotency_key(client: httpx.AsyncClient, csat: str, state: SandboxState) -> None:
    headers = {"Idempotency-Key": "abc-123"}
    first = await client.post(
        f"/API/v3/surveys/{csat}/responses", json={"values": {"QID1": 2}}, headers=headers
    )
    second = await client.post(
        f"/API/v3/surveys/{csat}/responses", json={"values": {"QID1": 2}}, headers=headers
    )
    assert first.json()["result"]["responseId"] == second.json()["result"]["responseId"]
    assert state.response_count(csat) == 1


async def test_recent_response_answers_202_until_available(
    client: httpx.AsyncClient, csat: str, state: SandboxState
) -> None:
    state.config.response_availability_delay = 3600
    rid = (
        await client.post(f"/API/v3/surveys/{csat}/responses", json={"values": {"QID1": 2}})
    ).json()["result"]["responseId"]
    resp = await client.get(f"/API/v3/surveys/{csat}/responses/{rid}")
    assert resp.status_code == 202
    body = resp.json()
    assert body["result"] == {
        "message": "The Survey Response is not yet available. Please try again later."
    }
    assert body["meta"]["httpStatus"] == "202 - Accepted"
    state.responses[csat][rid].available_at = 0.0
    assert (await client.get(f"/API/v3/surveys/{csat}/responses/{rid}")).status_code == 200


async def test_employee_pulse_slider_rank_matrix_values(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    sid = employee_pulse(state).id
    values = {"QID1_1": 7, "QID2_3": 4, "QID3_1": 1, "QID3_2": 2, "QID4": 10}
    rid = (await client.post(f"/API/v3/surveys/{sid}/responses", json={"values": values})).json()[
        "result"
    ]["responseId"]
    got = (await client.get(f"/API/v3/surveys/{sid}/responses/{rid}")).json()["result"]
    assert got["values"]["QID1_1"] == 7
    assert got["values"]["QID4_NPS_GROUP"] == 3
    assert got["labels"]["QID2_3"] == "Agree"
    bad = await client.post(f"/API/v3/surveys/{sid}/responses", json={"values": {"QID1_1": "lots"}})
    assert "QID1_1" in assert_error(bad, 400)


async def test_inbound_json_event(anon: httpx.AsyncClient, state: SandboxState, token: str) -> None:
    url = "/inbound-event/v1/events/json/triggers?urlTokenId=3f1c"
    resp = await anon.post(url, json={"email": "a@b.c"}, headers={"X-API-TOKEN": token})
    assert resp.status_code == 202
    assert resp.json()["meta"]["httpStatus"] == "202 - Accepted"
    basic = base64.b64encode(f"ana@example.com:{token}".encode()).decode()
    resp = await anon.post(url, json={"n": 2}, headers={"Authorization": f"Basic {basic}"})
    assert resp.status_code == 202
    assert [e["body"] for e in state.inbound_events] == [{"email": "a@b.c"}, {"n": 2}]
    listed = (await anon.get("/_sandbox/json-events?urlTokenId=3f1c")).json()["result"]["elements"]
    assert len(listed) == 2
    wrong = base64.b64encode(f"bob@example.com:{token}".encode()).decode()
    assert_error(await anon.post(url, json={}, headers={"Authorization": f"Basic {wrong}"}), 401)
    assert_error(await anon.post(url, json={}), 400, "ATP_2")
    big = {"blob": "x" * 110_000}
    assert_error(await anon.post(url, json=big, headers={"X-API-TOKEN": token}), 413)
    form = await anon.post(url, data={"a": "b"}, headers={"X-API-TOKEN": token})
    assert "JSON" in assert_error(form, 400)
    no_token = await anon.post(
        "/inbound-event/v1/events/json/triggers", json={}, headers={"X-API-TOKEN": token}
    )
    assert "urlTokenId" in assert_error(no_token, 400)
    assert len(state.inbound_events) == 2
