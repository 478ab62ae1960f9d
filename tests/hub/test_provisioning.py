"""Service-user provisioning against the sandbox: the admin token is used once, never kept."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from qualflow.store.runtime import Store
from tests.hub.conftest import Sandbox
from tests.hub.hub_support import Person


def _provision(hub: TestClient, person: Person, sandbox: Sandbox, **fields: object):  # type: ignore[no-untyped-def]
    body: dict[str, object] = {
        "name": "Research ops",
        "base_url": sandbox.base_url,
        "admin_api_token": sandbox.admin_token,
    }
    body.update(fields)
    return hub.post("/api/v1/connections/service-user", json=body, headers=person.headers)


def _stored_columns(hub: TestClient) -> str:
    store: Store = hub.app.state.store  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM connections")).all()
    return repr(rows)


def test_provisioning_creates_the_user_and_keeps_only_its_token(
    hub: TestClient, admin: Person, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        answer = _provision(hub, admin, sandbox, shared=True)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    account = body["service_user_account"]
    assert account["username"] == "qualflow"
    assert account["created"] is True
    created = sandbox.state.users[account["user_id"]]
    assert created.username == "qualflow"
    # Defaults: the admin's own user type and email address.
    assert created.account_type == "UT_BRANDADMIN"
    assert created.email == "brand.admin@example.org"
    service_token = created.api_token
    assert service_token
    assert body["identity"]["user_id"] == created.id
    assert body["qualtrics_user_id"] == created.id
    assert body["service_user"] is True
    assert body["username"] == "qualflow"
    assert body["api_token_hint"] == "••••" + service_token[-4:]
    for secret in (sandbox.admin_token, service_token):
        assert secret not in answer.text
        assert secret not in caplog.text
    stored = _stored_columns(hub)
    assert sandbox.admin_token not in stored
    assert service_token not in stored
    # What the hub stored is the service user's token: it decrypts to it.
    store: Store = hub.app.state.store  # type: ignore[attr-defined]
    from qualflow.connections.models import Connection

    with store.sessionmaker() as session:
        connection = session.get(Connection, body["id"])
        assert connection is not None
        assert connection.api_token == service_token
        assert connection.api_token != sandbox.admin_token


def test_provisioning_reuses_an_existing_service_user_and_its_token(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    existing, token = sandbox.state.create_user("qualflow", account_type="UT_SERVICE")
    answer = _provision(hub, admin, sandbox)
    assert answer.status_code == 201, answer.text
    assert answer.json()["service_user_account"] == {
        "user_id": existing.id,
        "username": "qualflow",
        "created": False,
    }
    # The existing token keeps working: it was fetched, not replaced.
    assert sandbox.state.users[existing.id].api_token == token


def test_provisioning_issues_a_token_when_the_user_has_none(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    answer = _provision(hub, admin, sandbox, username="svc.research", user_type="UT_RESEARCH")
    assert answer.status_code == 201, answer.text
    user = sandbox.state.users[answer.json()["service_user_account"]["user_id"]]
    assert user.account_type == "UT_RESEARCH"
    assert user.api_token  # created through POST /users/{id}/apitoken


def test_a_rejected_admin_token_saves_nothing(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    users_before = set(sandbox.state.users)
    answer = _provision(hub, admin, sandbox, admin_api_token="not-the-admin-token")
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "credentials_rejected"
    assert "not-the-admin-token" not in answer.text
    assert set(sandbox.state.users) == users_before
    assert hub.get("/api/v1/connections", headers=admin.headers).json()["items"] == []


def test_an_admin_token_no_header_can_carry_is_a_422(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    answer = _provision(hub, admin, sandbox, admin_api_token="Ⱥdmin-token")
    assert answer.status_code == 422
    assert "printable ASCII" in answer.json()["error"]["message"]
    assert hub.get("/api/v1/connections", headers=admin.headers).json()["items"] == []


def test_provisioning_needs_manage_on_connections(
    hub: TestClient, sandbox: Sandbox, make_person
) -> None:  # type: ignore[no-untyped-def]
    viewer = make_person("viewer")
    answer = _provision(hub, viewer, sandbox)
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "requires Manage permission on connections"
