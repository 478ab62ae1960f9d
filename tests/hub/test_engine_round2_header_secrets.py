"""Credentials in ``http.request`` headers (``Authorization``, ``X-API-TOKEN``, ``Cookie``, any
header named like a token/key/secret/auth/password) are step secrets like the signing secret:
sealed at rest, masked in every answer, kept when the masked form comes back, sent in clear."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.services import EngineServices
from qualflow.store.runtime import Store
from qualflow.store.sealed import SEALED_PREFIX, unseal
from tests.hub.hub_support import MakePerson, Person, sign_in
from tests.hub.test_step_secrets import _sign_with, _stored_configs

API = "/api/v1/automations"

SECRET_HEADERS = {
    "Authorization": "Bearer live-4f9c2a7b1e8d",
    "X-API-TOKEN": "qtoken-77ab31cd90ef",
    "Cookie": "session=c0ffee123456",
    "X-Partner-Key": "partnerkey-5566aa",
    "X-Db-Password": "hunter2-long-pw",
}
PLAIN_HEADERS = {"Content-Type": "application/json", "X-Source": "qualflow-{{ run.id }}"}


def _definition(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "To the CRM",
        "trigger": {"type": "schedule", "cron": "0 3 * * *"},
        "steps": [
            {
                "action": "http.request",
                "key": "hook",
                "config": {
                    "url": "https://crm.example.org/hook",
                    "json": {"a": "b"},
                    "headers": headers,
                },
            }
        ],
    }


def _masked(value: str) -> str:
    return "••••" + value[-4:]


def test_secret_headers_are_sealed_masked_kept_and_still_sent(
    client: TestClient, admin: Person, caplog: pytest.LogCaptureFixture
) -> None:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    with caplog.at_level(logging.DEBUG):
        created = client.post(
            API, json=_definition({**SECRET_HEADERS, **PLAIN_HEADERS}), headers=admin.headers
        )
    assert created.status_code == 201, created.text
    automation_id = created.json()["id"]
    shown = created.json()["steps"][0]["config"]["headers"]
    assert shown == {
        **{name: _masked(value) for name, value in SECRET_HEADERS.items()},
        **PLAIN_HEADERS,
    }

    (stored,) = _stored_configs(store, automation_id)
    for name, value in SECRET_HEADERS.items():
        assert stored["headers"][name].startswith(SEALED_PREFIX)
        assert unseal(store.secret_box, stored["headers"][name]) == value
    assert {k: stored["headers"][k] for k in PLAIN_HEADERS} == PLAIN_HEADERS

    for path in (f"{API}/{automation_id}", API, f"{API}/{automation_id}/versions"):
        answer = client.get(path, headers=admin.headers)
        assert answer.status_code == 200
        for value in SECRET_HEADERS.values():
            assert value not in answer.text
        for sealed in (stored["headers"][name] for name in SECRET_HEADERS):
            assert sealed not in answer.text

    # An edit that sends the masked forms back keeps every saved header secret.
    edited = created.json()
    body = {"name": "Renamed", "trigger": edited["trigger"], "steps": edited["steps"]}
    updated = client.put(f"{API}/{automation_id}", json=body, headers=admin.headers)
    assert updated.status_code == 200, updated.text
    first, second = _stored_configs(store, automation_id)
    assert second["headers"] == first["headers"]

    # The receiver gets the credentials themselves.
    request = _sign_with(store, second)
    for name, value in SECRET_HEADERS.items():
        assert request.headers[name] == value
    assert request.headers["X-Source"] == "qualflow-run-1"

    for value in SECRET_HEADERS.values():
        assert value not in caplog.text


def test_a_masked_header_that_masks_nothing_saved_is_refused(
    client: TestClient, admin: Person
) -> None:
    answer = client.post(
        API, json=_definition({"Authorization": "••••abcd"}), headers=admin.headers
    )
    assert answer.status_code == 422, answer.text
    assert "Authorization" in answer.text
    assert "masked" in answer.text


def test_clear_headers_saved_before_keep_working_and_are_sealed_on_next_save(
    client: TestClient, admin: Person
) -> None:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    services = EngineServices(
        config=EngineConfig(database_url=store.settings.database_url),
        sessionmaker=store.sessionmaker,
    )
    # As an automation saved before header secrets existed: the credential in clear.
    legacy = Automations(services).create(_definition(dict(SECRET_HEADERS)))

    answer = client.get(f"{API}/{legacy.id}", headers=admin.headers)
    assert answer.status_code == 200
    for value in SECRET_HEADERS.values():
        assert value not in answer.text
    (stored,) = _stored_configs(store, legacy.id)
    request = _sign_with(store, stored)
    assert request.headers["Authorization"] == SECRET_HEADERS["Authorization"]

    edited = answer.json()
    body = {"name": edited["name"], "trigger": edited["trigger"], "steps": edited["steps"]}
    updated = client.put(f"{API}/{legacy.id}", json=body, headers=admin.headers)
    assert updated.status_code == 200, updated.text
    *_, latest = _stored_configs(store, legacy.id)
    assert SECRET_HEADERS["Authorization"] not in json.dumps(latest)
    for name, value in SECRET_HEADERS.items():
        assert unseal(store.secret_box, latest["headers"][name]) == value


def test_editor_pages_show_header_secrets_masked_and_saving_keeps_them(
    hub: TestClient, make_person: MakePerson
) -> None:
    store: Store = hub.app.state.store  # type: ignore[attr-defined]
    person = make_person("admin", password=True)
    created = hub.post(API, json=_definition(dict(SECRET_HEADERS)), headers=person.headers)
    assert created.status_code == 201, created.text
    automation_id = created.json()["id"]
    (stored,) = _stored_configs(store, automation_id)
    token = sign_in(hub, person)

    pages = [
        hub.get(f"/automations/{automation_id}"),
        hub.get(f"/automations/{automation_id}/edit"),
        hub.get(f"/automations/{automation_id}/edit?mode=json"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert SEALED_PREFIX not in page.text
        for value in SECRET_HEADERS.values():
            assert value not in page.text
    [uid] = re.findall(r'data-step-uid="([^"]+)"', pages[1].text)

    # The form sent back as shown (the headers masked) keeps the saved credentials.
    shown_headers = {name: _masked(value) for name, value in SECRET_HEADERS.items()}
    answer = hub.post(
        f"/automations/{automation_id}/edit",
        data={
            "csrf_token": token,
            "name": "Renamed in the editor",
            "connection_id": "",
            "trigger_type": "schedule",
            "trigger-cron": "0 3 * * *",
            "step": [uid],
            f"step-{uid}-action": "http.request",
            f"step-{uid}-config-url": "https://crm.example.org/hook",
            f"step-{uid}-config-method": "POST",
            f"step-{uid}-config-headers": json.dumps(shown_headers),
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    *_, latest = _stored_configs(store, automation_id)
    assert latest["headers"] == stored["headers"]
