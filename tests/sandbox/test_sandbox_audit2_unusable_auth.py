"""An Authorization header the API does not take is not answered as if none had been sent.

/API/v3 takes X-API-TOKEN or an OAuth bearer token; Basic ``username:token`` is only for JSON
events (research §1.2, §1.3, §6). The 400 ATP_2 stays, but its message must not say that no
authorization was provided when one was.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.sandbox.sandbox_support import assert_error

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("scheme", ["Basic", "Token", "Digest"])
async def test_unusable_authorization_scheme_is_named(
    anon: httpx.AsyncClient, token: str, scheme: str
) -> None:
    credentials = base64.b64encode(f"ana@example.com:{token}".encode()).decode()
    resp = await anon.get("/API/v3/whoami", headers={"Authorization": f"{scheme} {credentials}"})
    message = assert_error(resp, 400, "ATP_2")
    assert "none provided" not in message
    assert scheme in message
    assert "X-API-TOKEN" in message


async def test_no_authorization_keeps_the_real_message(anon: httpx.AsyncClient) -> None:
    message = assert_error(await anon.get("/API/v3/whoami"), 400, "ATP_2")
    assert message == "Expected authorization in headers, but none provided."
