"""The REST API of automations and runs, through the real app (accounts, errors, lifespan)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from pydantic import SecretStr

from qualflow.accounts.tokens import issue_token
from qualflow.accounts.users import create_user
from qualflow.settings import Settings
from qualflow.web.app import add_lifespan, create_app
from qualflow.web.edge import engine_lifespan
from tests.engine.engine_support import CALLS, FAILURES

API = "/api/v1"


@dataclass
class Api:
    client: TestClient
    admin: dict[str, str]
    viewer: dict[str, str]

    def wait_run(self, run_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            answer = self.client.get(f"{API}/runs/{run_id}", headers=self.admin)
            if answer.status_code == 200 and answer.json()["status"] not in ("queued", "running"):
                return dict(answer.json())
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.05)


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_keys=[SecretStr(Fernet.generate_key().decode())],
        public_base_url="http://hub.test",
    )
    app = create_app(settings)
    add_lifespan(app, engine_lifespan(executor_id="api-test"))
    with TestClient(app) as client:
        headers = {}
        with app.state.store.sessionmaker() as session:
            for role in ("admin", "viewer"):
                user = create_user(
                    session, email=f"{role}@example.org", name=role, role=role, password=None
                )
                _token, raw = issue_token(session, user, "tests")
                headers[role] = {"Authorization": f"Bearer {raw}"}
            session.commit()
        yield Api(client, headers["admin"], headers["viewer"])


def definition(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "orders to the CRM",
        "trigger": {"type": "json_event", "fields": {"email": "$.customer.email"}},
        "steps": [{"action": "test.record", "key": "crm", "config": {"label": "crm"}}],
    }
    body.update(changes)
    return body


def test_invalid_definitions_are_refused_listing_every_problem(api: Api) -> None:
    bad = definition(
        steps=[
            {"action": "notify.email", "config": {"to": ["nobody"], "subject": "{{ oops"}},
            {"action": "no.such.action"},
            {"action": "condition", "config": {"expression": "__import__('os')"}},
        ]
    )

    answer = api.client.post(f"{API}/automations", json=bad, headers=api.admin)

    assert answer.status_code == 422
    fields = {d["field"] for d in answer.json()["error"]["details"]}
    assert {"steps.0.config.to", "steps.0.config.subject", "steps.0.config.body"} <= fields
    assert "steps.1.action" in fields
    assert "steps.2.config.expression" in fields


def test_schema_errors_are_422_too(api: Api) -> None:
    answer = api.client.post(
        f"{API}/automations",
        json={"name": "", "trigger": {"type": "schedule", "cron": "every day"}, "steps": []},
        headers=api.admin,
    )
    assert answer.status_code == 422
    message = answer.json()["error"]["message"]
    assert "cron" in message
    assert "steps" in message


def test_json_event_automation_end_to_end_over_the_api(api: Api) -> None:
    created = api.client.post(f"{API}/automations", json=definition(), headers=api.admin)
    assert created.status_code == 201, created.text
    automation = created.json()
    token = automation["api_token"]
    assert token
    assert automation["enabled"] is False

    shown = api.client.get(f"{API}/automations/{automation['id']}", headers=api.viewer).json()
    assert "api_token" not in shown
    assert token not in str(shown)
    assert shown["endpoint"]["token_last4"] == token[-4:]

    enabled = api.client.post(f"{API}/automations/{automation['id']}/enable", headers=api.admin)
    assert enabled.json()["enabled"] is True
    url = shown["endpoint"]["url"].removeprefix("http://hub.test")
    posted = api.client.post(
        url, json={"customer": {"email": "ada@example.org"}}, headers={"X-API-TOKEN": token}
    )
    assert posted.status_code == 200, posted.text
    run_id = f"{automation['id']}:event:{posted.json()['eventId']}"

    run = api.wait_run(run_id)
    assert run["status"] == "succeeded"
    assert run["steps"][0]["output"] == {"label": "crm", "n": 1}
    assert CALLS["crm"][0]["trigger"]["fields"] == {"email": "ada@example.org"}
    listed = api.client.get(
        f"{API}/runs",
        params={"automation_id": automation["id"], "status": "succeeded"},
        headers=api.viewer,
    ).json()
    assert [r["id"] for r in listed["items"]] == [run_id]


def test_edits_are_versions(api: Api) -> None:
    automation = api.client.post(f"{API}/automations", json=definition(), headers=api.admin).json()
    changed = definition(steps=[{"action": "condition", "config": {"expression": "true"}}])

    updated = api.client.put(
        f"{API}/automations/{automation['id']}", json=changed, headers=api.admin
    )
    versions = api.client.get(
        f"{API}/automations/{automation['id']}/versions", headers=api.viewer
    ).json()["items"]

    assert updated.json()["version"] == 2
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["definition"]["steps"][0]["action"] == "test.record"
    assert versions[0]["created_by"] == "admin@example.org"


def test_failed_run_is_replayed_over_the_api(api: Api) -> None:
    FAILURES["crm"] = ["fatal"]
    automation = api.client.post(f"{API}/automations", json=definition(), headers=api.admin).json()
    started = api.client.post(
        f"{API}/automations/{automation['id']}/runs", json={"x": 1}, headers=api.admin
    )
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    assert api.wait_run(run_id)["status"] == "failed"

    replayed = api.client.post(f"{API}/runs/{run_id}/replay", headers=api.admin)
    assert replayed.status_code == 200
    run = api.wait_run(run_id)

    assert run["status"] == "succeeded"
    assert [a["status"] for a in run["attempts"]] == ["failed", "succeeded"]
    again = api.client.post(f"{API}/runs/{run_id}/replay", headers=api.admin)
    assert again.status_code == 409
    assert "only failed or cancelled" in again.json()["error"]["message"]
    cancel = api.client.post(f"{API}/runs/{run_id}/cancel", headers=api.admin)
    assert cancel.status_code == 409


def test_permissions_and_missing_things(api: Api) -> None:
    assert api.client.get(f"{API}/automations").status_code == 401
    forbidden = api.client.post(f"{API}/automations", json=definition(), headers=api.viewer)
    assert forbidden.status_code == 403
    assert "automations" in forbidden.json()["error"]["message"]
    assert api.client.get(f"{API}/automations/999", headers=api.viewer).status_code == 404
    assert api.client.get(f"{API}/runs/nope", headers=api.viewer).status_code == 404
    bad_status = api.client.get(f"{API}/runs", params={"status": "exploded"}, headers=api.viewer)
    assert bad_status.status_code == 422
    actions = api.client.get(f"{API}/actions", headers=api.viewer).json()
    names = {a["name"] for a in actions}
    assert {"qualtrics.get_response", "condition", "notify.email", "http.request"} <= names


def test_openapi_documents_the_engine_routes(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert "/api/v1/automations" in paths
    assert "/api/v1/runs/{run_id}/replay" in paths
    assert "/hooks/qualtrics/{token}" in paths
    assert "/inbound-event/v1/events/json/triggers" in paths
