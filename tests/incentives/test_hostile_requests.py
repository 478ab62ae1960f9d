"""Requests a careless or hostile caller sends: each gets a clear 4xx, never a server error, and
no page sends a browser to another site."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.incentives.support import Person
from tests.incentives.test_api import API

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
