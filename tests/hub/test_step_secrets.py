"""Secrets in step configs (``http.request``'s signing secret): sealed at rest, masked in answers,
kept on edit, and still signing requests a receiver verifies with ``standardwebhooks``."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from qualflow.engine.actions import ActionContext, get_action
from qualflow.engine.config import EngineConfig
from qualflow.engine.models import AutomationVersion
from qualflow.engine.services import EngineServices
from qualflow.notify.webhooks import generate_secret
from qualflow.store.runtime import Store
from qualflow.store.sealed import SEALED_PREFIX, is_sealed, unseal
from qualflow.store.secrets import SecretBox
from qualflow.web.api.step_secrets import reseal_definitions
from tests.hub.hub_support import Person

API = "/api/v1/automations"


def _definition(secret: str | None, *, name: str = "Signed hook") -> dict[str, Any]:
    config: dict[str, Any] = {"url": "https://receiver.example.org/hook", "json": {"a": "b"}}
    if secret is not None:
        config["signing_secret"] = secret
    return {
        "name": name,
        "trigger": {"type": "schedule", "cron": "0 3 * * *"},
        "steps": [{"action": "http.request", "key": "hook", "config": config}],
    }


def _stored_configs(store: Store, automation_id: int) -> list[dict[str, Any]]:
    with store.sessionmaker() as db:
        rows = db.scalars(
            select(AutomationVersion)
            .where(AutomationVersion.automation_id == automation_id)
            .order_by(AutomationVersion.version)
        ).all()
        return [row.definition["steps"][0]["config"] for row in rows]


def _sign_with(store: Store, config: dict[str, Any]) -> httpx.Request:
    """Run the ``http.request`` step with a stored config; the request it sent."""
    sent: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    async def run() -> None:
        spec = get_action("http.request")
        client = httpx.AsyncClient(transport=httpx.MockTransport(receive))
        services = EngineServices(
            config=EngineConfig(database_url=store.settings.database_url),
            sessionmaker=store.sessionmaker,
            extras={"http_client": client},
        )
        ctx = ActionContext(
            run_id="run-1",
            automation_id=1,
            automation_name="Signed hook",
            automation_version=1,
            connection_id=None,
            step_key="hook",
            position=0,
            attempt=1,
            trigger={},
            outputs={},
            services=services,
        )
        try:
            await spec.func(ctx, spec.validate_config(config))
        finally:
            await client.aclose()

    asyncio.run(run())
    assert len(sent) == 1
    return sent[0]


def test_signing_secret_is_sealed_masked_kept_and_still_signs(
    client: TestClient, admin: Person, caplog: pytest.LogCaptureFixture
) -> None:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    secret = generate_secret()
    masked = "••••" + secret[-4:]

    with caplog.at_level(logging.DEBUG):
        created = client.post(API, json=_definition(secret), headers=admin.headers)
    assert created.status_code == 201, created.text
    automation_id = created.json()["id"]
    assert secret not in created.text
    assert created.json()["steps"][0]["config"]["signing_secret"] == masked

    # At rest: a Fernet token, not the secret.
    (stored,) = _stored_configs(store, automation_id)
    assert secret not in json.dumps(stored)
    assert stored["signing_secret"].startswith(SEALED_PREFIX)
    assert unseal(store.secret_box, stored["signing_secret"]) == secret

    # Every answer masks it.
    for path in (f"{API}/{automation_id}", API, f"{API}/{automation_id}/versions"):
        answer = client.get(path, headers=admin.headers)
        assert answer.status_code == 200
        assert secret not in answer.text
        assert stored["signing_secret"] not in answer.text
        assert masked in answer.text

    # Editing without re-entering it (the masked form sent back) keeps it.
    edited = created.json()
    body = {
        "name": "Renamed hook",
        "trigger": edited["trigger"],
        "steps": edited["steps"],
    }
    updated = client.put(f"{API}/{automation_id}", json=body, headers=admin.headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Renamed hook"
    assert updated.json()["steps"][0]["config"]["signing_secret"] == masked
    first, second = _stored_configs(store, automation_id)
    assert second["signing_secret"] == first["signing_secret"]

    # A new secret replaces it.
    other = generate_secret()
    body["steps"] = [
        {**edited["steps"][0], "config": {**edited["steps"][0]["config"], "signing_secret": other}}
    ]
    replaced = client.put(f"{API}/{automation_id}", json=body, headers=admin.headers)
    assert replaced.status_code == 200, replaced.text
    *_, third = _stored_configs(store, automation_id)
    assert unseal(store.secret_box, third["signing_secret"]) == other

    # The step signs with the decrypted secret: a receiver verifies it.
    request = _sign_with(store, third)
    payload = Webhook(other).verify(request.content, dict(request.headers))
    assert payload == {"a": "b"}
    assert request.headers["webhook-id"] == "run-1/0:hook"

    assert secret not in caplog.text
    assert other not in caplog.text


def test_masked_or_malformed_secrets_are_refused(client: TestClient, admin: Person) -> None:
    masked = client.post(API, json=_definition("••••abcd"), headers=admin.headers)
    assert masked.status_code == 422
    assert "steps.0.config.signing_secret" in masked.text
    assert "masked form" in masked.json()["error"]["message"]

    foreign = SecretBox([SecretBox.generate_key()])
    sealed_elsewhere = SEALED_PREFIX + foreign.encrypt(generate_secret()) + ":abcd"
    unopenable = client.post(API, json=_definition(sealed_elsewhere), headers=admin.headers)
    assert unopenable.status_code == 422
    assert "cannot be decrypted" in unopenable.text

    bad = client.post(API, json=_definition("not base64!"), headers=admin.headers)
    assert bad.status_code == 422
    assert "Standard Webhooks secret" in bad.text
    assert "not base64!" not in bad.text


def test_without_a_secret_nothing_is_sealed(client: TestClient, admin: Person) -> None:
    created = client.post(API, json=_definition(None), headers=admin.headers)
    assert created.status_code == 201, created.text
    assert "signing_secret" not in created.json()["steps"][0]["config"]


def test_rotation_re_encrypts_sealed_secrets(client: TestClient, admin: Person) -> None:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    secret = generate_secret()
    created = client.post(API, json=_definition(secret), headers=admin.headers)
    automation_id = created.json()["id"]
    (before,) = _stored_configs(store, automation_id)

    new_box = store.secret_box.with_new_key()
    with store.engine.begin() as connection:
        assert reseal_definitions(connection, new_box) == 1
    (after,) = _stored_configs(store, automation_id)
    assert after["signing_secret"] != before["signing_secret"]
    assert is_sealed(after["signing_secret"])
    only_new = SecretBox([new_box.keys[0]])
    assert unseal(only_new, after["signing_secret"]) == secret
