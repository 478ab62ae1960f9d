"""A token the sandbox's /oauth2/token says expires now (``expires_in`` 0 or less) is not
cached: each request fetches its own, and a refused one is renewed once, not in a loop."""

from __future__ import annotations

import pytest

from qualflow.qualtrics import AuthError
from qualflow.qualtrics.auth import OAuthCredentials
from qualflow.sandbox.faults import FaultRule
from tests.contract.contract_support import Api, Sandbox
from tests.contract.contract_support import run_cli as _run


def _count_token_requests(sandbox: Sandbox) -> FaultRule:
    # A rule that only adds a negligible latency counts the calls reaching the endpoint.
    return sandbox.state.faults.add(FaultRule(path="/oauth2/token", latency=0.0001))


@pytest.mark.parametrize("ttl", [0, -60])
def test_a_token_that_expires_now_is_fetched_per_request_and_renewed_once(
    api: Api, sandbox: Sandbox, oauth_client: OAuthCredentials, ttl: int
) -> None:
    sandbox.state.config.oauth_token_ttl = ttl  # answered as expires_in
    fetches = _count_token_requests(sandbox)
    client = api.make(oauth=oauth_client)
    # The sandbox's own tokens with such a TTL are dead on arrival: refused, renewed once.
    with pytest.raises(AuthError) as info:
        api(client.whoami())
    assert info.value.status_code == 401
    assert fetches.hits == 2
    with pytest.raises(AuthError):
        api(client.whoami())
    assert fetches.hits == 4  # nothing was kept for the next request
    # Once the server issues lasting tokens again, the next request works and keeps its token.
    sandbox.state.config.oauth_token_ttl = 3600
    for _ in range(3):
        assert api(client.whoami()).user_id == sandbox.user_id
    assert fetches.hits == 5


def test_the_cli_reports_a_token_that_expires_now_in_one_line(
    env: dict[str, str], sandbox: Sandbox, oauth_client: OAuthCredentials
) -> None:
    sandbox.state.config.oauth_token_ttl = 0
    fetches = _count_token_requests(sandbox)
    oauth_env = {
        **env,
        "QUALTRICS_API_TOKEN": "",
        "QUALTRICS_CLIENT_ID": oauth_client.client_id,
        "QUALTRICS_CLIENT_SECRET": oauth_client.client_secret,
    }
    result = _run(["q", "whoami"], oauth_env)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "HTTP 401" in lines[0]
    assert fetches.hits == 2
