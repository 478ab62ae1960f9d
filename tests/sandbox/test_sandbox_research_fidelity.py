"""Behaviour the research notes (/work/shared/research) describe, checked over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from qualflow.sandbox import SandboxState

from .sandbox_support import assert_error

pytestmark = pytest.mark.anyio


async def _bearer(anon: httpx.AsyncClient, state: SandboxState) -> str:
    client_id, secret = state.add_oauth_client()
    resp = await anon.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


async def test_oauth_token_is_refused_by_a_host_that_proxies_to_another_datacenter(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, state: SandboxState
) -> None:
    # "OAuth tokens must be used against the datacenter where the client was created"; an API
    # token on the wrong host is proxied with a notice instead.
    bearer = {"Authorization": f"Bearer {await _bearer(anon, state)}"}
    assert (await anon.get("/API/v3/whoami", headers=bearer)).status_code == 200
    state.config.proxy_notice_host = "fra1.qualtrics.com"
    message = assert_error(await anon.get("/API/v3/whoami", headers=bearer), 401)
    assert "fra1.qualtrics.com" in message
    proxied = await client.get("/API/v3/whoami")
    assert proxied.status_code == 200
    assert proxied.json()["meta"]["notice"].endswith("fra1.qualtrics.com")


# -- Tango RaaS v2 (domain.md, section A) --------------------------------------------------------


async def _tango_auth(anon: httpx.AsyncClient) -> tuple[str, str]:
    summary = (await anon.get("/_sandbox/tango")).json()
    return summary["platformName"], summary["platformKey"]


def _order(external_ref: str, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "customerIdentifier": "qualflow-demo",
        "accountIdentifier": "qualflow-demo-account",
        "amount": 5.0,
        "utid": "U442381",
        "sendEmail": True,
        "recipient": {"email": "pat@example.org", "firstName": "Pat", "lastName": "Lee"},
        "externalRefID": external_ref,
    }
    return {**body, **changes}


async def test_tango_refuses_recipient_names_over_100_characters(anon: httpx.AsyncClient) -> None:
    auth = await _tango_auth(anon)
    for name in ("firstName", "lastName"):
        recipient = {"email": "pat@example.org", "firstName": "Pat", name: "x" * 101}
        resp = await anon.post(
            "/raas/v2/orders", json=_order(f"long{name}", recipient=recipient), auth=auth
        )
        assert resp.status_code == 400, resp.text
        assert [e["path"] for e in resp.json()["errors"]] == [f"recipient.{name}"]
    at_limit = {"email": "pat@example.org", "firstName": "x" * 100, "lastName": "y" * 100}
    resp = await anon.post("/raas/v2/orders", json=_order("atlimit", recipient=at_limit), auth=auth)
    assert resp.status_code == 201, resp.text


async def test_tango_order_history_filters_by_start_and_end_date(anon: httpx.AsyncClient) -> None:
    auth = await _tango_auth(anon)
    for ref in ("first", "second"):
        assert (await anon.post("/raas/v2/orders", json=_order(ref), auth=auth)).status_code == 201
    now = datetime.now(UTC)
    hour_ago = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    hour_ahead = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")

    async def found(**params: str) -> list[str]:
        resp = await anon.get("/raas/v2/orders", params=params, auth=auth)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert page["page"]["totalCount"] == len(page["orders"])
        return [o["externalRefID"] for o in page["orders"]]

    assert await found(startDate=hour_ago, endDate=hour_ahead) == ["first", "second"]
    assert await found(startDate=hour_ahead) == []
    assert await found(endDate=hour_ago) == []
    assert await found(startDate=hour_ago.replace("Z", "-02:00")) == []
    bad = await anon.get("/raas/v2/orders", params={"startDate": "yesterday"}, auth=auth)
    assert bad.status_code == 400
    assert [e["path"] for e in bad.json()["errors"]] == ["startDate"]


# -- workflow JSON events (qualtrics-api.md section 6) ------------------------------------------

_OLDER_TRIGGER_PATH = "/inbound-event/v1/events/JSON/triggers"


async def test_json_event_posted_to_the_older_trigger_url_form_is_recorded(
    anon: httpx.AsyncClient, state: SandboxState, token: str
) -> None:
    url = f"{_OLDER_TRIGGER_PATH}?contextId=OC_ctx&userId=UR_u&brandId=sandbox&triggerId=OC_trig"
    resp = await anon.post(url, json={"email": "a@b.c"}, headers={"X-API-TOKEN": token})
    assert resp.status_code == 202, resp.text
    assert resp.json()["meta"]["httpStatus"] == "202 - Accepted"
    listed = (await anon.get("/_sandbox/json-events?urlTokenId=OC_trig")).json()["result"]
    assert [e["body"] for e in listed["elements"]] == [{"email": "a@b.c"}]

    basic = httpx.BasicAuth(state.users[state.inbound_events[0]["userId"]].username, token)
    assert (await anon.post(url, json={}, auth=basic)).status_code == 202
    assert_error(await anon.post(url, json={}), 400, "ATP_2")
    no_trigger = await anon.post(
        f"{_OLDER_TRIGGER_PATH}?contextId=OC_ctx", json={}, headers={"X-API-TOKEN": token}
    )
    assert "triggerId" in assert_error(no_trigger, 400)
    too_large = await anon.post(url, json={"blob": "x" * 110_000}, headers={"X-API-TOKEN": token})
    assert_error(too_large, 413)
    assert len(state.inbound_events) == 2
