"""Property-based checks of the REST API against its own OpenAPI document (schemathesis).

Every ``/api/v1`` operation gets a few generated requests (valid and schema-shaped), sent as an
admin through the real app; no answer may be a 5xx, and each must match what the document says
(status code, content type, body schema). Bounded, so it runs in seconds. The incentives area
(``/api/v1/incentives``) is fuzzed by its own tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from qualflow.accounts.tokens import issue_token
from qualflow.accounts.users import create_user, get_user_by_email
from qualflow.connections.clients import configure_clients
from qualflow.sandbox import SandboxState
from qualflow.sandbox import create_app as create_sandbox_app
from qualflow.settings import Settings
from qualflow.web.app import create_app
from tests.hub.hub_support import Person

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 4
#: The app runs without an engine here, so "run now" documents and answers 503.
ENGINE_ONLY = {("POST", "/api/v1/automations/{automation_id}/runs")}
ADMIN = "fuzz-admin@example.org"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    """The hub on SQLite with Qualtrics calls going to an in-process sandbox (no network)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        secret_keys=[SecretStr(Fernet.generate_key().decode())],
        public_base_url="http://hub.test",
    )
    sandbox = SandboxState()
    transport = httpx.ASGITransport(app=create_sandbox_app(sandbox))
    app = create_app(settings, qualtrics_transport=transport, engine="off")
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            with app.state.store.sessionmaker() as db:
                create_user(db, email=ADMIN, name="Fuzz", role="admin", password=None)
                db.commit()
            yield client
    finally:
        configure_clients(transport=None)


def _admin_headers(client: TestClient) -> dict[str, str]:
    """A fresh token per request: a generated call may revoke the previous one."""
    with client.app.state.store.sessionmaker() as db:  # type: ignore[attr-defined]
        admin = get_user_by_email(db, ADMIN)
        assert admin is not None
        _token, raw = issue_token(db, admin, "fuzz")
        db.commit()
    return {"Authorization": f"Bearer {raw}"}


def test_the_api_answers_as_its_openapi_document_says(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().path.startswith("/api/v1")
        and not result.ok().path.startswith("/api/v1/incentives")
    ]
    assert len(operations) > 20
    strategy = st.one_of([operation.as_strategy() for operation in operations])

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION * len(operations),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        kwargs.setdefault("headers", {}).update(_admin_headers(api))
        kwargs.pop("cookies", None)
        response = api.request(
            kwargs.pop("method"),
            kwargs.pop("url"),
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes | str) else None,
            json=kwargs.get("json"),
        )
        if (case.method.upper(), case.path) in ENGINE_ONLY and response.status_code == 503:
            checks = [c for c in CHECKS if c is not not_a_server_error]
        else:
            checks = CHECKS
        case.validate_response(response, checks=checks)

    check()


def test_ids_out_of_range_are_a_422_not_a_database_error(client: TestClient, admin: Person) -> None:
    huge = 2**63
    for path in (
        f"/api/v1/users/{huge}",
        f"/api/v1/connections/{huge}",
        f"/api/v1/automations/{huge}",
        f"/api/v1/runs?automation_id={huge}",
        f"/api/v1/automations?offset={huge}",
    ):
        answer = client.get(path, headers=admin.headers)
        assert answer.status_code == 422, path
        assert answer.json()["error"]["code"] == "validation_error"


def test_an_automation_needs_a_connection_that_exists(client: TestClient, admin: Person) -> None:
    answer = client.post(
        "/api/v1/automations",
        json={
            "name": "Nowhere",
            "connection_id": 4242,
            "trigger": {"type": "schedule", "cron": "0 3 * * *"},
            "steps": [{"action": "condition", "config": {"expression": "true"}}],
        },
        headers=admin.headers,
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["details"] == [
        {"field": "connection_id", "message": "no connection 4242 that you may use"}
    ]
