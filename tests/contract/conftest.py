"""Contract tests: the real client against the real sandbox, sync and async.

Every test that takes ``api`` runs twice: with the sync ``Client`` talking HTTP to the sandbox
served by uvicorn on a loopback port, and with the ``AsyncClient`` talking to the same sandbox
app in-process through ``httpx.ASGITransport`` (driven from a blocking portal so one test body
serves both). No Qualtrics answer is faked: the sandbox produces every byte.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import anyio.from_thread
import httpx
import pytest
import uvicorn

from qualflow.qualtrics import AsyncClient, Client, Unlimited
from qualflow.qualtrics.auth import OAuthCredentials
from qualflow.sandbox import create_app, seed
from qualflow.sandbox.state import SandboxConfig, SandboxState
from tests.contract.contract_support import (
    ASGI_BASE_URL,
    FAST_RETRY,
    Api,
    CurrentApp,
    LoopbackServer,
    Sandbox,
)


@pytest.fixture(scope="session")
def loopback_server() -> Iterator[LoopbackServer]:
    """uvicorn on 127.0.0.1, port chosen by the OS, for the whole session."""
    target = CurrentApp()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(target, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the loopback sandbox server did not start")
        time.sleep(0.01)
    try:
        yield LoopbackServer(f"http://127.0.0.1:{port}", target)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def sandbox() -> Sandbox:
    state = SandboxState(SandboxConfig(page_size=3))
    user, token = state.create_user("contract.tester@example.com")
    return Sandbox(state=state, app=create_app(state), token=token, user_id=user.id)


@pytest.fixture(params=["sync", "async"])
def api(
    request: pytest.FixtureRequest, sandbox: Sandbox, loopback_server: LoopbackServer
) -> Iterator[Api]:
    """A client authenticated as the sandbox's user; waits are recorded, not slept."""
    kind: str = request.param
    made: list[Client | AsyncClient] = []
    sleeps: list[float] = []

    with anyio.from_thread.start_blocking_portal() as portal:

        def make(**overrides: Any) -> Client | AsyncClient:
            settings: dict[str, Any] = {
                "api_token": sandbox.token,
                "retry": FAST_RETRY,
                "rate_limiter": Unlimited(),
            }
            settings.update(overrides)
            if "oauth" in overrides:
                settings.pop("api_token", None)
            if kind == "sync":
                settings.setdefault("base_url", loopback_server.base_url)
                client: Client | AsyncClient = Client(**settings)
                cast(Client, client)._sleep = sleeps.append
            else:
                settings.setdefault("base_url", ASGI_BASE_URL)
                settings.setdefault("transport", httpx.ASGITransport(app=sandbox.app))

                async def build() -> AsyncClient:
                    return AsyncClient(**settings)

                client = portal.call(build)

                async def record(delay: float) -> None:
                    sleeps.append(delay)

                cast(AsyncClient, client)._sleep = record
            made.append(client)
            return client

        loopback_server.target.app = sandbox.app
        try:
            client = make()
            base = loopback_server.base_url if kind == "sync" else ASGI_BASE_URL
            yield Api(kind, client, portal if kind == "async" else None, sleeps, base, make)
        finally:
            for each in made:
                if isinstance(each, Client):
                    each.close()
                else:
                    portal.call(each.aclose)
            loopback_server.target.app = None


@pytest.fixture
def survey_id(sandbox: Sandbox) -> str:
    """A seeded customer-satisfaction survey (MC, NPS, matrix, multi-select, text)."""
    return seed.customer_satisfaction(sandbox.state).id


@pytest.fixture
def oauth_client(sandbox: Sandbox) -> OAuthCredentials:
    client_id, secret = sandbox.state.add_oauth_client(sandbox.user_id)
    return OAuthCredentials(client_id, secret)


@pytest.fixture
def env(sandbox: Sandbox, loopback_server: LoopbackServer) -> Iterator[dict[str, str]]:
    """Environment for `qualflow q …` against the sandbox on the loopback server."""
    loopback_server.target.app = sandbox.app
    yield {
        "QUALTRICS_BASE_URL": loopback_server.base_url,
        "QUALTRICS_API_TOKEN": sandbox.token,
        "QUALTRICS_DATACENTER": "",
        "QUALTRICS_CLIENT_ID": "",
        "QUALTRICS_CLIENT_SECRET": "",
    }
    loopback_server.target.app = None
