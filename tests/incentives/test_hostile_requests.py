"""Requests a careless or hostile caller sends: each gets a clear 4xx, never a server error, and
no page sends a browser to another site."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.incentives.support import Person
from tests.incentives.test_api import API, gift_incentive
from tests.incentives.test_pages import form, sign_in

MakePerson = Callable[..., Person]
MANUAL = {"name": "Diary study", "provider": "manual", "amount": "25", "currency": "USD"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "1e30"), ("budget", "1e29"), ("amount", "99999999999999999999999999")],
)
def test_an_amount_no_currency_could_store_is_refused_with_the_field_named(
    hub: TestClient, admin: Person, field: str, value: str
) -> None:
    created = hub.post(API, json={**MANUAL, field: value}, headers=admin.headers)
    assert created.status_code == 422, created.text
    assert f"{field}: " in created.json()["error"]["message"]
    assert "is too large" in created.json()["error"]["message"]

    incentive = hub.post(API, json=MANUAL, headers=admin.headers).json()
    changed = hub.patch(
        f"{API}/{incentive['reference_id']}", json={field: value}, headers=admin.headers
    )
    assert changed.status_code == 422, changed.text
    assert f"{field}: " in changed.json()["error"]["message"]
    assert "is too large" in changed.json()["error"]["message"]


def test_a_test_reward_to_something_that_is_not_an_address_is_refused(
    hub: TestClient, admin: Person
) -> None:
    reference = gift_incentive(hub, admin)["reference_id"]
    url = f"{API}/{reference}/test-reward"
    nowhere = hub.post(
        url, json={"email": "pat@example.org", "send_to": "finance"}, headers=admin.headers
    )
    assert nowhere.status_code == 422, nowhere.text
    assert nowhere.json()["error"]["message"] == (
        "invalid request: send_to: Value error, 'finance' is not an email address"
    )
    endless = hub.post(url, json={"response_id": "R_" + "1" * 5000}, headers=admin.headers)
    assert endless.status_code == 422, endless.text
    assert endless.json()["error"]["message"].startswith("invalid request: response_id: String")

    token = sign_in(hub, admin)
    page = hub.post(
        f"/incentives/{reference}/test", data=form(token, response_id="R_" + "1" * 5000)
    )
    assert page.status_code == 200
    assert "response_id: String should have at most 64 characters" in page.text


def test_pages_given_an_id_or_page_beyond_any_row_say_it_does_not_exist(
    hub: TestClient, admin: Person
) -> None:
    reference = gift_incentive(hub, admin)["reference_id"]
    token = sign_in(hub, admin)
    huge = 10**30
    for action in ("rename", "deactivate"):
        answer = hub.post(
            f"/incentives/api-keys/{huge}/{action}", data=form(token, display_name="x")
        )
        assert answer.status_code == 200, action
        assert f"API key {huge} does not exist" in answer.text, action
    revealed = hub.post(f"/incentives/api-keys/{huge}/reveal", data=form(token))
    assert f"API key {huge} does not exist" in revealed.text
    imported = hub.post(
        f"/incentives/providers/pools/{huge}/codes",
        data={"csrf_token": token},
        files={"file": ("codes.csv", b"code,value,currency,expiry\nA-1,10,USD,\n", "text/csv")},
    )
    assert f"gift-code pool {huge} does not exist" in imported.text
    far = hub.get(f"/incentives/{reference}", params={"page": str(huge)})
    assert far.status_code == 200


@pytest.mark.parametrize("back", ["//evil.example/queue", "/\\evil.example/queue", "https://x.y"])
def test_the_review_queue_goes_back_only_to_a_page_of_this_site(
    hub: TestClient, admin: Person, back: str
) -> None:
    token = sign_in(hub, admin)
    answer = hub.post(
        "/incentives/review-queue",
        data=form(token, action="release", reward=["RW-22222222"], back=back),
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/incentives/review-queue"
    filtered = "/incentives/review-queue?incentive=INC-7F3K2Q"
    answer = hub.post(
        "/incentives/review-queue",
        data=form(token, action="release", reward=["RW-22222222"], back=filtered),
        follow_redirects=False,
    )
    assert answer.headers["location"] == filtered


def test_a_pool_description_longer_than_an_incentives_is_refused(
    hub: TestClient, admin: Person
) -> None:
    pools = f"{API}/providers/gift-code-pools"
    endless = {"name": "Cards", "description": "d" * 5001}
    refused = hub.post(pools, json=endless, headers=admin.headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["message"].startswith("invalid request: description: String")
    token = sign_in(hub, admin)
    page = hub.post("/incentives/providers/pools", data=form(token, **endless))
    assert "the pool&#39;s description is longer than 5000 characters" in page.text
    assert hub.get(pools, headers=admin.headers).json()["items"] == []
