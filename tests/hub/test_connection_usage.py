"""A connection in use cannot be deleted; the refusal names what uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from qualflow.connections import usage
from qualflow.engine.models import Automation
from qualflow.store.runtime import Store
from tests.hub.conftest import Sandbox
from tests.hub.hub_support import Person


@pytest.fixture
def connection_id(hub: TestClient, admin: Person, sandbox: Sandbox) -> int:
    answer = hub.post(
        "/api/v1/connections",
        json={"name": "Main", "base_url": sandbox.base_url, "api_token": sandbox.admin_token},
        headers=admin.headers,
    )
    assert answer.status_code == 201
    return int(answer.json()["id"])


def _store(hub: TestClient) -> Store:
    return hub.app.state.store  # type: ignore[attr-defined,no-any-return]


def test_unused_connection_is_deleted(hub: TestClient, admin: Person, connection_id: int) -> None:
    assert (
        hub.delete(f"/api/v1/connections/{connection_id}", headers=admin.headers).status_code == 204
    )
    assert hub.get(f"/api/v1/connections/{connection_id}", headers=admin.headers).status_code == 404


def test_connection_used_by_an_automation_is_refused_with_409(
    hub: TestClient, admin: Person, connection_id: int
) -> None:
    with _store(hub).sessionmaker() as session:
        session.add(
            Automation(
                name="Thank respondents",
                connection_id=connection_id,
                trigger_type="survey_response",
            )
        )
        session.commit()
    answer = hub.delete(f"/api/v1/connections/{connection_id}", headers=admin.headers)
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "connection_in_use"
    assert "automation 'Thank respondents'" in error["message"]
    assert error["details"] == [{"used_by": "automation 'Thank respondents'"}]
    assert hub.get(f"/api/v1/connections/{connection_id}", headers=admin.headers).status_code == 200


@pytest.fixture
def registered_check() -> Iterator[usage.UsageCheck]:
    def check(db: Session, used_id: int) -> list[str]:
        return ["watch rule 'NPS drop'"] if used_id == watched[0] else []

    watched = [0]
    usage.register_usage_check(check)
    check.watched = watched  # type: ignore[attr-defined]
    try:
        yield check
    finally:
        usage._checks.remove(check)


def test_registered_usage_checks_also_block_deletion(
    hub: TestClient, admin: Person, connection_id: int, registered_check: usage.UsageCheck
) -> None:
    registered_check.watched[0] = connection_id  # type: ignore[attr-defined]
    answer = hub.delete(f"/api/v1/connections/{connection_id}", headers=admin.headers)
    assert answer.status_code == 409
    assert "watch rule 'NPS drop'" in answer.json()["error"]["message"]
