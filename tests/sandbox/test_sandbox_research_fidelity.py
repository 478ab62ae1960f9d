"""Behaviour the research notes (/work/shared/research) describe, checked over HTTP."""

from __future__ import annotations

import httpx
import pytest

from qualflow.sandbox import SandboxState

from .sandbox_support import assert_error

pytestmark = pytest.mark.anyio


async def _bearer(anon: httpx.AsyncClient, state: SandboxState) -> str:
    client_id, secret = state.add_oauth_client()
    resp = await anon.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


async def test_oauth_token_is_refused_by_a_host_that_proxies_to_another_datacenter(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, state: SandboxState
) -> None:
    # "OAuth tokens must be used against the datacenter where the client was created"; an API
    # token on the wrong host is proxied with a notice instead.
    bearer = {"Authorization": f"Bearer {await _bearer(anon, state)}"}
    assert (await anon.get("/API/v3/whoami", headers=bearer)).status_code == 200
    state.config.proxy_notice_host = "fra1.qualtrics.com"
    message = assert_error(await anon.get("/API/v3/whoami", headers=bearer), 401)
    assert "fra1.qualtrics.com" in message
    proxied = await client.get("/API/v3/whoami")
    assert proxied.status_code == 200
    assert proxied.json()["meta"]["notice"].endswith("fra1.qualtrics.com")
