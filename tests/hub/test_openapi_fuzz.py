"""Property-based checks of the REST API against its own OpenAPI document (schemathesis).

Every ``/api/v1`` operation gets a few generated requests (valid and schema-shaped), sent as an
admin through the real app; no answer may be a 5xx, and each must match what the document says
(status code, content type, body schema). Bounded, so it runs in seconds. Incentives included:
Tango on its sandbox in-process, a few rows seeded so that small generated ids find something.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from qualflow.incentives.api_keys import create_key
from qualflow.incentives.runtime import configure_incentives
from qualflow.sandbox import SandboxState
from qualflow.sandbox import create_app as create_sandbox_app
from qualflow.settings import Settings
from qualflow.web.app import create_app
from tests.hub.hub_support import Person
from tests.incentives.support import sandbox_with_tango

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
    tango = sandbox_with_tango()
    # Rewards are paid by the tests of incentives; here only the answers of the API count.
    configure_incentives(
        app, tango_transport=tango.transport, tango_interval=0.0, run_fulfiller=False
    )
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


_platforms = itertools.count()


def _platform_headers(client: TestClient) -> dict[str, str]:
    """A fresh platform API key per request (a platform has at most two active keys, and a
    generated call may deactivate one)."""
    platform = f"fuzz{next(_platforms)}"
    with client.app.state.store.sessionmaker() as db:  # type: ignore[attr-defined]
        _key, raw = create_key(db, platform=platform, display_name="Fuzz", actor="fuzz")
        db.commit()
    basic = base64.b64encode(f"{platform}:{raw}".encode()).decode()
    return {"Authorization": f"Basic {basic}"}


def _seed_incentives(client: TestClient) -> dict[str, Any]:
    """A pool with codes, an incentive on it and one reward held for review: the path
    parameters some generated requests are pinned to, so they reach more than a 404."""
    pools = "/api/v1/incentives/providers/gift-code-pools"
    pool = client.post(pools, json={"name": "Fuzz pool"}, headers=_admin_headers(client))
    assert pool.status_code == 201, pool.text
    imported = client.post(
        f"{pools}/{pool.json()['id']}/codes",
        content="code,value,currency,expiry\nFUZZ-0001-CODE,10.00,USD,2099-01-01\n",
        headers={**_admin_headers(client), "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    incentive = client.post(
        "/api/v1/incentives",
        json={"name": "Fuzz", "provider": "gift_codes", "gift_code_pool_id": pool.json()["id"],
              "amount": "10.00", "currency": "USD", "approval_mode": "review_all"},
        headers=_admin_headers(client),
    )  # fmt: skip
    assert incentive.status_code == 201, incentive.text
    reference = incentive.json()["reference_id"]
    reward = client.post(
        f"/api/v1/incentives/{reference}/rewards",
        json={"email": "fuzz@example.org"},
        headers=_platform_headers(client),
    )
    assert reward.status_code == 201, reward.text
    return {
        "reference_id": reference,
        "pool_id": pool.json()["id"],
        "reward_id": reward.json()["reference_id"],
    }


def test_the_api_answers_as_its_openapi_document_says(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().path.startswith("/api/v1")
    ]
    assert len(operations) > 20
    seeded = _seed_incentives(api)
    strategies = [operation.as_strategy() for operation in operations]
    for operation in operations:
        pinned = {p.name: seeded[p.name] for p in operation.path_parameters if p.name in seeded}
        if pinned and operation.path.startswith("/api/v1/incentives"):
            strategies.append(operation.as_strategy(path_parameters=pinned))
    strategy = st.one_of(strategies)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION * len(strategies),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        security = case.operation.definition.raw.get("security", [])
        platform_only = security == [{"PlatformKey": []}]
        kwargs.setdefault("headers", {}).update(
            _platform_headers(api) if platform_only else _admin_headers(api)
        )
        kwargs.pop("cookies", None)
        response = api.request(
            kwargs.pop("method"),
            kwargs.pop("url"),
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes | str) else None,
            json=kwargs.get("json"),
        )
        documented = case.operation.definition.raw.get("responses", {})
        if (case.method.upper(), case.path) in ENGINE_ONLY and response.status_code == 503:
            checks = [c for c in CHECKS if c is not not_a_server_error]
        elif response.status_code == 502 and "502" in documented:
            # The provider (e.g. Tango, given a generated platform key) refused: a documented
            # answer about the other service, not an error of this one.
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
    definition = {
        "name": "Nowhere",
        "connection_id": 4242,
        "trigger": {"type": "schedule", "cron": "0 3 * * *"},
        "steps": [{"action": "condition", "config": {"expression": "true"}}],
    }
    answer = client.post("/api/v1/automations", json=definition, headers=admin.headers)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"] == [
        {"field": "connection_id", "message": "no connection 4242 that you may use"}
    ]
    # An edit is held to the same rule (it answered 500, a foreign-key failure, before).
    created = client.post(
        "/api/v1/automations", json={**definition, "connection_id": None}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    automation = f"/api/v1/automations/{created.json()['id']}"
    edited = client.put(automation, json=definition, headers=admin.headers)
    assert edited.status_code == 422, edited.text
    assert edited.json()["error"]["details"] == [
        {"field": "connection_id", "message": "no connection 4242 that you may use"}
    ]
    assert client.get(automation, headers=admin.headers).json()["connection_id"] is None
