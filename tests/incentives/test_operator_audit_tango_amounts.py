"""Amounts Tango reports as JSON numbers (``1000.0``) read as money: with the currency's
decimals, in the configuration review and in an account's catalog."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT
from tests.incentives.support import Person, Tango
from tests.incentives.test_api import API, create_tango_account


def test_the_review_shows_the_balance_with_the_currencys_decimals(
    hub: TestClient, admin: Person, tango: Tango
) -> None:
    account = create_tango_account(hub, admin, tango).json()["id"]
    incentive = hub.post(
        API,
        json={"name": "Tango", "provider": "tango", "tango_account_id": account,
              "utid": "U561593", "amount": "10", "approval_mode": "automatic"},
        headers=admin.headers,
    ).json()  # fmt: skip
    tango.state.set_balance(DEFAULT_ACCOUNT, "70")
    review = hub.get(f"{API}/{incentive['reference_id']}/review", headers=admin.headers)
    provider = review.json()["provider"]
    assert (provider["balance"], provider["currency"]) == ("70.00", "USD")


def test_catalog_values_show_the_currencys_decimals(
    hub: TestClient, admin: Person, tango: Tango
) -> None:
    account = create_tango_account(hub, admin, tango).json()["id"]
    answer = hub.get(f"{API}/providers/tango-accounts/{account}/catalog", headers=admin.headers)
    items = {item["utid"]: item for item in answer.json()}
    assert items["U442382"]["face_value"] == "10.00"
    assert (items["U561593"]["min_value"], items["U561593"]["max_value"]) == ("0.01", "2000.00")
