"""Service-user provisioning refuses a connection it could not save before touching Qualtrics."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.hub.conftest import Sandbox
from tests.hub.hub_support import Person


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Research\x01ops"),
        ("name", "Research\nops"),
        ("base_url", "http://user:pass@example.org"),
    ],
)
def test_an_unsavable_connection_is_refused_before_any_qualtrics_user_is_made(
    hub: TestClient, admin: Person, sandbox: Sandbox, field: str, value: str
) -> None:
    body: dict[str, object] = {
        "name": "Research ops",
        "base_url": sandbox.base_url,
        "admin_api_token": sandbox.admin_token,
        "username": "qualflow-audit",
    }
    body[field] = value
    users_before = set(sandbox.state.users)

    answer = hub.post("/api/v1/connections/service-user", json=body, headers=admin.headers)

    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]["message"]
    # The admin token was not used: no orphan Qualtrics user whose token nobody kept.
    assert set(sandbox.state.users) == users_before
    assert hub.get("/api/v1/connections", headers=admin.headers).json()["items"] == []
