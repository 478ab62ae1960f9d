"""``from_env``: keyword arguments take precedence over the ``QUALTRICS_*`` variables."""

from __future__ import annotations

import anyio
import pytest

from qualflow.qualtrics import AsyncClient, Client, ConfigurationError
from qualflow.qualtrics.auth import OAuthCredentials

ENV_TOKEN = "envtoken0123456789"


@pytest.fixture(autouse=True)
def qualtrics_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "QUALTRICS_BASE_URL",
        "QUALTRICS_CLIENT_ID",
        "QUALTRICS_CLIENT_SECRET",
        "QUALTRICS_SCOPE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QUALTRICS_API_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("QUALTRICS_DATACENTER", "iad1")


def test_base_url_given_in_code_replaces_the_datacenter_of_the_environment() -> None:
    with Client.from_env(base_url="https://acme.qualtrics.com") as client:
        assert client.api_base == "https://acme.qualtrics.com/API/v3"
        assert client._api_token == ENV_TOKEN


def test_datacenter_given_in_code_replaces_the_base_url_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("QUALTRICS_DATACENTER")
    monkeypatch.setenv("QUALTRICS_BASE_URL", "https://acme.qualtrics.com")
    with Client.from_env(datacenter="fra1") as client:
        assert client.api_base == "https://fra1.qualtrics.com/API/v3"


def test_oauth_given_in_code_replaces_the_api_token_of_the_environment() -> None:
    with Client.from_env(oauth=OAuthCredentials("client", "secret")) as client:
        assert client._api_token is None
        assert client._oauth is not None
        assert client._oauth.credentials.client_id == "client"
        assert client.api_base == "https://iad1.qualtrics.com/API/v3"


def test_api_token_given_in_code_replaces_oauth_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("QUALTRICS_API_TOKEN")
    monkeypatch.setenv("QUALTRICS_CLIENT_ID", "envclient")
    monkeypatch.setenv("QUALTRICS_CLIENT_SECRET", "envsecret")
    with Client.from_env(api_token="codetoken0123456789") as client:
        assert client._oauth is None
        assert client._api_token == "codetoken0123456789"


def test_async_client_follows_the_same_precedence() -> None:
    async def build() -> str:
        async with AsyncClient.from_env(base_url="https://acme.qualtrics.com") as client:
            return client.api_base

    assert anyio.run(build) == "https://acme.qualtrics.com/API/v3"


def test_both_alternatives_given_in_code_are_still_refused() -> None:
    with pytest.raises(ConfigurationError, match="either datacenter or base_url"):
        Client.from_env(datacenter="fra1", base_url="https://acme.qualtrics.com")
