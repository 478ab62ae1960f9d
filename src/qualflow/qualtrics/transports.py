"""Transports for talking to an ASGI app (such as the qualflow sandbox) without a network.

``httpx.ASGITransport`` serves ``AsyncClient``; :class:`SyncASGITransport` gives the sync
``Client`` the same in-process seam by running the app on an event loop in a helper thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import httpx

__all__ = ["SyncASGITransport"]

T = TypeVar("T")


class SyncASGITransport(httpx.BaseTransport):
    """Serve sync ``httpx``/``Client`` requests from an ASGI app, in-process.

    >>> transport = SyncASGITransport(sandbox_app)
    >>> client = Client(base_url="http://sandbox.test", api_token=token, transport=transport)

    The app runs on one event loop in a background thread (started on first use, stopped by
    :meth:`close`), so app state bound to a loop stays on that loop. Response bodies are read
    completely before they are returned, as with ``httpx.ASGITransport``.
    """

    def __init__(self, app: Callable[..., Any], *, root_path: str = "") -> None:
        self._inner = httpx.ASGITransport(app=app, root_path=root_path)
        self._lock = threading.Lock()
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None

    def _call(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        with self._lock:
            portal = self._portal
            if portal is None:
                self._portal_cm = anyio.from_thread.start_blocking_portal()
                portal = self._portal = self._portal_cm.__enter__()
        result: T = portal.call(fn)
        return result

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            async_request = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                content=body,
                extensions=request.extensions,
            )
            response = await self._inner.handle_async_request(async_request)
            content = await response.aread()
            await response.aclose()
            return response.status_code, response.headers.raw, content

        status, headers, content = self._call(send)
        # As a stream, not as content: the body then passes through httpx's byte counting
        # (num_bytes_downloaded, what download progress reports) and gets no Content-Length
        # the app did not send, exactly as over httpx.ASGITransport or a socket.
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(content), request=request
        )

    def close(self) -> None:
        with self._lock:
            portal_cm, self._portal_cm, self._portal = self._portal_cm, None, None
        if portal_cm is not None:
            portal_cm.__exit__(None, None, None)
