"""Directories, contacts, mailing lists (skipToken paging), users, groups, distributions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qualflow.sandbox import SandboxState
from tests.sandbox.sandbox_support import assert_error, assert_ok_envelope

pytestmark = pytest.mark.anyio

HEADER = {"fromEmail": "research@example.com", "fromName": "Research", "subject": "Tell us"}


async def default_directory(client: httpx.AsyncClient) -> str:
    body = (await client.get("/API/v3/directories")).json()
    assert_ok_envelope(body)
    (directory,) = body["result"]["elements"]
    assert directory["directoryId"].startswith("POOL_")
    assert len(directory["directoryId"]) == 20
    assert directory["isDefault"] is True
    assert directory["deduplicationCriteria"]["email"] is True
    return str(directory["directoryId"])


async def test_contacts_crud_and_dedup(client: httpx.AsyncClient) -> None:
    pool = await default_directory(client)
    body = {"firstName": "Ana", "lastName": "Lima", "email": "ana@example.com",
            "embeddedData": {"tier": "gold"}}  # fmt: skip
    created = (await client.post(f"/API/v3/directories/{pool}/contacts", json=body)).json()
    cid = created["result"]["id"]
    assert cid.startswith("CID_")
    again = await client.post(
        f"/API/v3/directories/{pool}/contacts", json={"email": "ANA@example.com", "phone": "1"}
    )
    assert again.json()["result"]["id"] == cid  # deduplicated on email
    contact = (await client.get(f"/API/v3/directories/{pool}/contacts/{cid}")).json()["result"]
    assert contact["contactId"] == cid
    assert contact["phone"] == "1"
    assert contact["embeddedData"] == {"tier": "gold"}
    put = await client.put(
        f"/API/v3/directories/{pool}/contacts/{cid}", json={"unsubscribed": True}
    )
    assert set(put.json()) == {"meta"}
    contact = (await client.get(f"/API/v3/directories/{pool}/contacts/{cid}")).json()["result"]
    assert contact["unsubscribed"] is True
    assert (await client.delete(f"/API/v3/directories/{pool}/contacts/{cid}")).status_code == 200
    assert_error(await client.get(f"/API/v3/directories/{pool}/contacts/{cid}"), 404)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"firstName": 5}, "firstName"),
        ({"unsubscribed": "no"}, "unsubscribed"),
        ({}, "at least one"),
        ({"email": "a@b.c", "shoeSize": 9}, "shoeSize"),
    ],
)
async def test_bad_contacts(client: httpx.AsyncClient, body: dict[str, Any], needle: str) -> None:
    pool = await default_directory(client)
    resp = await client.post(f"/API/v3/directories/{pool}/contacts", json=body)
    assert needle in assert_error(resp, 400)


async def test_contacts_page_with_opaque_skip_token(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    pool = await default_directory(client)
    for i in range(230):
        state.directory.create_contact(pool, {"email": f"p{i}@example.com"})
    seen: list[str] = []
    url: str | None = f"/API/v3/directories/{pool}/contacts?pageSize=100"
    while url:
        result = (await client.get(url)).json()["result"]
        assert len(result["elements"]) <= 100
        seen += [c["contactId"] for c in result["elements"]]
        url = result["nextPage"]
        if url:
            assert url.startswith(f"http://sandbox.test/API/v3/directories/{pool}/contacts?")
            assert "skipToken=" in url
            assert "pageSize=100" in url
    assert len(seen) == len(set(seen)) == 230
    bad = await client.get(f"/API/v3/directories/{pool}/contacts?skipToken=garbage!!")
    assert_error(bad, 400, "QVAL_5")
    empty = await client.get(f"/API/v3/directories/{pool}/contacts?skipToken=")
    assert "skipToken" in assert_error(empty, 400)
    assert "pageSize" in assert_error(
        await client.get(f"/API/v3/directories/{pool}/contacts?pageSize=500"), 400
    )
    assert_error(await client.get("/API/v3/directories/POOL_nope/contacts"), 404)


async def test_mailing_lists(client: httpx.AsyncClient, state: SandboxState) -> None:
    pool = await default_directory(client)
    ml = (
        await client.post(f"/API/v3/directories/{pool}/mailinglists", json={"name": "Panel A"})
    ).json()["result"]["id"]
    assert ml.startswith("CG_")
    member = (
        await client.post(
            f"/API/v3/directories/{pool}/mailinglists/{ml}/contacts",
            json={"firstName": "Bo", "email": "bo@example.com", "extRef": "P-1"},
        )
    ).json()["result"]
    assert member["id"].startswith("CID_")
    assert member["contactLookupId"].startswith("CGC_")
    listed = (await client.get(f"/API/v3/directories/{pool}/mailinglists")).json()["result"]
    (element,) = listed["elements"]
    assert set(element) == {
        "mailingListId", "name", "ownerId", "lastModifiedDate", "creationDate", "contactCount",
    }  # fmt: skip
    assert element["contactCount"] == 1
    assert element["ownerId"] == next(iter(state.users))
    members = (await client.get(f"/API/v3/directories/{pool}/mailinglists/{ml}/contacts")).json()[
        "result"
    ]["elements"]
    assert members[0]["email"] == "bo@example.com"
    assert members[0]["extRef"] == "P-1"
    await client.put(f"/API/v3/directories/{pool}/mailinglists/{ml}", json={"name": "Panel B"})
    got = (await client.get(f"/API/v3/directories/{pool}/mailinglists/{ml}")).json()["result"]
    assert got["name"] == "Panel B"
    removed = await client.delete(
        f"/API/v3/directories/{pool}/mailinglists/{ml}/contacts/{member['id']}"
    )
    assert removed.status_code == 200
    assert (
        await client.get(f"/API/v3/directories/{pool}/contacts/{member['id']}")
    ).status_code == 200
    assert "name" in assert_error(
        await client.post(f"/API/v3/directories/{pool}/mailinglists", json={"name": ""}), 400
    )
    assert (await client.delete(f"/API/v3/directories/{pool}/mailinglists/{ml}")).status_code == 200
    assert_error(await client.get(f"/API/v3/directories/{pool}/mailinglists/{ml}"), 404)


async def test_users_and_api_tokens(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    body = {"username": "bob@example.com", "password": "pw-123456", "firstName": "Bob",
            "lastName": "Ng", "userType": "UT_12345", "email": "bob@example.com",
            "language": "en"}  # fmt: skip
    uid = (await client.post("/API/v3/users", json=body)).json()["result"]["id"]
    assert uid.startswith("UR_")
    user = (await client.get(f"/API/v3/users/{uid}")).json()["result"]
    assert user["username"] == "bob@example.com"
    assert user["accountStatus"] == "active"
    assert "password" not in user
    assert "apiToken" not in user
    dup = await client.post("/API/v3/users", json=body)
    assert "username" in assert_error(dup, 400)
    missing = await client.post(
        "/API/v3/users", json={**body, "username": "x@y.z", "password": None}
    )
    assert "password" in assert_error(missing, 400)
    assert_error(await client.get(f"/API/v3/users/{uid}/apitoken"), 400)
    token = (await client.post(f"/API/v3/users/{uid}/apitoken")).json()["result"]["apiToken"]
    assert len(token) == 40
    assert (await client.get(f"/API/v3/users/{uid}/apitoken")).json()["result"]["apiToken"] == token
    who = await anon.get("/API/v3/whoami", headers={"X-API-TOKEN": token})
    assert who.json()["result"]["userId"] == uid
    new = (await client.post(f"/API/v3/users/{uid}/apitoken")).json()["result"]["apiToken"]
    assert_error(await anon.get("/API/v3/whoami", headers={"X-API-TOKEN": token}), 401, "DCD_7")
    await client.put(f"/API/v3/users/{uid}", json={"firstName": "Robert"})
    assert (await client.get(f"/API/v3/users/{uid}")).json()["result"]["firstName"] == "Robert"
    listed = (await client.get("/API/v3/users")).json()["result"]
    assert {u["id"] for u in listed["elements"]} >= {uid}
    assert (await client.delete(f"/API/v3/users/{uid}")).status_code == 200
    assert_error(await anon.get("/API/v3/whoami", headers={"X-API-TOKEN": new}), 401)
    assert_error(await client.get(f"/API/v3/users/{uid}"), 404)


async def test_groups_and_members(client: httpx.AsyncClient, state: SandboxState) -> None:
    me = next(iter(state.users))
    gid = (
        await client.post("/API/v3/groups", json={"type": "GT_1", "name": "Researchers"})
    ).json()["result"]["id"]
    assert gid.startswith("GR_")
    assert (
        await client.post(f"/API/v3/groups/{gid}/members", json={"userId": me})
    ).status_code == 200
    members = (await client.get(f"/API/v3/groups/{gid}/members")).json()["result"]["elements"]
    assert [m["id"] for m in members] == [me]
    bad = await client.post(f"/API/v3/groups/{gid}/members", json={"userId": "UR_nope"})
    assert "userId" in assert_error(bad, 400)
    await client.put(f"/API/v3/groups/{gid}", json={"name": "Research Ops"})
    group = (await client.get(f"/API/v3/groups/{gid}")).json()["result"]
    assert group["name"] == "Research Ops"
    assert group["type"] == "GT_1"
    assert (await client.delete(f"/API/v3/groups/{gid}/members/{me}")).status_code == 200
    assert_error(await client.delete(f"/API/v3/groups/{gid}/members/{me}"), 404)
    assert "type" in assert_error(await client.post("/API/v3/groups", json={"name": "x"}), 400)
    listed = (await client.get("/API/v3/groups")).json()["result"]
    assert [g["id"] for g in listed["elements"]] == [gid]
    assert (await client.delete(f"/API/v3/groups/{gid}")).status_code == 200


async def _panel(client: httpx.AsyncClient, size: int) -> tuple[str, str, list[str]]:
    pool = await default_directory(client)
    ml = (
        await client.post(f"/API/v3/directories/{pool}/mailinglists", json={"name": "Panel"})
    ).json()["result"]["id"]
    cids = []
    for i in range(size):
        r = await client.post(
            f"/API/v3/directories/{pool}/mailinglists/{ml}/contacts",
            json={"firstName": f"P{i}", "lastName": "Test", "email": f"p{i}@example.com"},
        )
        cids.append(r.json()["result"]["id"])
    return pool, ml, cids


async def test_email_distribution_links_history_and_stats(
    client: httpx.AsyncClient, csat: str
) -> None:
    _, ml, cids = await _panel(client, 5)
    body = {
        "header": HEADER,
        "surveyLink": {"surveyId": csat, "type": "Individual"},
        "recipients": {"mailingListId": ml},
        "sendDate": "2024-01-01T00:00:00Z",
        "message": {"messageText": "Please take our survey: ${l://SurveyURL}"},
    }
    did = (await client.post("/API/v3/distributions", json=body)).json()["result"]["id"]
    assert did.startswith("EMD_")
    dist = (await client.get(f"/API/v3/distributions/{did}?surveyId={csat}")).json()["result"]
    assert dist["requestStatus"] == "Done"
    assert dist["requestType"] == "Invite"
    assert dist["recipients"]["mailingListId"] == ml
    assert dist["stats"]["sent"] == 5
    assert dist["stats"]["finished"] == 0
    links = (await client.get(f"/API/v3/distributions/{did}/links?surveyId={csat}")).json()
    elements = links["result"]["elements"]
    assert {link["contactId"] for link in elements} == set(cids)
    assert all(f"/jfe/form/{csat}?Q_DL=" in link["link"] for link in elements)
    assert elements[0]["status"] == "Email Sent"

    # Three recipients answer through their personal links (simulated).
    made = await client.post(
        "/_sandbox/respond",
        json={"surveyId": csat, "count": 3, "distributionId": did, "abandonRate": 0, "seed": 1},
    )
    assert made.status_code == 200, made.text
    rids = made.json()["result"]["responseIds"]
    dist = (await client.get(f"/API/v3/distributions/{did}?surveyId={csat}")).json()["result"]
    assert dist["stats"]["started"] == 3
    assert dist["stats"]["finished"] == 3
    history = (await client.get(f"/API/v3/distributions/{did}/history")).json()["result"]
    answered = [h for h in history["elements"] if h["responseId"]]
    assert sorted(h["responseId"] for h in answered) == sorted(rids)
    assert all(h["status"] == "SurveyFinished" for h in answered)
    assert all(h["distributionID"] == did for h in history["elements"])
    response = (await client.get(f"/API/v3/surveys/{csat}/responses/{rids[0]}")).json()["result"]
    assert response["values"]["recipientEmail"].endswith("@example.com")
    assert response["values"]["distributionChannel"] == "email"
    too_many = await client.post(
        "/_sandbox/respond", json={"surveyId": csat, "count": 3, "distributionId": did}
    )
    assert "count" in assert_error(too_many, 400)

    reminder = await client.post(
        f"/API/v3/distributions/{did}/reminders",
        json={
            "header": HEADER,
            "sendDate": "2024-01-03T00:00:00Z",
            "message": {"messageText": "Hi"},
        },
    )
    child = reminder.json()["result"]["distributionId"]
    child_dist = (await client.get(f"/API/v3/distributions/{child}?surveyId={csat}")).json()
    assert child_dist["result"]["parentDistributionId"] == did
    assert child_dist["result"]["requestType"] == "Reminder"
    assert child_dist["result"]["stats"]["sent"] == 2  # only those who did not finish
    thanks = await client.post(
        f"/API/v3/distributions/{did}/thankyous",
        json={
            "header": HEADER,
            "sendDate": "2024-01-03T00:00:00Z",
            "message": {"messageText": "Ta"},
        },
    )
    assert thanks.status_code == 200
    listed = (await client.get(f"/API/v3/distributions?surveyId={csat}")).json()["result"]
    assert len(listed["elements"]) == 3
    assert (await client.delete(f"/API/v3/distributions/{did}")).status_code == 200
    assert_error(await client.get(f"/API/v3/distributions/{did}?surveyId={csat}"), 404)


async def test_link_distribution(client: httpx.AsyncClient, csat: str) -> None:
    _, ml, _ = await _panel(client, 2)
    body = {"action": "CreateDistribution", "surveyId": csat, "mailingListId": ml,
            "description": "links", "expirationDate": "2031-01-01T00:00:00Z",
            "linkType": "Individual"}  # fmt: skip
    did = (await client.post("/API/v3/distributions", json=body)).json()["result"]["id"]
    links = (await client.get(f"/API/v3/distributions/{did}/links?surveyId={csat}")).json()
    elements = links["result"]["elements"]
    assert len(elements) == 2
    assert elements[0]["linkExpiration"] == "2031-01-01T00:00:00Z"
    assert elements[0]["status"] == "Email not sent"
    dist = (await client.get(f"/API/v3/distributions/{did}?surveyId={csat}")).json()["result"]
    assert dist["requestType"] == "GeneratedInvite"
    assert dist["stats"]["sent"] == 0


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"header": None}, "header"),
        ({"header": {**HEADER, "fromEmail": "nobody"}}, "header.fromEmail"),
        ({"surveyLink": {"surveyId": "SV_x", "type": "Weird"}}, "surveyLink.type"),
        ({"recipients": {}}, "recipients"),
        ({"sendDate": "soon"}, "sendDate"),
        ({"message": {"libraryId": "UR_1"}}, "message"),
        ({"recipients": {"mailingListId": "CG_nope"}}, "mailingListId"),
    ],
)
async def test_bad_distributions(
    client: httpx.AsyncClient, csat: str, patch: dict[str, Any], needle: str
) -> None:
    body = {
        "header": HEADER,
        "surveyLink": {"surveyId": csat, "type": "Individual"},
        "recipients": {"contactId": "CID_x"},
        "sendDate": "2024-01-01T00:00:00Z",
        "message": {"messageText": "x"},
        **patch,
    }
    assert needle in assert_error(await client.post("/API/v3/distributions", json=body), 400)


async def test_distributions_need_survey_id(client: httpx.AsyncClient) -> None:
    assert "surveyId" in assert_error(await client.get("/API/v3/distributions"), 400)


async def test_collaborations(client: httpx.AsyncClient, csat: str, state: SandboxState) -> None:
    me = next(iter(state.users))
    perms = {"surveyManagement": {"editSurveys": True}, "result": {"viewSurveyResults": True}}
    for key in ("recipientId", "userId"):
        resp = await client.post(
            f"/API/v3/surveys/{csat}/permissions/collaborations",
            json={key: me, "permissions": perms},
        )
        assert resp.status_code == 200
        assert set(resp.json()) == {"meta"}
    assert len(state.directory.collaborations[csat]) == 1
    bad = await client.post(
        f"/API/v3/surveys/{csat}/permissions/collaborations",
        json={"recipientId": "UR_nope", "permissions": perms},
    )
    assert "recipientId" in assert_error(bad, 400)
    bad = await client.post(
        f"/API/v3/surveys/{csat}/permissions/collaborations",
        json={"recipientId": me, "permissions": {"result": {"viewSurveyResults": "yes"}}},
    )
    assert "permissions.result" in assert_error(bad, 400)
