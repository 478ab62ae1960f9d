"""Connection pages against the in-process sandbox: whoami on save, secrets as last 4, in-use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qualflow.connections.clients import configure_clients
from qualflow.connections.models import Connection
from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.services import EngineServices
from qualflow.sandbox import SandboxState
from qualflow.sandbox import create_app as create_sandbox_app
from qualflow.settings import Settings
from qualflow.store.runtime import open_store
from qualflow.web.app import create_app
from tests.browser.ui_support import csrf_token, sign_in

SANDBOX_URL = "http://sandbox.qualflow.test"

# The connection pages' queries are the connections package's (tested on both databases there).
pytestmark = pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxState, str]]:
    state = SandboxState()
    _admin, token = state.create_user(
        "brand.admin@example.org", first_name="Brand", last_name="Admin"
    )
    from qualflow.sandbox.seed import customer_satisfaction

    customer_satisfaction(state)
    yield state, token
    configure_clients(transport=None)


@pytest.fixture
def hub(
    ui_settings: Settings, ui_people: dict[str, str], sandbox: tuple[SandboxState, str]
) -> Iterator[TestClient]:
    transport = httpx.ASGITransport(app=create_sandbox_app(sandbox[0]))
    app = create_app(ui_settings, qualtrics_transport=transport, engine="off")
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False) as client:
        yield client


def _form(token: str, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "name": "Main brand",
        "location": "base_url",
        "base_url": SANDBOX_URL,
        "datacenter": "iad1",
        "auth": "token",
        "api_token": "",
        "username": "",
        "requests_per_minute": "3000",
        **fields,
    }


def _create(hub: TestClient, api_token: str, **fields: str) -> int:
    token = csrf_token(hub, "/connections/new")
    answer = hub.post("/connections/new", data=_form(token, api_token=api_token, **fields))
    assert answer.status_code == 303, answer.text
    match = re.fullmatch(r"/connections/(\d+)", answer.headers["location"])
    assert match
    return int(match.group(1))


def test_creating_a_connection_validates_it_and_shows_only_the_last_4(
    hub: TestClient, sandbox: tuple[SandboxState, str]
) -> None:
    _state, api_token = sandbox
    sign_in(hub, "manager")

    connection_id = _create(hub, api_token)
    page = hub.get(f"/connections/{connection_id}")
    surveys = hub.get(f"/connections/{connection_id}/surveys")

    assert "Connected: brand “sandbox” as brand.admin@example.org" in page.text
    assert api_token not in page.text
    assert f"••••{api_token[-4:]}" in page.text
    assert api_token not in hub.get("/connections").text
    assert api_token not in hub.get(f"/connections/{connection_id}/edit").text
    assert "Customer Satisfaction &amp; NPS" in surveys.text


def test_bad_input_is_explained_next_to_the_field(
    hub: TestClient, sandbox: tuple[SandboxState, str]
) -> None:
    _state, api_token = sandbox
    sign_in(hub, "admin")
    token = csrf_token(hub, "/connections/new")

    no_token = hub.post("/connections/new", data=_form(token))
    wrong = hub.post("/connections/new", data=_form(token, api_token="not-the-right-token-1234"))
    no_name = hub.post("/connections/new", data=_form(token, name="", api_token=api_token))
    bad_rate = hub.post(
        "/connections/new", data=_form(token, api_token=api_token, requests_per_minute="lots")
    )
    _create(hub, api_token)
    duplicate = hub.post("/connections/new", data=_form(token, api_token=api_token))

    assert no_token.status_code == 400
    assert 'id="api_token-error"' in no_token.text
    assert wrong.status_code == 400
    assert "Qualtrics rejected these credentials" in wrong.text
    assert "not-the-right-token-1234" not in wrong.text  # secrets are never echoed back
    assert 'id="name-error"' in no_name.text
    assert "whole number" in bad_rate.text
    assert duplicate.status_code == 400
    assert "Another connection already has this name." in duplicate.text


def test_edit_keeps_the_saved_token_and_revalidates_a_new_one(
    hub: TestClient, sandbox: tuple[SandboxState, str], ui_settings: Settings
) -> None:
    state, api_token = sandbox
    sign_in(hub, "admin")
    connection_id = _create(hub, api_token)
    token = csrf_token(hub, f"/connections/{connection_id}/edit")

    renamed = hub.post(
        f"/connections/{connection_id}/edit", data=_form(token, name="Renamed brand")
    )
    assert renamed.status_code == 303
    assert "Connection saved." in hub.get(f"/connections/{connection_id}").text

    rejected = hub.post(
        f"/connections/{connection_id}/edit",
        data=_form(token, name="Renamed brand", api_token="revoked-token-0000"),
    )
    assert rejected.status_code == 400
    assert "Qualtrics rejected these credentials" in rejected.text

    _other, other_token = state.create_user("other@example.org")
    switched = hub.post(
        f"/connections/{connection_id}/edit",
        data=_form(token, name="Renamed brand", api_token=other_token),
    )
    assert switched.status_code == 303
    page = hub.get(f"/connections/{connection_id}").text
    assert "Saved and re-validated" in page
    assert "other@example.org" in page
    store = open_store(ui_settings)
    try:
        with store.sessionmaker() as db:
            saved = db.scalar(select(Connection).where(Connection.id == connection_id))
            assert saved is not None
            assert saved.name == "Renamed brand"
            assert saved.api_token == other_token
    finally:
        store.close()


def test_a_connection_in_use_cannot_be_deleted(
    hub: TestClient, sandbox: tuple[SandboxState, str], ui_settings: Settings
) -> None:
    state, api_token = sandbox
    sign_in(hub, "admin")
    connection_id = _create(hub, api_token)
    [survey_id] = state.surveys
    store = open_store(ui_settings)
    try:
        services = EngineServices(
            config=EngineConfig(database_url=ui_settings.database_url),
            sessionmaker=store.sessionmaker,
        )
        Automations(services).create(
            {
                "name": "Uses it",
                "connection_id": connection_id,
                "trigger": {"type": "survey_response", "survey_id": survey_id},
                "steps": [{"action": "qualtrics.get_response"}],
            }
        )
    finally:
        store.close()
    token = csrf_token(hub, "/")

    refused = hub.post(f"/connections/{connection_id}/delete", data={"csrf_token": token})
    page = hub.get(f"/connections/{connection_id}")

    assert refused.status_code == 303
    assert "Not deleted" in page.text
    assert "Uses it" in page.text


def test_deleting_an_unused_connection(hub: TestClient, sandbox: tuple[SandboxState, str]) -> None:
    sign_in(hub, "admin")
    connection_id = _create(hub, sandbox[1])

    deleted = hub.post(
        f"/connections/{connection_id}/delete", data={"csrf_token": csrf_token(hub, "/")}
    )

    assert deleted.headers["location"] == "/connections"
    assert "deleted" in hub.get("/connections").text
    assert hub.get(f"/connections/{connection_id}").status_code == 404


def test_provisioning_a_service_user_stores_only_its_token(
    hub: TestClient, sandbox: tuple[SandboxState, str], ui_settings: Settings
) -> None:
    state, admin_token = sandbox
    sign_in(hub, "admin")
    token = csrf_token(hub, "/connections/new?mode=service_user")

    answer = hub.post(
        "/connections/service-user",
        data={
            "csrf_token": token,
            "name": "Service",
            "location": "base_url",
            "base_url": SANDBOX_URL,
            "admin_token": admin_token,
            "service_username": "qualflow",
            "requests_per_minute": "3000",
        },
    )

    assert answer.status_code == 303, answer.text
    assert any(user.username == "qualflow" for user in state.users.values())
    store = open_store(ui_settings)
    try:
        with store.sessionmaker() as db:
            saved = db.scalar(select(Connection).where(Connection.name == "Service"))
            assert saved is not None
            assert saved.service_user
            assert saved.api_token != admin_token
    finally:
        store.close()


def test_viewers_see_connections_but_cannot_change_them(
    hub: TestClient, sandbox: tuple[SandboxState, str]
) -> None:
    sign_in(hub, "viewer")

    listing = hub.get("/connections")
    form = hub.get("/connections/new")

    assert listing.status_code == 200
    assert "New connection" not in listing.text
    assert form.status_code == 403
    assert "requires Manage permission on connections" in form.text


def test_static_assets_are_served(hub: TestClient, tmp_path: Path) -> None:
    css = hub.get("/static/qualflow.css")
    htmx = hub.get("/static/vendor/htmx-2.0.11.min.js")

    assert css.status_code == 200
    assert "text/css" in css.headers["content-type"]
    assert htmx.status_code == 200
    assert "htmx" in htmx.text[:2000]


def test_the_automation_editor_offers_the_connections_surveys(
    hub: TestClient, sandbox: tuple[SandboxState, str]
) -> None:
    state, api_token = sandbox
    sign_in(hub, "admin")
    connection_id = _create(hub, api_token)
    [survey_id] = state.surveys

    offered = hub.get(f"/automations/_surveys?connection_id={connection_id}")
    nothing = hub.get("/automations/_surveys?connection_id=999")

    assert f'<option value="{survey_id}">Customer Satisfaction &amp; NPS</option>' in offered.text
    assert "Choose a connection" in nothing.text
