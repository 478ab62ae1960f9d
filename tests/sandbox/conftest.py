"""Fixtures: a sandbox state with a user, its ASGI app, and an httpx client bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from qualflow.demo.servers import start_server
from qualflow.sandbox import SandboxConfig, SandboxState, create_app
from qualflow.sandbox.seed import customer_satisfaction

BASE = "http://sandbox.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def state() -> SandboxState:
    s = SandboxState(SandboxConfig(webhook_backoff=0.0))
    s.create_user("ana@example.com", first_name="Ana", last_name="Lima", api_token="T" * 40)
    return s


@pytest.fixture
def token() -> str:
    return "T" * 40


@pytest.fixture
def app(state: SandboxState) -> Any:
    return create_app(state)


@pytest.fixture
async def client(app: Any, token: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, headers={"X-API-TOKEN": token}
    ) as c:
        yield c


@pytest.fixture
async def anon(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


@pytest.fixture
def csat(state: SandboxState) -> str:
    return customer_satisfaction(state).id


@pytest.fixture
def live_sandbox() -> Iterator[tuple[str, SandboxState]]:
    """The sandbox on a real loopback port (port 0), served by uvicorn in a thread."""
    state = SandboxState()
    state.create_user("live@example.com")
    with start_server(create_app(state), name="sandbox") as server:
        yield server.url, state
