"""Every list that grows without bound answers the runs list's envelope: ``items``, ``total``,
``limit``, ``offset``; two pages cover every row once, in a stable order, and a ``limit`` out of
range is a 422 naming it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from qualflow.accounts.models import ApiToken, User
from qualflow.accounts.tokens import issue_token
from qualflow.accounts.users import create_user
from qualflow.connections.models import Connection
from qualflow.store.runtime import Store
from tests.hub.hub_support import Person, assert_limit_out_of_range_refused, read_two_pages

API = "/api/v1"


def _store(client: TestClient) -> Store:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    return store


def _schedule(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {"type": "schedule", "cron": "0 3 * * *"},
        "steps": [{"action": "condition", "config": {"expression": "true"}}],
    }


def test_automations_page_by_id(client: TestClient, admin: Person) -> None:
    created = []
    for number in range(5):
        answer = client.post(
            f"{API}/automations", json=_schedule(f"Nightly {number}"), headers=admin.headers
        )
        assert answer.status_code == 201, answer.text
        created.append(answer.json()["id"])
    assert read_two_pages(client, f"{API}/automations", admin.headers, "id") == sorted(created)
    assert_limit_out_of_range_refused(client, f"{API}/automations", admin.headers)


def test_an_automations_versions_page_newest_first(client: TestClient, admin: Person) -> None:
    answer = client.post(f"{API}/automations", json=_schedule("Edited"), headers=admin.headers)
    assert answer.status_code == 201, answer.text
    automation = f"{API}/automations/{answer.json()['id']}"
    for number in range(4):
        edit = client.put(automation, json=_schedule(f"Edited {number}"), headers=admin.headers)
        assert edit.status_code == 200, edit.text
    versions = f"{automation}/versions"
    assert read_two_pages(client, versions, admin.headers, "version") == [5, 4, 3, 2, 1]
    assert_limit_out_of_range_refused(client, versions, admin.headers)


def test_users_page_by_id(client: TestClient, admin: Person) -> None:
    with _store(client).sessionmaker() as db:
        for number in range(4):
            create_user(db, email=f"p{number}@example.org", name="P", role="member", password=None)
        db.commit()
        ids = sorted(db.scalars(select(User.id)).all())
    assert len(ids) == 5
    assert read_two_pages(client, f"{API}/users", admin.headers, "id") == ids
    assert_limit_out_of_range_refused(client, f"{API}/users", admin.headers)


def test_personal_tokens_page_by_id_for_their_owner_and_for_an_admin(
    client: TestClient, admin: Person
) -> None:
    with _store(client).sessionmaker() as db:
        user = db.get(User, admin.id)
        assert user is not None
        for number in range(4):
            issue_token(db, user, f"script {number}")
        db.commit()
        ids = sorted(db.scalars(select(ApiToken.id).where(ApiToken.user_id == admin.id)).all())
    assert len(ids) == 5  # the fixture's token and these four
    for path in (f"{API}/me/tokens", f"{API}/users/{admin.id}/tokens"):
        assert read_two_pages(client, path, admin.headers, "id") == ids, path
        assert_limit_out_of_range_refused(client, path, admin.headers)


def test_connections_page_by_id(client: TestClient, admin: Person) -> None:
    with _store(client).sessionmaker() as db:
        # Named against id order, so that an order by name would show.
        rows = [
            Connection(name=name, datacenter="iad1", auth_type="token", api_token="t" * 20)
            for name in ("e", "d", "c", "b", "a")
        ]
        db.add_all(rows)
        db.commit()
        ids = [row.id for row in rows]
    assert read_two_pages(client, f"{API}/connections", admin.headers, "id") == sorted(ids)
    assert_limit_out_of_range_refused(client, f"{API}/connections", admin.headers)
