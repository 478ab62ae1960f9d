"""Which nextPage links the pagers follow: only ones on the API's own origin."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from qualflow.qualtrics._core import check_next_page, path_segment
from qualflow.qualtrics.errors import ForeignNextPage

ORIGIN = "https://iad1.qualtrics.com"
CURRENT = "https://iad1.qualtrics.com/API/v3/surveys"

hosts = st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z][a-z0-9-]{0,15}){0,3}", fullmatch=True)
query = st.from_regex(r"(offset=[0-9]{1,6}|skipToken=[A-Za-z0-9_-]{1,40})", fullmatch=True)


@given(query)
def test_same_origin_links_are_followed_verbatim(q: str) -> None:
    url = f"{ORIGIN}/API/v3/surveys?{q}"
    assert check_next_page(url, CURRENT, ORIGIN) == url


@given(hosts, query)
def test_links_to_other_hosts_are_refused(host: str, q: str) -> None:
    assume(not host.endswith(".qualtrics.com"))
    with pytest.raises(ForeignNextPage) as info:
        check_next_page(f"https://{host}/API/v3/surveys?{q}", CURRENT, ORIGIN)
    assert info.value.expected_origin == ORIGIN


@pytest.mark.parametrize(
    "link",
    [
        "http://iad1.qualtrics.com/API/v3/surveys?offset=100",  # scheme downgrade
        "https://iad1.qualtrics.com:8443/API/v3/surveys?offset=100",  # other port
        "https://iad1.qualtrics.com.evil.example/API/v3/surveys",
        "https://user@evil.example/API/v3/surveys",
        "//evil.example/API/v3/surveys?offset=100",  # scheme-relative
        "https://evil.example/?u=https://iad1.qualtrics.com/",
    ],
)
def test_tricky_foreign_links(link: str) -> None:
    with pytest.raises(ForeignNextPage):
        check_next_page(link, CURRENT, ORIGIN)


def test_a_brand_host_follows_links_written_on_its_datacenter_host_on_its_own_host() -> None:
    brand, current = "https://acme.qualtrics.com", "https://acme.qualtrics.com/API/v3/surveys"
    link = "https://iad1.qualtrics.com/API/v3/surveys?offset=100"
    assert check_next_page(link, current, brand) == f"{brand}/API/v3/surveys?offset=100"
    for foreign in (
        "https://iad1.qualtrics.com/elsewhere?offset=100",  # not the API
        "https://user:pw@iad1.qualtrics.com/API/v3/surveys?offset=100",
        "https://iad1.qualtrics.com:8443/API/v3/surveys?offset=100",
        "http://iad1.qualtrics.com/API/v3/surveys?offset=100",
        "https://qualtrics.com.evil.example/API/v3/surveys",
    ):
        with pytest.raises(ForeignNextPage):
            check_next_page(foreign, current, brand)
    # Only between Qualtrics hosts: a sandbox or proxy keeps the strict rule.
    with pytest.raises(ForeignNextPage):
        check_next_page(link, "http://127.0.0.1:8765/API/v3/surveys", "http://127.0.0.1:8765")


def test_relative_links_resolve_against_the_current_page() -> None:
    assert check_next_page("?offset=100", CURRENT, ORIGIN) == f"{CURRENT}?offset=100"
    assert (
        check_next_page("/API/v3/directories/POOL_1/contacts?skipToken=x", CURRENT, ORIGIN)
        == f"{ORIGIN}/API/v3/directories/POOL_1/contacts?skipToken=x"
    )


def test_sandbox_origin_with_port() -> None:
    origin = "http://127.0.0.1:51234"
    link = f"{origin}/API/v3/surveys?offset=100"
    assert check_next_page(link, f"{origin}/API/v3/surveys", origin) == link
    with pytest.raises(ForeignNextPage):
        check_next_page("http://127.0.0.1:51235/API/v3/surveys", f"{origin}/API/v3/surveys", origin)


@pytest.mark.parametrize("bad", ["", " ", "SV_1/../x", "a?b", "a#b", "..", "a%2F", "x\n"])
def test_ids_cannot_escape_their_path_segment(bad: str) -> None:
    with pytest.raises(ValueError, match="survey_id"):
        path_segment(bad, "survey_id")
