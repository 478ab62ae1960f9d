"""REST: a Tango incentive whose value the catalog refuses is a 422 naming the field to correct
(the amount, the item, the currency or the account), as any other refused field is."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.incentives.support import Person, Tango
from tests.incentives.test_api import API, create_tango_account
from tests.incentives.test_api_422_details import refused


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"utid": "U442382", "amount": "12"}, "amount", "fixed-value item"),
        ({"utid": "U561593", "amount": "5000"}, "amount", "is outside"),
        ({"utid": "U561593"}, "amount", "give an amount"),
        ({"utid": "UNKNOWN1", "amount": "5"}, "utid", "is not in the catalog"),
        ({"utid": "U157190", "amount": "5"}, "utid", "is inactive"),
        ({"utid": "U561593", "amount": "5", "currency": "EUR"}, "currency", "not EUR"),
        ({"utid": "U561593", "amount": "5", "tango_account_id": 999}, "tango_account_id",
         "Tango account 999 does not exist"),
    ],
)  # fmt: skip
def test_a_refused_tango_value_names_its_field(
    hub: TestClient, admin: Person, tango: Tango, fields: dict[str, Any], field: str, words: str
) -> None:
    account = create_tango_account(hub, admin, tango).json()["id"]
    body = {"name": "Tango", "provider": "tango", "tango_account_id": account,
            "approval_mode": "automatic", **fields}  # fmt: skip
    answer = hub.post(API, json=body, headers=admin.headers)
    refused(answer, "invalid_incentive", field)
    assert words in answer.json()["error"]["message"]


def test_a_missing_pool_names_its_field(hub: TestClient, admin: Person) -> None:
    body = {"name": "Codes", "provider": "gift_codes", "gift_code_pool_id": 999,
            "amount": "10", "currency": "USD", "approval_mode": "automatic"}  # fmt: skip
    answer = hub.post(API, json=body, headers=admin.headers)
    refused(answer, "invalid_incentive", "gift_code_pool_id")
    assert "gift-code pool 999 does not exist" in answer.json()["error"]["message"]
