"""The connection form keeps what people type: a rate limit of 0 is refused, not replaced."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from qualflow.connections.models import Connection
from qualflow.store.runtime import Store
from tests.hub.conftest import Sandbox
from tests.hub.hub_support import MakePerson
from tests.hub.test_ui_audit_numbers import signed_in


def test_a_rate_limit_of_zero_is_refused_not_replaced_by_the_default(
    hub: TestClient, make_person: MakePerson, sandbox: Sandbox
) -> None:
    token = signed_in(hub, make_person)
    answer = hub.post(
        "/connections/new",
        data={"csrf_token": token, "name": "Main brand", "location": "base_url",
              "base_url": sandbox.base_url, "auth": "token", "api_token": sandbox.admin_token,
              "requests_per_minute": "0"},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 400
    assert "greater than or equal to 1" in answer.text
    assert 'name="requests_per_minute" type="number" value="0"' in answer.text
    store: Store = hub.app.state.store  # type: ignore[attr-defined]
    with store.sessionmaker() as db:
        assert db.scalars(select(Connection)).all() == []


def test_a_rate_limit_of_zero_for_a_service_user_is_a_message_on_the_field(
    hub: TestClient, make_person: MakePerson, sandbox: Sandbox
) -> None:
    token = signed_in(hub, make_person)
    answer = hub.post(
        "/connections/service-user",
        data={"csrf_token": token, "name": "Service brand", "location": "base_url",
              "base_url": sandbox.base_url, "admin_token": sandbox.admin_token,
              "service_username": "qualflow", "requests_per_minute": "0"},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 400
    assert "greater than or equal to 1" in answer.text
    assert 'value="Service brand"' in answer.text
