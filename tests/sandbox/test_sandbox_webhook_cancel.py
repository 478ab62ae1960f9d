"""A subscription deleted while one of its deliveries waits for a retry: the retry is not
sent, and the delivery says it was cancelled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from qualflow.sandbox import SandboxConfig, SandboxState, create_app
from qualflow.sandbox.seed import customer_satisfaction

pytestmark = pytest.mark.anyio

TOKEN = "C" * 40


class DeletingReceiver:
    """Answers 503 to its first call and, while answering, has the subscription deleted (as a
    user would between two attempts); any later call is recorded."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.calls = 0
        self.received_after_delete = 0

    async def hook(self, request: Request) -> PlainTextResponse:
        self.calls += 1
        if self.calls == 1:
            for sub_id in list(self.state.subscriptions):
                self.state.delete_subscription(sub_id)
            return PlainTextResponse("down", status_code=503)
        self.received_after_delete += 1
        return PlainTextResponse("ok")


@pytest.fixture
async def setup() -> AsyncIterator[tuple[httpx.AsyncClient, Any, DeletingReceiver]]:
    state = SandboxState(SandboxConfig(webhook_backoff=0.0, webhook_max_attempts=4))
    state.create_user("cancel@example.com", api_token=TOKEN)
    receiver = DeletingReceiver(state)
    hook_app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    app = create_app(state, webhook_transport=httpx.ASGITransport(app=hook_app))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox.test",
        headers={"X-API-TOKEN": TOKEN},
    ) as client:
        yield client, app, receiver
        await app.state.dispatcher.aclose()


async def test_a_deleted_subscription_gets_no_retry(
    setup: tuple[httpx.AsyncClient, Any, DeletingReceiver],
) -> None:
    client, app, receiver = setup
    sid = customer_satisfaction(app.state.sandbox).id
    resp = await client.post(
        "/API/v3/eventsubscriptions",
        json={"topics": "*", "publicationUrl": "http://receiver.test/hook", "encrypt": False},
    )
    assert resp.status_code == 200, resp.text
    await client.post(f"/API/v3/surveys/{sid}/responses", json={"values": {"QID1": 3}})
    assert await app.state.dispatcher.drain(10)
    assert receiver.calls == 1
    assert receiver.received_after_delete == 0
    listed = await client.get("/_sandbox/deliveries?status=cancelled")
    assert listed.status_code == 200, listed.text
    (delivery,) = listed.json()["result"]["elements"]
    assert [a["statusCode"] for a in delivery["attempts"]] == [503]
