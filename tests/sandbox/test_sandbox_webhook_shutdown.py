"""Stopping the sandbox while a delivery on the background loop waits to retry: the waiting
delivery is cancelled cleanly, with no "Task was destroyed but it is pending!" at exit."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from qualflow.sandbox import SandboxConfig, SandboxState, create_app
from qualflow.sandbox.seed import customer_satisfaction


async def unavailable(request: Request) -> PlainTextResponse:
    return PlainTextResponse("down", status_code=503)


def test_closing_cancels_a_retry_waiting_on_the_background_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = SandboxState(SandboxConfig(webhook_backoff=60.0, webhook_max_attempts=3))
    user, _token = state.create_user("shutdown@example.com")
    hook_app = Starlette(routes=[Route("/hook", unavailable, methods=["POST"])])
    app = create_app(state, webhook_transport=httpx.ASGITransport(app=hook_app))
    dispatcher = app.state.dispatcher
    survey = customer_satisfaction(state)
    state.add_subscription(
        topics="*", publication_url="http://receiver.test/hook", shared_key=None, owner_id=user.id
    )
    # No event loop in this thread: the delivery runs on the dispatcher's background loop.
    state.record_response(survey.id, {"QID1": 3})
    deadline = time.monotonic() + 10
    while not any(d.attempts for d in dispatcher.list()) and time.monotonic() < deadline:
        time.sleep(0.01)
    [delivery] = dispatcher.list()
    assert [a.status_code for a in delivery.attempts] == [503]  # now waiting 60 s to retry

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(dispatcher.aclose())
        gc.collect()

    assert dispatcher.pending == 0
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
