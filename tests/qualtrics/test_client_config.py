"""Client configuration: datacenters, base URLs, credentials, secrets kept out of reprs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qualflow.qualtrics import (
    DATACENTERS,
    AsyncClient,
    Client,
    ConfigurationError,
    OAuthCredentials,
    RateLimiter,
)
from qualflow.qualtrics._base import env_settings
from qualflow.qualtrics.datacenters import datacenter_of_host, resolve_location

TOKEN = "a" * 40


@pytest.mark.parametrize("dc", ["iad1", "fra1", "ca1", "pdx1", "co1", "az1", "eu", "gov1"])
def test_known_datacenters(dc: str) -> None:
    location = resolve_location(datacenter=dc.upper(), base_url=None)
    assert location.api_base == f"https://{dc}.qualtrics.com/API/v3"
    assert location.token_url == f"https://{dc}.qualtrics.com/oauth2/token"
    assert location.datacenter == dc


def test_official_datacenters_are_all_known() -> None:
    official = {"yul1", "iad1", "sjc1", "fra1", "lhr1", "syd1", "sin1", "hnd1", "gov1"}
    assert official <= set(DATACENTERS)


def test_unknown_datacenter_error_names_the_valid_ids() -> None:
    with pytest.raises(ConfigurationError) as info:
        Client(datacenter="mars1", api_token=TOKEN)
    message = str(info.value)
    assert "mars1" in message
    for dc in ("iad1", "fra1", "ca1", "pdx1", "co1", "az1", "eu"):
        assert dc in message


def test_a_host_given_as_datacenter_points_to_base_url() -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        resolve_location(datacenter="acme.qualtrics.com", base_url=None)


@pytest.mark.parametrize(
    ("base_url", "root", "dc"),
    [
        ("https://acme.qualtrics.com", "https://acme.qualtrics.com", None),
        ("https://acme.fra1.qualtrics.com/API/v3/", "https://acme.fra1.qualtrics.com", "fra1"),
        ("https://iad1.qualtrics.com/api/v3", "https://iad1.qualtrics.com", "iad1"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765", None),
        ("http://localhost:9000/prefix/", "http://localhost:9000/prefix", None),
    ],
)
def test_base_urls(base_url: str, root: str, dc: str | None) -> None:
    location = resolve_location(datacenter=None, base_url=base_url)
    assert location.root == root
    assert location.api_base == root + "/API/v3"
    assert location.datacenter == dc


@pytest.mark.parametrize(
    "base_url", ["acme.qualtrics.com", "ftp://x.qualtrics.com", "https://x.com/?a=1", "http://"]
)
def test_bad_base_urls(base_url: str) -> None:
    with pytest.raises(ConfigurationError):
        resolve_location(datacenter=None, base_url=base_url)


def test_location_is_required_and_unique() -> None:
    with pytest.raises(ConfigurationError, match="datacenter"):
        Client(api_token=TOKEN)
    with pytest.raises(ConfigurationError, match="not both"):
        Client(datacenter="iad1", base_url="https://x.qualtrics.com", api_token=TOKEN)


def test_credentials_are_required_and_unique() -> None:
    with pytest.raises(ConfigurationError, match="credentials"):
        Client(datacenter="iad1")
    with pytest.raises(ConfigurationError, match="not both"):
        Client(datacenter="iad1", api_token=TOKEN, oauth=OAuthCredentials("id", "secret"))
    with pytest.raises(ConfigurationError):
        Client(datacenter="iad1", api_token="  ")
    for pasted_wrong in ("tökén", "abc\x00def", "\u2060abc"):
        with pytest.raises(ConfigurationError, match="printable ASCII"):
            Client(datacenter="iad1", api_token=pasted_wrong)
    with pytest.raises(ConfigurationError):
        OAuthCredentials("id", "")


@pytest.mark.parametrize("wait", [-1.0, float("nan")])
def test_max_rate_limit_wait_must_be_seconds(wait: float) -> None:
    with pytest.raises(ConfigurationError, match="max_rate_limit_wait"):
        Client(datacenter="iad1", api_token=TOKEN, max_rate_limit_wait=wait)


@given(st.sampled_from(sorted(DATACENTERS)), st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))
def test_datacenter_of_brand_hosts(dc: str, brand: str) -> None:
    assert datacenter_of_host(f"{dc}.qualtrics.com") == dc
    assert datacenter_of_host(f"{brand}.{dc}.qualtrics.com") == dc


def test_secrets_stay_out_of_reprs() -> None:
    client = Client(datacenter="iad1", api_token="s3cr3t-token-value-0123456789abcdefghij")
    oauth = OAuthCredentials("client", "very-secret")
    try:
        assert "s3cr3t" not in repr(client)
        assert "very-secret" not in repr(oauth)
        assert "very-secret" not in repr(Client(datacenter="iad1", oauth=oauth))
    finally:
        client.close()


def test_env_settings() -> None:
    settings = env_settings(
        {
            "QUALTRICS_BASE_URL": "http://127.0.0.1:1",
            "QUALTRICS_CLIENT_ID": "cid",
            "QUALTRICS_CLIENT_SECRET": "csecret",
            "QUALTRICS_SCOPE": "read:surveys",
        }
    )
    assert settings["base_url"] == "http://127.0.0.1:1"
    assert settings["oauth"] == OAuthCredentials("cid", "csecret", scope="read:surveys")
    assert env_settings({"QUALTRICS_API_TOKEN": TOKEN, "QUALTRICS_DATACENTER": "fra1"}) == {
        "api_token": TOKEN,
        "datacenter": "fra1",
    }


def test_one_limiter_can_serve_sync_and_async_clients() -> None:
    shared = RateLimiter(100)
    sync = Client(datacenter="iad1", api_token=TOKEN, rate_limiter=shared)
    async_client = AsyncClient(datacenter="iad1", api_token=TOKEN, rate_limiter=shared)
    assert sync.rate_limiter is async_client.rate_limiter is shared
    sync.close()


def test_scope_forms() -> None:
    assert OAuthCredentials("a", "b", scope=["read:surveys", "write:x "]).scope_string == (
        "read:surveys write:x"
    )
    assert OAuthCredentials("a", "b", scope=" ").scope_string is None
