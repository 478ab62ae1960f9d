"""A small async client for Tango's RaaS API v2: catalog, account balance, orders, resends.

Authentication is HTTP Basic with the platform name and platform key. Every request first waits
for a slot of the shared rate limit (``throttle``). Server errors (5xx), 429 and transport
failures are retried — an order with the same body, so the same ``externalRefID``, which Tango
answers with the original order instead of a second one. Client errors (4xx) are never retried:
they carry Tango's own messages, which :class:`TangoError` keeps for people to read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from qualflow.qualtrics.retry import parse_retry_after
from qualflow.tls import verified_context

API_PATH = "/raas/v2"
SANDBOX_BASE_URL = "https://integration-api.tangocard.com"
PRODUCTION_BASE_URL = "https://api.tangocard.com"

Throttle = Callable[[], Awaitable[None]]


class TangoError(Exception):
    """Tango refused or failed a request.

    ``messages`` are Tango's own explanations (from ``errors[].message``), ``retriable`` tells
    whether sending the same request again later may succeed (5xx, 429, network).
    """

    def __init__(
        self,
        status_code: int | None,
        messages: list[str],
        *,
        request_id: str | None = None,
        retriable: bool,
        retry_after: float | None = None,
        constraints: list[str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.messages = messages
        self.request_id = request_id
        self.retriable = retriable
        self.retry_after = retry_after
        self.constraints = constraints or []
        detail = "; ".join(messages) or "no details"
        suffix = f" (request id {request_id})" if request_id else ""
        if status_code:
            super().__init__(f"Tango answered HTTP {status_code}: {detail}{suffix}")
        else:
            super().__init__(f"Tango could not be reached: {detail}")


def _error_from(response: httpx.Response) -> TangoError:
    messages: list[str] = []
    constraints: list[str] = []
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        request_id = str(body.get("requestId") or request_id or "") or None
        for item in body.get("errors") or []:
            if not isinstance(item, dict):
                continue
            message = str(item.get("message") or "").strip()
            path = str(item.get("path") or "").strip()
            if message:
                messages.append(f"{path}: {message}" if path else message)
            if item.get("constraint"):
                constraints.append(str(item["constraint"]))
        if not messages:
            phrase = body.get("httpPhrase") or body.get("message") or body.get("error")
            if phrase:
                messages.append(str(phrase))
    if not messages:
        text = response.text.strip()
        messages.append(text[:300] if text else response.reason_phrase or "error")
    # Delta-seconds or an HTTP date, read as the Qualtrics client reads it (NaN, "inf" and
    # other digits than ASCII are no wait).
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    status = response.status_code
    return TangoError(
        status,
        messages,
        request_id=request_id,
        retriable=status >= 500 or status == 429,
        retry_after=retry_after,
        constraints=constraints,
    )


class TangoClient:
    """One platform's view of a Tango RaaS v2 API (``base_url`` + ``/raas/v2``)."""

    def __init__(
        self,
        base_url: str,
        platform_name: str,
        platform_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        throttle: Throttle | None = None,
        on_rate_limited: Callable[[float], Awaitable[None]] | None = None,
        max_attempts: int = 3,
        backoff: float = 1.0,
        timeout: float = 30.0,
    ) -> None:
        self._throttle = throttle
        #: Told the seconds of a 429's Retry-After, so that the shared limit holds back too.
        self._on_rate_limited = on_rate_limited
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + API_PATH,
            auth=httpx.BasicAuth(platform_name, platform_key),
            transport=transport,
            verify=verified_context(),
            timeout=timeout,
            headers={"Accept": "application/json"},
        )

    async def __aenter__(self) -> TangoClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        last: TangoError | None = None
        for attempt in range(1, self._max_attempts + 1):
            if self._throttle is not None:
                await self._throttle()
            try:
                response = await self._http.request(method, path, json=json, params=params)
            except httpx.TransportError as exc:
                last = TangoError(
                    None, [f"{type(exc).__name__}: {exc}".rstrip(": ")], retriable=True
                )
            else:
                if response.status_code < 400:
                    return response
                last = _error_from(response)
                if last.status_code == 429 and last.retry_after and self._on_rate_limited:
                    await self._on_rate_limited(last.retry_after)
                if not last.retriable:
                    raise last
            if attempt < self._max_attempts:
                # Tango asks for at least a second between a failure and its retry.
                delay = max(1.0 * (self._backoff > 0), self._backoff * 2 ** (attempt - 1))
                if last.retry_after is not None:
                    delay = max(delay, last.retry_after)
                await asyncio.sleep(delay)
        assert last is not None
        raise last

    async def get_catalog(self) -> dict[str, Any]:
        response = await self._request("GET", "/catalogs", params={"verbose": "true"})
        data: dict[str, Any] = response.json()
        return data

    async def get_account(self, account_id: str) -> dict[str, Any]:
        response = await self._request("GET", f"/accounts/{account_id}")
        data: dict[str, Any] = response.json()
        return data

    async def create_order(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Place an order; returns it and whether it is new (201) or a repeat (200)."""
        response = await self._request("POST", "/orders", json=body)
        data: dict[str, Any] = response.json()
        return data, response.status_code == 201

    async def get_order(self, reference_order_id: str) -> dict[str, Any]:
        response = await self._request("GET", f"/orders/{reference_order_id}")
        data: dict[str, Any] = response.json()
        return data

    async def find_orders(self, **filters: Any) -> dict[str, Any]:
        response = await self._request("GET", "/orders", params=filters)
        data: dict[str, Any] = response.json()
        return data

    async def resend(self, reference_order_id: str, new_email: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"newEmail": new_email} if new_email else {}
        response = await self._request("POST", f"/orders/{reference_order_id}/resends", json=body)
        data: dict[str, Any] = response.json() if response.content else {}
        return data
