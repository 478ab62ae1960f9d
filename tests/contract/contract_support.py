"""Helpers of the client contract tests (imported by conftest and the tests)."""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import anyio
import anyio.from_thread
import httpx

from qualflow.qualtrics import AsyncClient, Client, RetryPolicy
from qualflow.sandbox.state import SandboxState

T = TypeVar("T")

ASGI_BASE_URL = "http://sandbox.test"
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_elapsed=30.0)


class CurrentApp:
    """An ASGI app that forwards to whichever sandbox the running test installed."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            # The server outlives the per-test apps; their lifespans are not needed.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.app is not None, "no sandbox installed for this test"
        await self.app(scope, receive, send)


@dataclass
class LoopbackServer:
    base_url: str
    target: CurrentApp


@dataclass
class Sandbox:
    """A fresh sandbox for one test: its state, app and the default user's API token."""

    state: SandboxState
    app: Any
    token: str
    user_id: str


@dataclass
class Api:
    """One client (sync or async) plus helpers that make a test body work with either."""

    kind: str
    client: Client | AsyncClient
    portal: anyio.from_thread.BlockingPortal | None
    sleeps: list[float] = field(default_factory=list)
    base_url: str = ""
    _make: Callable[..., Client | AsyncClient] | None = None

    @property
    def is_async(self) -> bool:
        return self.kind == "async"

    def __call__(self, value: T | Awaitable[T]) -> T:
        """The value of a client call: awaited (in the portal's loop) when it is a coroutine."""
        if inspect.isawaitable(value):
            assert self.portal is not None
            awaitable = cast(Awaitable[T], value)

            async def wait() -> T:
                return await awaitable

            return self.portal.call(wait)
        return cast(T, value)

    def collect(self, pager: Iterable[T] | Any, limit: int | None = None) -> list[T]:
        """All elements of a pager (sync or async)."""
        if self.is_async:
            return self(pager.take(limit))  # type: ignore[no-any-return]
        return cast(list[T], pager.take(limit))

    def pages(self, pager: Any) -> list[Any]:
        if self.is_async:

            async def gather() -> list[Any]:
                return [page async for page in cast(AsyncIterator[Any], pager.pages())]

            assert self.portal is not None
            return self.portal.call(gather)
        return list(pager.pages())

    def real_sleep(self) -> None:
        """Let this client really wait (for tests that wait on the sandbox's own clock)."""
        if isinstance(self.client, Client):
            self.client._sleep = time.sleep
        else:
            self.client._sleep = anyio.sleep

    def make(self, **overrides: Any) -> Client | AsyncClient:
        """Another client of the same kind against the same sandbox (closed after the test)."""
        assert self._make is not None
        return self._make(**overrides)


class StripAuthTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Delivers requests to the real sandbox without their credentials (the ATP_2 path)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @staticmethod
    def _strip(request: httpx.Request) -> httpx.Request:
        for name in ("X-API-TOKEN", "Authorization"):
            if name in request.headers:
                del request.headers[name]
        return request

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return cast(httpx.Response, self.inner.handle_request(self._strip(request)))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return cast(httpx.Response, await self.inner.handle_async_request(self._strip(request)))

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()


def run_cli(args: list[str], env: dict[str, str]) -> Any:
    """``qualflow`` with ``args`` in-process (typer's runner), with ``env`` set."""
    from typer.testing import CliRunner

    from qualflow.cli import app

    return CliRunner().invoke(app, args, env=env)


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, read and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
