"""``on_retry``: the client tells its caller about each retry (attempt, wait, method, path,
status) as it happens, for faults the sandbox injects; the log records stay for library users."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from qualflow.qualtrics import (
    AsyncClient,
    Client,
    ConfigurationError,
    RateLimited,
    RetryEvent,
    RetryPolicy,
    ServerError,
    TransportError,
)
from qualflow.qualtrics.auth import OAuthCredentials
from qualflow.sandbox import seed
from qualflow.sandbox.faults import FaultRule
from tests.contract.contract_support import Api, Sandbox, closed_port


def _fault(sandbox: Sandbox, **rule: Any) -> FaultRule:
    return sandbox.state.faults.add(FaultRule(**rule))


def _summary(events: list[RetryEvent]) -> list[tuple[Any, ...]]:
    return [(e.attempt, e.delay, e.method, e.path, e.status_code, e.reason) for e in events]


def test_each_429_retry_is_reported_with_the_servers_wait(
    api: Api, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[RetryEvent] = []
    client = api.make(on_retry=events.append)
    _fault(sandbox, path="/API/v3/whoami", status=429, retry_after=2, count=2)
    with caplog.at_level(logging.WARNING, logger="qualflow.qualtrics"):
        assert api(client.whoami()).user_id == sandbox.user_id
    assert _summary(events) == [
        (1, 2.0, "GET", "/API/v3/whoami", 429, "HTTP 429"),
        (2, 2.0, "GET", "/API/v3/whoami", 429, "HTTP 429"),
    ]
    assert all(isinstance(e.error, RateLimited) for e in events)
    assert api.sleeps == [2.0, 2.0]  # reported before each wait, one report per wait
    # The log records are still there for whoever reads the library's log.
    retries = [r for r in caplog.records if r.name == "qualflow.qualtrics"]
    assert len(retries) == 2


def test_server_errors_are_reported_until_the_client_gives_up(
    api: Api, sandbox: Sandbox, survey_id: str
) -> None:
    events: list[RetryEvent] = []
    client = api.make(on_retry=events.append)  # FAST_RETRY: 4 attempts
    _fault(sandbox, path="/API/v3/surveys/*", status=503)
    with pytest.raises(ServerError):
        api(client.surveys.get(survey_id))
    assert [(e.attempt, e.status_code) for e in events] == [(1, 503), (2, 503), (3, 503)]
    assert {e.path for e in events} == {f"/API/v3/surveys/{survey_id}"}
    assert [e.delay for e in events] == api.sleeps


def test_a_post_that_is_safe_to_repeat_is_reported_with_its_method(
    api: Api, sandbox: Sandbox, survey_id: str
) -> None:
    events: list[RetryEvent] = []
    client = api.make(on_retry=events.append)
    _fault(sandbox, path="/API/v3/surveys/*/export-responses", method="POST", status=500, count=1)
    assert api(client.exports.start(survey_id, format="csv")).progress_id
    assert _summary(events) == [
        (1, api.sleeps[0], "POST", f"/API/v3/surveys/{survey_id}/export-responses", 500, "HTTP 500")
    ]


def test_a_retried_oauth_token_request_is_reported(
    api: Api, sandbox: Sandbox, oauth_client: OAuthCredentials
) -> None:
    events: list[RetryEvent] = []
    client = api.make(oauth=oauth_client, on_retry=events.append)
    _fault(sandbox, path="/oauth2/token", status=503, count=1)
    assert api(client.whoami()).user_id == sandbox.user_id
    assert [(e.method, e.path, e.status_code) for e in events] == [("POST", "/oauth2/token", 503)]


def test_the_path_of_a_next_page_link_has_no_query(api: Api, sandbox: Sandbox) -> None:
    for _ in range(4):  # page_size 3: two pages
        seed.customer_satisfaction(sandbox.state)
    events: list[RetryEvent] = []
    client = api.make(on_retry=events.append)
    # Spent until the first page is in: then it fails the second, whose link has a query.
    rule = _fault(sandbox, path="/API/v3/surveys", status=429, retry_after=0, count=0)
    pages = client.surveys.iter().pages()

    def arm(page: Any) -> Any:
        rule.count = 1
        return page

    if isinstance(client, AsyncClient):
        assert api.portal is not None

        async def collect() -> list[Any]:
            return [arm(page) async for page in cast(AsyncIterator[Any], pages)]

        got = api.portal.call(collect)
    else:
        got = [arm(page) for page in cast(Iterator[Any], pages)]
    assert len(got) == 2
    assert _summary(events) == [(1, 0.0, "GET", "/API/v3/surveys", 429, "HTTP 429")]


def test_a_hook_that_raises_ends_the_request_with_its_error(api: Api, sandbox: Sandbox) -> None:
    class Enough(Exception):
        pass

    def refuse(event: RetryEvent) -> None:
        raise Enough(event.reason)

    client = api.make(on_retry=refuse)
    rule = _fault(sandbox, path="/API/v3/whoami", status=429, retry_after=1)
    with pytest.raises(Enough, match="HTTP 429"):
        api(client.whoami())
    assert rule.hits == 1
    assert api.sleeps == []


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_network_errors_are_reported_without_a_status(kind: str) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
    events: list[RetryEvent] = []
    url = f"http://127.0.0.1:{closed_port()}"
    settings: dict[str, Any] = {
        "base_url": url,
        "api_token": "t" * 40,
        "retry": policy,
        "on_retry": events.append,
    }
    if kind == "sync":
        with Client(**settings) as client, pytest.raises(TransportError):
            client.whoami()
    else:

        async def main() -> None:
            async with AsyncClient(**settings) as client:
                await client.whoami()

        with pytest.raises(TransportError):
            anyio.run(main)
    assert _summary(events) == [
        (1, 0.0, "GET", "/API/v3/whoami", None, "network error"),
        (2, 0.0, "GET", "/API/v3/whoami", None, "network error"),
    ]


def test_the_hook_may_be_set_after_the_client_is_made(api: Api, sandbox: Sandbox) -> None:
    events: list[RetryEvent] = []
    api.client.on_retry = events.append
    _fault(sandbox, path="/API/v3/whoami", status=500, count=1)
    api(api.client.whoami())
    assert [e.status_code for e in events] == [500]


def test_an_async_client_awaits_an_async_hook(api: Api, sandbox: Sandbox) -> None:
    if not api.is_async:
        pytest.skip("the sync client refuses an async hook (next test)")
    events: list[RetryEvent] = []

    async def note(event: RetryEvent) -> None:
        await anyio.lowlevel.checkpoint()  # a real await: the hook runs in the loop
        events.append(event)

    client = api.make(on_retry=note)
    _fault(sandbox, path="/API/v3/whoami", status=429, retry_after=1, count=1)
    assert api(client.whoami()).user_id == sandbox.user_id
    assert [(e.attempt, e.status_code) for e in events] == [(1, 429)]


def test_a_sync_client_refuses_an_async_hook_instead_of_dropping_it(
    sandbox: Sandbox, loopback_server: Any
) -> None:
    async def note(event: RetryEvent) -> None:
        raise AssertionError("never run")

    loopback_server.target.app = sandbox.app
    _fault(sandbox, path="/API/v3/whoami", status=503, count=1)
    client = Client(
        base_url=loopback_server.base_url,
        api_token=sandbox.token,
        on_retry=note,  # type: ignore[arg-type]
    )
    # No "coroutine was never awaited" warning either (warnings are errors here).
    try:
        with client, pytest.raises(ConfigurationError, match="on_retry returned an awaitable"):
            client.whoami()
    finally:
        loopback_server.target.app = None
