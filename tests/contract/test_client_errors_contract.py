"""Error paths, retries, OAuth and notices: the client against the sandbox's real answers."""

from __future__ import annotations

import socket
import threading
from typing import Any

import anyio
import httpx
import pytest

from qualflow.qualtrics import (
    AsyncClient,
    AuthError,
    BadRequest,
    Client,
    DatacenterNotice,
    RateLimited,
    RateLimiter,
    RateLimiterBusy,
    RetryPolicy,
    ServerError,
    TransportError,
    Unlimited,
)
from qualflow.qualtrics.auth import OAuthCredentials
from qualflow.sandbox.faults import FaultRule
from tests.contract.contract_support import Api, Sandbox, StripAuthTransport


def _fault(sandbox: Sandbox, **rule: Any) -> FaultRule:
    return sandbox.state.faults.add(FaultRule(**rule))


# -- authentication errors -----------------------------------------------------------------


def test_no_credentials_is_atp_2(api: Api, sandbox: Sandbox) -> None:
    inner: Any = httpx.ASGITransport(app=sandbox.app) if api.is_async else httpx.HTTPTransport()
    client = api.make(transport=StripAuthTransport(inner))
    with pytest.raises(AuthError) as info:
        api(client.whoami())
    assert info.value.status_code == 400
    assert info.value.error_code == "ATP_2"
    assert "authorization" in (info.value.error_message or "").lower()


def test_unknown_token_is_dcd_7(api: Api) -> None:
    client = api.make(api_token="not-a-real-token-0123456789abcdefghijkl")
    with pytest.raises(AuthError) as info:
        api(client.whoami())
    error = info.value
    assert (error.status_code, error.error_code) == (401, "DCD_7")
    assert error.error_message == "Unrecognized X-API-TOKEN."
    assert error.request_id
    assert not error.retriable


def test_bad_body_is_a_bad_request_naming_the_field(api: Api) -> None:
    with pytest.raises(BadRequest) as info:
        api(api.client.event_subscriptions.create("no.such.topic", "https://hooks.example/q"))
    error = info.value
    assert error.status_code == 400
    assert "topics" in (error.error_message or "")
    assert error.request_id
    assert not error.retriable


# -- retries --------------------------------------------------------------------------------


def test_429_is_retried_honouring_retry_after(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    rule = _fault(sandbox, path="/API/v3/surveys/*", status=429, retry_after=3, count=2)
    survey = api(api.client.surveys.get(survey_id))
    assert survey.id == survey_id
    assert rule.hits == 2
    assert api.sleeps == [3.0, 3.0]


def test_503_with_retry_after_is_retried(api: Api, sandbox: Sandbox) -> None:
    rule = _fault(sandbox, path="/API/v3/whoami", status=503, retry_after=2, count=1)
    assert api(api.client.whoami()).user_id == sandbox.user_id
    assert rule.hits == 1
    assert api.sleeps == [2.0]


@pytest.mark.parametrize("status", [500, 503, 504])
def test_server_errors_are_retried_with_jittered_backoff(
    api: Api, sandbox: Sandbox, status: int
) -> None:
    rule = _fault(sandbox, path="/API/v3/surveys", status=status, count=2)
    assert api(api.client.surveys.list()) == []
    assert rule.hits == 2
    assert len(api.sleeps) == 2
    assert all(0 <= s <= 0.05 for s in api.sleeps)  # FAST_RETRY caps backoff at 50 ms


def test_retries_stop_at_max_attempts(api: Api, sandbox: Sandbox) -> None:
    rule = _fault(sandbox, path="/API/v3/whoami", status=503)
    with pytest.raises(ServerError) as info:
        api(api.client.whoami())
    assert info.value.status_code == 503
    assert info.value.retriable
    assert rule.hits == 4  # FAST_RETRY.max_attempts
    assert len(api.sleeps) == 3


def test_rate_limit_hint_too_long_is_raised_with_retry_after(api: Api, sandbox: Sandbox) -> None:
    _fault(sandbox, path="/API/v3/whoami", status=429, retry_after=600, count=1)
    client = api.make(retry=RetryPolicy(max_retry_after=60))
    with pytest.raises(RateLimited) as info:
        api(client.whoami())
    assert info.value.retry_after == 600
    assert api.sleeps == []


def test_post_is_not_retried_on_server_error(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    rule = _fault(sandbox, method="POST", path="/API/v3/surveys/*/responses", status=503, count=1)
    with pytest.raises(ServerError):
        api(api.client.responses.create(survey_id, {"QID1": 1, "finished": 1}))
    assert rule.hits == 1
    assert api.sleeps == []


def test_post_is_retried_on_429(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    _fault(sandbox, method="POST", path="/API/v3/surveys/*/responses", status=429, count=1)
    response_id = api(api.client.responses.create(survey_id, {"QID1": 1, "finished": 1}))
    assert response_id.startswith("R_")
    assert api.sleeps == [1.0]


def test_post_with_idempotency_key_is_retried_on_server_error(
    api: Api, sandbox: Sandbox, survey_id: str
) -> None:
    rule = _fault(sandbox, method="POST", path="/API/v3/surveys/*/responses", status=500, count=1)
    response_id = api(
        api.client.responses.create(
            survey_id, {"QID1": 1, "finished": 1}, idempotency_key="import-1"
        )
    )
    assert rule.hits == 1
    assert len(api.sleeps) == 1
    assert api(api.client.responses.get(survey_id, response_id)).response_id == response_id
    assert api(api.client.surveys.get(survey_id)).response_counts.auditable == 1


def test_export_start_is_safe_to_retry(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    rule = _fault(
        sandbox, method="POST", path="/API/v3/surveys/*/export-responses", status=503, count=1
    )
    done = api(api.client.export_responses(survey_id, format="json"))
    assert rule.hits == 1
    assert done.file_id
    done.file_path.unlink()


def test_429_pauses_a_shared_limiter(api: Api, sandbox: Sandbox) -> None:
    class RecordingLimiter(Unlimited):
        def __init__(self) -> None:
            self.pauses: list[float] = []

        def pause(self, seconds: float) -> None:
            self.pauses.append(seconds)

    limiter = RecordingLimiter()
    client = api.make(rate_limiter=limiter)
    _fault(sandbox, path="/API/v3/whoami", status=429, retry_after=5, count=1)
    api(client.whoami())
    assert limiter.pauses == [5.0]


def test_a_request_the_limiter_would_hold_too_long_is_refused_unsent(
    api: Api, sandbox: Sandbox
) -> None:
    sent = _fault(sandbox, path="/API/v3/whoami", latency=0.001)  # counts what reaches it
    frozen = RateLimiter(60, burst=1, clock=lambda: 100.0)  # one a second, time standing still
    client = api.make(rate_limiter=frozen, max_rate_limit_wait=0.5)
    api(client.whoami())
    with pytest.raises(RateLimiterBusy) as info:
        api(client.whoami())
    assert info.value.retry_after == pytest.approx(1.0)
    assert sent.hits == 1
    assert api.sleeps == []  # not retried either: the wait is what the caller declined


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connect_errors_are_retried_even_for_posts() -> None:
    port = _closed_port()
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01)
    with Client(base_url=f"http://127.0.0.1:{port}", api_token="t" * 40, retry=policy) as client:
        client._sleep = sleeps.append
        with pytest.raises(TransportError) as info:
            client.responses.create("SV_000000000000000", {"QID1": 1})
    assert not info.value.request_sent
    assert info.value.retriable
    assert len(sleeps) == 2

    async def main() -> None:
        async with AsyncClient(
            base_url=f"http://127.0.0.1:{port}", api_token="t" * 40, retry=policy
        ) as client:

            async def record(delay: float) -> None:
                sleeps.append(delay)

            client._sleep = record
            with pytest.raises(TransportError):
                await client.whoami()

    sleeps.clear()
    anyio.run(main)
    assert len(sleeps) == 2


def test_timeouts_are_retried_for_reads_only(sandbox: Sandbox, loopback_server: Any) -> None:
    loopback_server.target.app = sandbox.app
    _fault(sandbox, path="/API/v3/whoami", hang=2.0, count=1)
    rule = _fault(sandbox, method="POST", path="/API/v3/surveys/*/responses", hang=2.0, count=1)
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01)
    with Client(
        base_url=loopback_server.base_url, api_token=sandbox.token, retry=policy, timeout=0.3
    ) as client:
        client._sleep = sleeps.append
        assert client.whoami().user_id == sandbox.user_id
        assert len(sleeps) == 1
        with pytest.raises(TransportError) as info:
            client.responses.create("SV_000000000000000", {"QID1": 1})
        # The POST may have been processed: it is not repeated.
        assert info.value.request_sent
        assert rule.hits == 1
        assert len(sleeps) == 1
    loopback_server.target.app = None


# -- OAuth ------------------------------------------------------------------------------------


def test_oauth_token_is_fetched_once_and_reused(
    api: Api, sandbox: Sandbox, oauth_client: OAuthCredentials
) -> None:
    client = api.make(oauth=oauth_client)
    for _ in range(3):
        assert api(client.whoami()).user_id == sandbox.user_id
    assert len(sandbox.state.access_tokens) == 1


def test_revoked_oauth_token_is_renewed_once(
    api: Api, sandbox: Sandbox, oauth_client: OAuthCredentials
) -> None:
    client = api.make(oauth=oauth_client)
    api(client.whoami())
    sandbox.state.access_tokens.clear()  # revoked on the server's side
    assert api(client.whoami()).user_id == sandbox.user_id
    assert len(sandbox.state.access_tokens) == 1


def test_wrong_oauth_secret_is_an_auth_error(api: Api, oauth_client: OAuthCredentials) -> None:
    client = api.make(oauth=OAuthCredentials(oauth_client.client_id, "wrong-secret"))
    with pytest.raises(AuthError) as info:
        api(client.whoami())
    assert info.value.status_code == 401
    assert info.value.error_code == "invalid_client"


def test_oauth_scope_is_sent(api: Api, sandbox: Sandbox) -> None:
    client_id, secret = sandbox.state.add_oauth_client(
        sandbox.user_id, scopes=["read:surveys", "read:users"]
    )
    ok = api.make(oauth=OAuthCredentials(client_id, secret, scope=["read:surveys"]))
    assert api(ok.whoami()).user_id == sandbox.user_id
    assert [t.scope for t in sandbox.state.access_tokens.values()] == ["read:surveys"]
    denied = api.make(oauth=OAuthCredentials(client_id, secret, scope="manage:all"))
    with pytest.raises(BadRequest) as info:
        api(denied.whoami())
    assert info.value.error_code == "invalid_scope"


def test_concurrent_threads_share_one_oauth_token(
    sandbox: Sandbox, loopback_server: Any, oauth_client: OAuthCredentials
) -> None:
    loopback_server.target.app = sandbox.app
    errors: list[BaseException] = []
    with Client(base_url=loopback_server.base_url, oauth=oauth_client) as client:

        def call() -> None:
            try:
                client.whoami()
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    loopback_server.target.app = None
    assert errors == []
    assert len(sandbox.state.access_tokens) == 1


def test_concurrent_tasks_share_one_oauth_token(
    sandbox: Sandbox, oauth_client: OAuthCredentials
) -> None:
    async def main() -> None:
        transport = httpx.ASGITransport(app=sandbox.app)
        async with (
            AsyncClient(
                base_url="http://sandbox.test", oauth=oauth_client, transport=transport
            ) as client,
            anyio.create_task_group() as group,
        ):
            for _ in range(10):
                group.start_soon(client.whoami)

    anyio.run(main)
    assert len(sandbox.state.access_tokens) == 1


# -- notices ------------------------------------------------------------------------------------


def test_proxied_request_notice_names_the_right_datacenter(api: Api, sandbox: Sandbox) -> None:
    sandbox.state.config.proxy_notice_host = "fra1.qualtrics.com"
    with pytest.warns(DatacenterNotice) as caught:
        me = api(api.client.whoami())
    assert me.user_id == sandbox.user_id
    notice = caught[0].message
    assert isinstance(notice, DatacenterNotice)
    assert notice.datacenter == "fra1"
    assert notice.host == "fra1.qualtrics.com"
    assert "datacenter='fra1'" in str(notice)
    assert "Request proxied" in notice.notice
