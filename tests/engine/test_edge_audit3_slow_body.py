"""A sender trickling its body (slowloris) is cut off: a recorded 408, not a request (and a
connection) held open for as long as the sender likes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from qualflow.engine.models import InboundEvent
from qualflow.web import edge
from tests.engine.test_survey_response import Hub, enabled_automation, hub  # noqa: F401


async def post_stalling(target: Hub, path: str, query: bytes = b"") -> tuple[int, bytes]:
    """POST ``path`` on the app, sending a first chunk of body and then nothing, ever."""
    stalled = asyncio.Event()  # never set: the rest of the body never comes
    chunks: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"Topic=x&MSG=", "more_body": True}
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            return chunks.pop(0)
        await stalled.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
        "client": ("192.0.2.7", 40000),
        "server": ("hub.test", 80),
        "app": target.app,
    }
    await target.app(scope, receive, send)
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body


@pytest.mark.parametrize("route", ["webhook", "json_event"])
def test_a_body_that_stops_arriving_is_a_recorded_408(
    hub: Hub,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    route: str,
) -> None:
    _automation_id, token, _ = enabled_automation(hub)
    monkeypatch.setattr(edge, "BODY_TIMEOUT_SECONDS", 0.2)

    if route == "webhook":
        stalled = post_stalling(hub, f"{edge.WEBHOOK_PREFIX}{token}")
    else:
        stalled = post_stalling(hub, edge.JSON_EVENT_PATH, b"urlTokenId=" + token.encode())
    status, body = asyncio.run(stalled)

    assert status == 408, body
    assert b"did not arrive" in body
    with hub.engine.services.sessionmaker() as session:
        [event] = session.scalars(select(InboundEvent))
    assert event.status == "rejected"
    assert event.reason is not None
    assert "did not arrive" in event.reason
    assert event.remote == "192.0.2.7"
