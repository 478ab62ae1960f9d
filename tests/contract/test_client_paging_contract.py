"""Paging laziness and nextPage host checks, and the in-process sync transport."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest

from qualflow.qualtrics import Client, ForeignNextPage
from qualflow.qualtrics.transports import SyncASGITransport
from qualflow.sandbox import seed
from qualflow.sandbox.faults import FaultRule
from tests.contract.contract_support import Api, Sandbox


def _count_calls(sandbox: Sandbox, path: str) -> FaultRule:
    # A rule that only adds a negligible latency counts the calls reaching the sandbox.
    return sandbox.state.faults.add(FaultRule(path=path, latency=0.0001))


def test_pages_are_fetched_only_when_needed(api: Api, sandbox: Sandbox) -> None:
    for _ in range(7):
        seed.customer_satisfaction(sandbox.state)
    calls = _count_calls(sandbox, "/API/v3/surveys")
    pager = api.client.surveys.iter()
    assert calls.hits == 0  # creating the pager fetches nothing
    assert len(api.collect(pager, limit=2)) == 2
    assert calls.hits == 1
    assert len(api.collect(api.client.surveys.iter(), limit=4)) == 4
    assert calls.hits == 3
    assert len(api(api.client.surveys.list())) == 7
    assert calls.hits == 6


class RewriteHost(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """A misconfigured reverse proxy: the sandbox sees another Host and links pages there."""

    def __init__(self, inner: Any, host: str) -> None:
        self.inner = inner
        self.host = host

    def _rewrite(self, request: httpx.Request) -> httpx.Request:
        request.headers["Host"] = self.host
        return request

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return cast(httpx.Response, self.inner.handle_request(self._rewrite(request)))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return cast(httpx.Response, await self.inner.handle_async_request(self._rewrite(request)))

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_next_page_on_another_host_is_refused(api: Api, sandbox: Sandbox) -> None:
    for _ in range(4):
        seed.customer_satisfaction(sandbox.state)
    inner: Any = httpx.ASGITransport(app=sandbox.app) if api.is_async else httpx.HTTPTransport()
    client = api.make(transport=RewriteHost(inner, "mirror.example"))
    with pytest.raises(ForeignNextPage) as info:
        api(client.surveys.list())
    assert "mirror.example" in info.value.next_page
    assert info.value.expected_origin == api.base_url
    # The first page itself was fine: lists stop at the refusal, credentials never leave.
    assert len(api.collect(client.surveys.iter(), limit=3)) == 3


def test_sync_client_in_process(sandbox: Sandbox) -> None:
    survey_id = seed.customer_satisfaction(sandbox.state).id
    transport = SyncASGITransport(sandbox.app)
    with Client(base_url="http://sandbox.test", api_token=sandbox.token, transport=transport) as c:
        assert c.whoami().user_id == sandbox.user_id
        response_id = c.responses.create(survey_id, {"QID1": 5, "finished": 1})
        export = c.export_responses(survey_id, format="ndjson", compress=False)
        assert [row["responseId"] for row in export.iter_rows()] == [response_id]
        export.file_path.unlink()
