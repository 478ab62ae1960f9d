"""A stored secret the configured keys cannot decrypt (a key was dropped from the key list
after it encrypted this one): the API and the pages say so and what to do, not a bare 500."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from qualflow.store.runtime import Store
from tests.hub.conftest import Sandbox
from tests.hub.hub_support import MakePerson, Person
from tests.hub.test_ui_audit_numbers import signed_in

UNDECRYPTABLE = "gAAAAABnot-made-with-any-configured-key"


def test_an_undecryptable_secret_is_named_with_what_to_do(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    answer = hub.post(
        "/api/v1/connections",
        json={"name": "Main", "base_url": sandbox.base_url, "api_token": sandbox.admin_token},
        headers=admin.headers,
    )
    assert answer.status_code == 201, answer.text
    store: Store = hub.app.state.store  # type: ignore[attr-defined]
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE connections SET api_token = :t"), {"t": UNDECRYPTABLE})

    listed = hub.get("/api/v1/connections", headers=admin.headers)

    assert listed.status_code == 500
    error = listed.json()["error"]
    assert error["code"] == "secret_not_decryptable"
    assert "cannot be decrypted with the configured keys" in error["message"]
    assert "QUALFLOW_SECRET_KEYS" in error["message"]
    assert UNDECRYPTABLE not in listed.text


def test_the_connections_page_says_the_same(
    hub: TestClient, make_person: MakePerson, sandbox: Sandbox
) -> None:
    admin = make_person("admin")
    test_an_undecryptable_secret_is_named_with_what_to_do(hub, admin, sandbox)
    signed_in(hub, make_person)

    page = hub.get("/connections")

    assert page.status_code == 500
    assert "A stored secret cannot be read" in page.text
    assert "restore the key that encrypted it" in page.text
    assert UNDECRYPTABLE not in page.text
