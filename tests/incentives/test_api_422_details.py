"""REST: a 422 of the incentives API names the body field it refuses, as FastAPI's own 422 does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT, DEFAULT_CUSTOMER
from tests.incentives.support import Person, Tango
from tests.incentives.test_api import API, gift_incentive

MakePerson = Callable[..., Person]


def refused(answer: Any, code: str, field: str) -> None:
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert error.get("details") == [{"field": field, "message": error["message"]}], answer.text


def test_invalid_incentive_names_the_field(hub: TestClient, admin: Person) -> None:
    incentive = gift_incentive(hub, admin)
    answer = hub.patch(
        f"{API}/{incentive['reference_id']}", json={"budget": "1e20"}, headers=admin.headers
    )
    refused(answer, "invalid_incentive", "budget")


def test_invalid_account_names_the_field(hub: TestClient, admin: Person, tango: Tango) -> None:
    answer = hub.post(
        f"{API}/providers/tango-accounts",
        json={"name": "Sandbox", "base_url": "ftp://tango",
              "platform_name": tango.state.platform_name,
              "platform_key": tango.state.platform_key, "customer_id": DEFAULT_CUSTOMER,
              "account_id": DEFAULT_ACCOUNT},
        headers=admin.headers,
    )  # fmt: skip
    refused(answer, "invalid_account", "base_url")


def test_api_key_error_names_the_field(hub: TestClient, admin: Person) -> None:
    answer = hub.post(
        f"{API}/api-keys", json={"platform": "A!", "display_name": "Workflow"},
        headers=admin.headers,
    )  # fmt: skip
    refused(answer, "api_key_error", "platform")


def test_resend_to_a_wrong_address_names_the_email(hub: TestClient, admin: Person) -> None:
    answer = hub.post(
        f"{API}/rewards/RW-NOSUCH/resend", json={"email": "not an address"}, headers=admin.headers
    )
    refused(answer, "validation_error", "email")
