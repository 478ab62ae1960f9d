"""A base URL with an impossible port or host is a configuration error at once (exit 2 in the
CLI), not a network failure after retries; a Content-Length that is not ASCII digits is no
progress total, not a crash."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qualflow.qualtrics import Client, ConfigurationError
from qualflow.qualtrics._core import content_length
from qualflow.qualtrics.datacenters import resolve_location


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("http://127.0.0.1:99999", "port 99999"),
        ("http://127.0.0.1:0", "port 0"),
        ("http://127.0.0.1:65536", "port 65536"),
        ("http://exa mple.com", "no valid host"),
        ("http://%41.example.com", "no valid host"),
        ("http://a..b", "no valid host"),
    ],
)
def test_impossible_ports_and_hosts_are_refused(base_url: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        Client(base_url=base_url, api_token="t" * 40)


@pytest.mark.parametrize(
    "base_url",
    ["https://me:s3cret-pw@acme.qualtrics.com", "https://s3cret-pw@acme.qualtrics.com"],
)
def test_credentials_in_the_base_url_are_refused_without_echoing_them(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="user name or password") as refused:
        Client(base_url=base_url, api_token="t" * 40)
    assert "s3cret-pw" not in str(refused.value)


@pytest.mark.parametrize(
    ("base_url", "root"),
    [
        ("http://127.0.0.1:65535", "http://127.0.0.1:65535"),
        ("http://[::1]:8765/API/v3", "http://[::1]:8765"),
        ("http://my_service:8765", "http://my_service:8765"),  # a Docker service name
        ("https://müller.example", "https://xn--mller-kva.example"),
        ("https://acme.qualtrics.com/", "https://acme.qualtrics.com"),
    ],
)
def test_real_hosts_and_ports_are_kept(base_url: str, root: str) -> None:
    assert resolve_location(datacenter=None, base_url=base_url).root == root


@pytest.mark.parametrize(
    ("value", "length"),
    [
        ("1024", 1024),
        (" 7 ", 7),
        ("", None),
        ("²", None),  # isdigit(), but int() refuses it
        ("١٢", None),  # Arabic-Indic digits: int() reads them, HTTP never means them
        ("-1", None),
        ("9" * 5000, None),  # int() refuses over 4300 digits
    ],
)
def test_content_length_is_ascii_digits_or_nothing(value: str, length: int | None) -> None:
    headers = httpx.Headers({"Content-Length": value.encode("utf-8")})
    assert content_length(headers) == length


@given(st.text())
def test_content_length_never_raises(value: str) -> None:
    headers = httpx.Headers({"Content-Length": value.encode("utf-8", "surrogatepass")})
    length = content_length(headers)
    assert length is None or length >= 0
