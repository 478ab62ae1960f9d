"""Event subscriptions: CRUD, and real asynchronous deliveries (flat form and MSG + HMAC)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from qualflow.demo.servers import start_server
from qualflow.sandbox import SandboxConfig, SandboxState, create_app
from qualflow.sandbox.respondents import Simulator
from qualflow.sandbox.seed import customer_satisfaction
from tests.sandbox.sandbox_support import assert_error, assert_ok_envelope

pytestmark = pytest.mark.anyio

TOKEN = "W" * 40


class Receiver:
    """A webhook listener app that records what it receives and can fail on demand."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.content_types: list[str] = []
        self.fail_first = 0
        self.calls = 0

    async def hook(self, request: Request) -> PlainTextResponse:
        self.calls += 1
        if self.fail_first > 0:
            self.fail_first -= 1
            return PlainTextResponse("down", status_code=503)
        body = (await request.body()).decode()
        self.content_types.append(request.headers["content-type"])
        self.received.append({k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()})
        return PlainTextResponse("ok")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def hooked(receiver: Receiver) -> AsyncIterator[tuple[httpx.AsyncClient, Any, SandboxState]]:
    state = SandboxState(SandboxConfig(webhook_backoff=0.0))
    state.create_user("hooks@example.com", api_token=TOKEN)
    app = create_app(state, webhook_transport=httpx.ASGITransport(app=receiver.app()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox.test",
        headers={"X-API-TOKEN": TOKEN},
    ) as client:
        yield client, app, state
        await app.state.dispatcher.aclose()


async def subscribe(client: httpx.AsyncClient, topics: str, **extra: Any) -> str:
    body = {"topics": topics, "publicationUrl": "http://receiver.test/hook", "encrypt": False}
    resp = await client.post("/API/v3/eventsubscriptions", json={**body, **extra})
    assert resp.status_code == 200, resp.text
    sub_id: str = resp.json()["result"]["id"]
    assert sub_id.startswith("SUB_")
    return sub_id


async def test_subscription_crud(hooked: tuple[httpx.AsyncClient, Any, SandboxState]) -> None:
    client, _, _ = hooked
    sub_id = await subscribe(client, "surveyengine.completedResponse.*", sharedKey="s3cret")
    listed = (await client.get("/API/v3/eventsubscriptions")).json()
    assert_ok_envelope(listed)
    assert listed["result"]["nextPage"] is None
    (element,) = listed["result"]["elements"]
    assert element == {
        "id": sub_id,
        "scope": "brand",
        "topics": "surveyengine.completedResponse.*",
        "publicationUrl": "http://receiver.test/hook",
        "encrypted": False,
        "successfulCalls": 0,
    }
    assert "sharedKey" not in element
    one = (await client.get(f"/API/v3/eventsubscriptions/{sub_id}")).json()["result"]
    assert one == element
    deleted = await client.delete(f"/API/v3/eventsubscriptions/{sub_id}")
    assert deleted.status_code == 200
    assert set(deleted.json()) == {"meta"}
    assert_error(await client.get(f"/API/v3/eventsubscriptions/{sub_id}"), 404)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"publicationUrl": "http://x.test/h"}, "topics"),
        ({"topics": "surveyengine.completedResponse.SV_1"}, "publicationUrl"),
        ({"topics": "bogus.topic", "publicationUrl": "http://x.test/h"}, "topics"),
        ({"topics": "*", "publicationUrl": "ftp://x.test/h"}, "publicationUrl"),
        ({"topics": "*", "publicationUrl": "http://x.test/h", "encrypt": True}, "encrypt"),
        ({"topics": "*", "publicationUrl": "http://x.test/h", "sharedKey": 5}, "sharedKey"),
        ({"topics": "*", "publicationUrl": "http://x.test/h", "topic": "x"}, "topic"),
    ],
)
async def test_bad_subscription_bodies(
    hooked: tuple[httpx.AsyncClient, Any, SandboxState], body: dict[str, Any], needle: str
) -> None:
    client, _, _ = hooked
    assert needle in assert_error(await client.post("/API/v3/eventsubscriptions", json=body), 400)


async def test_completed_response_delivered_with_hmac(
    hooked: tuple[httpx.AsyncClient, Any, SandboxState], receiver: Receiver
) -> None:
    client, app, state = hooked
    sid = customer_satisfaction(state).id
    await subscribe(client, f"surveyengine.completedResponse.{sid}", sharedKey="k3y")
    resp = await client.post(
        f"/API/v3/surveys/{sid}/responses",
        json={"values": {"QID1": 5, "ResponseEventContext": "order-77"}},
    )
    rid = resp.json()["result"]["responseId"]
    assert await app.state.dispatcher.drain(10)
    (form,) = receiver.received
    assert receiver.content_types == ["application/x-www-form-urlencoded"]
    assert set(form) == {"Topic", "MSG", "HMAC"}
    assert form["Topic"] == f"{state.config.brand_id}.surveyengine.completedResponse.{sid}"
    expected = hmac.new(b"k3y", form["MSG"].encode(), hashlib.sha512).hexdigest()
    assert hmac.compare_digest(form["HMAC"], expected)
    assert len(form["HMAC"]) == 128
    msg = json.loads(form["MSG"])
    assert msg["Status"] == "Complete"
    assert msg["SurveyID"] == sid
    assert msg["ResponseID"] == rid
    assert msg["BrandID"] == state.config.brand_id
    assert msg["ResponseEventContext"] == "order-77"
    assert len(msg["CompletedDate"]) == 19
    assert msg["CompletedDate"][10] == " "
    sub = next(iter(state.subscriptions.values()))
    assert sub.successful_calls == 1
    deliveries = (await client.get("/_sandbox/deliveries")).json()["result"]["elements"]
    assert deliveries[0]["status"] == "delivered"
    assert deliveries[0]["attempts"][0]["statusCode"] == 200


async def test_flat_form_partial_and_wildcards(
    hooked: tuple[httpx.AsyncClient, Any, SandboxState], receiver: Receiver
) -> None:
    client, app, state = hooked
    sid = customer_satisfaction(state).id
    await subscribe(client, "surveyengine.partialResponse.*")
    await client.post(f"/API/v3/surveys/{sid}/responses", json={"values": {"QID1": 2}})
    await client.post(
        f"/API/v3/surveys/{sid}/responses", json={"values": {"QID1": 2, "finished": 0}}
    )
    assert await app.state.dispatcher.drain(10)
    (form,) = receiver.received
    assert form["Status"] == "Partial"
    assert form["SurveyID"] == sid
    assert form["Topic"].endswith(f"surveyengine.partialResponse.{sid}")
    assert "HMAC" not in form


async def test_activation_events(
    hooked: tuple[httpx.AsyncClient, Any, SandboxState], receiver: Receiver
) -> None:
    client, app, state = hooked
    sid = customer_satisfaction(state).id
    await subscribe(client, "controlpanel.*")
    await client.put(f"/API/v3/surveys/{sid}", json={"isActive": False})
    await client.put(f"/API/v3/surveys/{sid}", json={"isActive": False})  # no change, no event
    await client.put(f"/API/v3/surveys/{sid}", json={"isActive": True})
    assert await app.state.dispatcher.drain(10)
    assert [(f["Status"], f["SurveyID"]) for f in receiver.received] == [
        ("Inactive", sid),
        ("Active", sid),
    ]
    assert receiver.received[0]["Topic"].endswith("controlpanel.deactivateSurvey")


async def test_retries_then_delivers(
    hooked: tuple[httpx.AsyncClient, Any, SandboxState], receiver: Receiver
) -> None:
    client, app, state = hooked
    sid = customer_satisfaction(state).id
    await subscribe(client, "*")
    receiver.fail_first = 2
    await client.post(f"/API/v3/surveys/{sid}/responses", json={"values": {"QID1": 3}})
    assert await app.state.dispatcher.drain(10)
    assert len(receiver.received) == 1
    (delivery,) = (await client.get("/_sandbox/deliveries")).json()["result"]["elements"]
    assert delivery["status"] == "delivered"
    assert [a["statusCode"] for a in delivery["attempts"]] == [503, 503, 200]
    assert delivery["attempts"][0]["error"] == "HTTP 503"


async def test_gives_up_after_max_attempts(
    hooked: tuple[httpx.AsyncClient, Any, SandboxState], receiver: Receiver
) -> None:
    client, app, state = hooked
    sid = customer_satisfaction(state).id
    await subscribe(client, "*")
    receiver.fail_first = 100
    await client.post(f"/API/v3/surveys/{sid}/responses", json={"values": {"QID1": 3}})
    assert await app.state.dispatcher.drain(10)
    failed = (await client.get("/_sandbox/deliveries?status=failed")).json()["result"]["elements"]
    assert len(failed) == 1
    assert len(failed[0]["attempts"]) == state.config.webhook_max_attempts
    assert receiver.received == []


async def test_unreachable_url_is_recorded(
    hooked: tuple[httpx.AsyncClient, Any, SandboxState],
) -> None:
    client, app, state = hooked
    sid = customer_satisfaction(state).id
    await subscribe(client, "*")
    # the in-process receiver only serves /hook: a 404 is a failed attempt too
    state.subscriptions[next(iter(state.subscriptions))].publication_url = "http://receiver.test/x"
    await client.post(f"/API/v3/surveys/{sid}/responses", json={"values": {"QID1": 3}})
    assert await app.state.dispatcher.drain(10)
    (delivery,) = app.state.dispatcher.list()
    assert delivery.status == "failed"
    assert delivery.attempts[-1].status_code == 404


async def test_simulated_recipients_fire_started_sessions(
    hooked: tuple[httpx.AsyncClient, Any, SandboxState], receiver: Receiver
) -> None:
    client, app, state = hooked
    sid = customer_satisfaction(state).id
    await subscribe(client, f"surveyengine.*.{sid}")
    made = Simulator(state, sid, seed=11).run(20)
    assert await app.state.dispatcher.drain(10)
    statuses = [f["Status"] for f in receiver.received]
    assert statuses.count("Started") == sum(
        1 for r in made if r.values.get("distributionChannel") == "email"
    )
    assert statuses.count("Complete") + statuses.count("Partial") == 20
    started = next(f for f in receiver.received if f["Status"] == "Started")
    assert started["RecipientID"].startswith("CID_")


async def test_sync_callers_deliver_on_background_loop(receiver: Receiver) -> None:
    state = SandboxState(SandboxConfig(webhook_backoff=0.0))
    state.create_user("sync@example.com", api_token=TOKEN)
    app = create_app(state, webhook_transport=httpx.ASGITransport(app=receiver.app()))
    sid = customer_satisfaction(state).id
    state.add_subscription(
        topics="*", publication_url="http://receiver.test/hook", shared_key=None, owner_id="UR_x"
    )
    # A worker thread (no running loop) records a response, as the CLI or a test might.
    thread = threading.Thread(target=lambda: state.record_response(sid, {"QID1": 1}))
    thread.start()
    thread.join()
    assert app.state.dispatcher.wait_idle(10)
    assert len(receiver.received) == 1
    await app.state.dispatcher.aclose()


def test_delivers_over_real_http_without_a_transport(receiver: Receiver) -> None:
    """No webhook_transport: the sandbox POSTs to a real loopback listener (port 0)."""
    server = start_server(receiver.app(), name="receiver")
    port = server.port
    try:
        state = SandboxState(SandboxConfig(webhook_backoff=0.0))
        state.create_user("real@example.com", api_token=TOKEN)
        app = create_app(state)
        sid = customer_satisfaction(state).id
        state.add_subscription(
            topics="*",
            publication_url=f"http://127.0.0.1:{port}/hook",
            shared_key="k",
            owner_id="UR_x",
        )
        state.record_response(sid, {"QID1": 5})  # no running loop: background delivery loop
        assert app.state.dispatcher.wait_idle(20)
        (form,) = receiver.received
        assert form["HMAC"] == hmac.new(b"k", form["MSG"].encode(), hashlib.sha512).hexdigest()
        asyncio.run(app.state.dispatcher.aclose())
    finally:
        server.stop()
