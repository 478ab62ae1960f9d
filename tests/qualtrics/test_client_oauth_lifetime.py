"""OAuth token lifetimes: ``expires_in`` of 0 or less means "use once", anything that is not a
number means the default hour, and neither makes the client loop on, or hammer, the token
endpoint.

The sandbox issues the tokens and answers every API call. It cannot send ``expires_in`` values
that are not numbers, and the tokens it issues with a TTL of 0 are already dead when they are
used (the contract tests cover that case), so an ``httpx.MockTransport`` passes every request
to the sandbox and only rewrites ``expires_in`` in the token endpoint's answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest

from qualflow.qualtrics import AsyncClient, Client, Unlimited
from qualflow.qualtrics._core import Envelope
from qualflow.qualtrics.auth import OAuthCredentials, OAuthSession
from qualflow.qualtrics.models import Meta
from qualflow.qualtrics.transports import SyncASGITransport
from qualflow.sandbox import create_app
from qualflow.sandbox.faults import FaultRule
from qualflow.sandbox.state import SandboxState

BASE_URL = "http://sandbox.test"
TOKEN_PATH = "/oauth2/token"

#: ``expires_in`` as JSON text, and the lifetime the client must give the token.
SINGLE_USE = ["0", "-60", "-1e9", '"0"', '"-5"', "0.0"]
NOT_A_NUMBER = ["null", '"soon"', "true", "false", "[]", "{}", '""', "NaN", "Infinity", "1e400"]


def _rewritten(body: bytes, expires_in: str) -> bytes:
    """The token answer ``body`` with ``expires_in`` replaced by the raw JSON ``expires_in``
    (raw, so that NaN or 1e400 reach the client as a server would send them)."""
    data = json.loads(body)
    data["expires_in"] = "@EXPIRES_IN@"
    return json.dumps(data).replace('"@EXPIRES_IN@"', expires_in).encode()


class Sandbox:
    def __init__(self) -> None:
        self.state = SandboxState()
        user, _ = self.state.create_user("oauth.tester@example.com")
        self.client_id, self.secret = self.state.add_oauth_client(user.id)
        self.app = create_app(self.state)
        self.token_requests = 0

    @property
    def credentials(self) -> OAuthCredentials:
        return OAuthCredentials(self.client_id, self.secret)

    def slow_token_endpoint(self, seconds: float) -> None:
        self.state.faults.add(FaultRule(path=TOKEN_PATH, latency=seconds))

    def sync_client(self, expires_in: str) -> Client:
        inner = SyncASGITransport(self.app)

        def handle(request: httpx.Request) -> httpx.Response:
            response = inner.handle_request(request)
            if request.url.path != TOKEN_PATH or response.status_code != 200:
                return response
            self.token_requests += 1
            body = _rewritten(response.read(), expires_in)
            return httpx.Response(200, content=body, headers={"content-type": "application/json"})

        return Client(
            base_url=BASE_URL,
            oauth=self.credentials,
            transport=httpx.MockTransport(handle),
            rate_limiter=Unlimited(),
        )

    def async_client(self, expires_in: str) -> AsyncClient:
        inner = httpx.ASGITransport(app=self.app)

        async def handle(request: httpx.Request) -> httpx.Response:
            response = await inner.handle_async_request(request)
            if request.url.path != TOKEN_PATH or response.status_code != 200:
                return response
            self.token_requests += 1
            body = _rewritten(await response.aread(), expires_in)
            return httpx.Response(200, content=body, headers={"content-type": "application/json"})

        return AsyncClient(
            base_url=BASE_URL,
            oauth=self.credentials,
            transport=httpx.MockTransport(handle),
            rate_limiter=Unlimited(),
        )


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox()


def _run_async(client: AsyncClient, body: Callable[[AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with client:
            await body(client)

    anyio.run(main)


# -- the lifetime read from the token answer ----------------------------------------------------


def _lifetime(body: dict[str, Any]) -> tuple[float, bool]:
    session = OAuthSession(OAuthCredentials("id", "secret"), "https://x/oauth2/token")
    envelope = Envelope(200, body, Meta(), httpx.Headers(), body)
    token = session.token_call().parse(envelope)
    return token.lifetime, token.single_use


@pytest.mark.parametrize(
    ("expires_in", "lifetime", "single_use"),
    [
        (3600, 3600.0, False),
        (120.5, 120.5, False),
        ("900", 900.0, False),
        (0, 0.0, True),
        (-30, 0.0, True),
        ("0", 0.0, True),
        (None, 3600.0, False),
        ("soon", 3600.0, False),
        (True, 3600.0, False),
        ([60], 3600.0, False),
        (float("nan"), 3600.0, False),
        (float("inf"), 3600.0, False),
        # Arabic-Indic "120" and full-width "60": float() reads them, a server never means them.
        ("١٢٠", 3600.0, False),
        ("６０", 3600.0, False),
        ("1e3", 3600.0, False),
        (10**400, 3600.0, False),  # a JSON integer too big for a float
    ],
)
def test_expires_in_is_a_lifetime_a_single_use_or_the_default(
    expires_in: Any, lifetime: float, single_use: bool
) -> None:
    assert _lifetime({"access_token": "t", "expires_in": expires_in}) == (lifetime, single_use)


def test_missing_expires_in_is_the_default_hour() -> None:
    assert _lifetime({"access_token": "t"}) == (3600.0, False)


# -- against the sandbox -------------------------------------------------------------------------


@pytest.mark.parametrize("expires_in", SINGLE_USE)
def test_a_token_that_expires_now_serves_one_request_each(
    sandbox: Sandbox, expires_in: str
) -> None:
    with sandbox.sync_client(expires_in) as client:
        for _ in range(3):
            assert client.whoami().brand_id
    # One fetch per request: never cached, never fetched twice for one request.
    assert sandbox.token_requests == 3


@pytest.mark.parametrize("expires_in", SINGLE_USE)
def test_a_token_that_expires_now_serves_one_request_each_async(
    sandbox: Sandbox, expires_in: str
) -> None:
    async def body(client: AsyncClient) -> None:
        for _ in range(3):
            assert (await client.whoami()).brand_id

    _run_async(sandbox.async_client(expires_in), body)
    assert sandbox.token_requests == 3


@pytest.mark.parametrize("expires_in", NOT_A_NUMBER)
def test_an_expires_in_that_is_not_a_number_is_the_default_hour(
    sandbox: Sandbox, expires_in: str
) -> None:
    with sandbox.sync_client(expires_in) as client:
        for _ in range(3):
            assert client.whoami().brand_id
        assert client._oauth is not None
        token = client._oauth.current()
        assert token is not None
        assert token.lifetime == 3600.0
    assert sandbox.token_requests == 1


@pytest.mark.parametrize("expires_in", NOT_A_NUMBER)
def test_an_expires_in_that_is_not_a_number_is_the_default_hour_async(
    sandbox: Sandbox, expires_in: str
) -> None:
    async def body(client: AsyncClient) -> None:
        for _ in range(3):
            assert (await client.whoami()).brand_id

    _run_async(sandbox.async_client(expires_in), body)
    assert sandbox.token_requests == 1


def test_concurrent_threads_share_one_fetch_of_a_single_use_token(sandbox: Sandbox) -> None:
    # The fetch takes a while, so that every thread asks for a token while it runs.
    sandbox.slow_token_endpoint(0.3)
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []
    with sandbox.sync_client("0") as client:

        def call() -> None:
            try:
                barrier.wait()
                client.whoami()
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sandbox.token_requests == 1
        # …and the next request does not reuse it.
        client.whoami()
    assert sandbox.token_requests == 2


def test_concurrent_tasks_share_one_fetch_of_a_single_use_token(sandbox: Sandbox) -> None:
    sandbox.slow_token_endpoint(0.1)

    async def body(client: AsyncClient) -> None:
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(client.whoami)
        assert sandbox.token_requests == 1
        await client.whoami()

    _run_async(sandbox.async_client("-1"), body)
    assert sandbox.token_requests == 2
