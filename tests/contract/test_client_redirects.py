"""A server that answers an API call with a redirect (an http:// base URL sent on to https, a
moved host): the client does not follow it, with the token, and does not take it for success
either: a write would otherwise look done while nothing happened."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from qualflow.qualtrics.errors import UnexpectedResponse
from tests.contract.contract_support import Api, LoopbackServer

MOVED_TO = "https://moved.example.qualtrics.com"


async def moved(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{MOVED_TO}{request.url.path}", status_code=301)


REDIRECTOR = Starlette(
    routes=[Route("/{path:path}", moved, methods=["GET", "POST", "PUT", "DELETE"])]
)


def test_a_redirected_write_is_an_error_naming_where_it_pointed(
    api: Api, loopback_server: LoopbackServer
) -> None:
    if api.is_async:
        client = api.make(transport=httpx.ASGITransport(app=REDIRECTOR))
    else:
        loopback_server.target.app = REDIRECTOR
        client = api.client

    with pytest.raises(UnexpectedResponse) as caught:
        api(client.surveys.delete("SV_0123456789abcde"))

    message = str(caught.value)
    assert caught.value.status_code == 301
    assert f"redirecting to '{MOVED_TO}/API/v3/surveys/SV_0123456789abcde'" in message
    assert "nothing was done" in message
    with pytest.raises(UnexpectedResponse, match="configure it as base_url"):
        api(client.whoami())
