"""Responses cached for a connection's runs do not keep the connection from being deleted."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from qualflow.engine.models import Automation, CachedResponse
from qualflow.store.runtime import Store
from tests.hub.conftest import Sandbox
from tests.hub.hub_support import Person


def _add_connection(hub: TestClient, admin: Person, sandbox: Sandbox) -> int:
    answer = hub.post(
        "/api/v1/connections",
        json={"name": "Main", "base_url": sandbox.base_url, "api_token": sandbox.admin_token},
        headers=admin.headers,
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _cache_a_response(hub: TestClient, connection_id: int) -> None:
    store: Store = hub.app.state.store  # type: ignore[attr-defined]
    with store.sessionmaker() as session:
        session.add(
            CachedResponse(
                response_id="R_cached1",
                survey_id="SV_cached1",
                connection_id=connection_id,
                payload={"values": {}},
            )
        )
        session.commit()


def test_a_connection_with_cached_responses_only_is_deleted(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    connection_id = _add_connection(hub, admin, sandbox)
    _cache_a_response(hub, connection_id)

    answer = hub.delete(f"/api/v1/connections/{connection_id}", headers=admin.headers)

    assert answer.status_code == 204, answer.text
    assert hub.get(f"/api/v1/connections/{connection_id}", headers=admin.headers).status_code == 404
    # Forgotten with it: a later connection given the same id must not inherit them.
    store: Store = hub.app.state.store  # type: ignore[attr-defined]
    with store.sessionmaker() as session:
        assert session.scalars(select(CachedResponse)).all() == []


def test_an_automation_still_keeps_it_and_is_the_only_use_named(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    connection_id = _add_connection(hub, admin, sandbox)
    _cache_a_response(hub, connection_id)
    store: Store = hub.app.state.store  # type: ignore[attr-defined]
    with store.sessionmaker() as session:
        session.add(
            Automation(name="Thank", connection_id=connection_id, trigger_type="survey_response")
        )
        session.commit()

    answer = hub.delete(f"/api/v1/connections/{connection_id}", headers=admin.headers)

    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["details"] == [{"used_by": "automation 'Thank'"}]
