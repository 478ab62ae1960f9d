"""A 405 names the methods the path does serve, in the ``Allow`` header (RFC 9110 §15.5.6)."""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox.sandbox_support import assert_error

pytestmark = pytest.mark.anyio


def _methods(allow: str) -> set[str]:
    return {m.strip() for m in allow.split(",")}


@pytest.mark.parametrize(
    ("method", "path", "served"),
    [
        # Paths served by several routes (one per method): every one of them is named.
        ("PATCH", "/API/v3/surveys", {"GET", "POST"}),
        ("PATCH", "/API/v3/surveys/SV_abcdefghijklmno", {"GET", "PUT", "DELETE"}),
        ("PUT", "/API/v3/eventsubscriptions/SUB_abcdefghijklmno", {"GET", "DELETE"}),
        ("POST", "/API/v3/whoami", {"GET"}),
        ("GET", "/oauth2/token", {"POST"}),
        ("GET", "/inbound-event/v1/events/json/triggers", {"POST"}),
    ],
)
async def test_405_lists_the_served_methods(
    client: httpx.AsyncClient, method: str, path: str, served: set[str]
) -> None:
    resp = await client.request(method, path)
    message = assert_error(resp, 405)
    allowed = _methods(resp.headers["allow"]) - {"HEAD"}
    assert allowed == served
    for name in served:
        assert name in message
