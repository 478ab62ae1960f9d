"""The JSON-event edge: auth, limits, JSONPath fields, recording of accepted and rejected events."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from qualflow.engine.automations import AutomationCreated, Automations
from qualflow.engine.models import InboundEvent
from qualflow.engine.runs import RunDetail, Runs
from qualflow.engine.runtime import Engine
from qualflow.web import edge
from tests.engine.engine_support import CALLS

Wait = Callable[..., RunDetail]
PATH = "/inbound-event/v1/events/json/triggers"


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = FastAPI()
    edge.install(app)
    app.state.qualflow_engine = engine
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def automation(engine: Engine) -> AutomationCreated:
    automations = Automations(engine.services)
    created = automations.create(
        {
            "name": "orders",
            "trigger": {
                "type": "json_event",
                "fields": {"email": "$.customer.email", "skus": "$.items[*].sku"},
            },
            "steps": [{"action": "test.record", "key": "got", "config": {"label": "got"}}],
        }
    )
    automations.set_enabled(created.id, True)
    return created


def token_of(automation: AutomationCreated) -> str:
    assert automation.endpoint is not None
    return automation.endpoint.url.split("urlTokenId=")[1]


def events(engine: Engine) -> list[InboundEvent]:
    with engine.services.sessionmaker() as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


ORDER = {"customer": {"email": "ada@example.org"}, "items": [{"sku": "A1"}, {"sku": "B2"}]}


def test_accepted_event_starts_a_run_with_extracted_fields(
    client: TestClient, engine: Engine, automation: AutomationCreated, wait_run: Wait
) -> None:
    response = client.post(
        PATH,
        params={"urlTokenId": token_of(automation)},
        json=ORDER,
        headers={"X-API-TOKEN": automation.api_token or ""},
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    event_id = response.json()["eventId"]
    run = wait_run(f"{automation.id}:event:{event_id}")
    assert run.status == "succeeded"
    trigger: dict[str, Any] = CALLS["got"][0]["trigger"]
    assert trigger["fields"] == {"email": "ada@example.org", "skus": ["A1", "B2"]}
    assert trigger["document"] == ORDER
    [event] = events(engine)
    assert event.status == "dispatched"
    assert event.run_id == run.id


def test_basic_auth_and_idempotency_key(
    client: TestClient, engine: Engine, automation: AutomationCreated, wait_run: Wait
) -> None:
    credentials = base64.b64encode(f"partner:{automation.api_token}".encode()).decode()
    for _ in range(3):
        response = client.post(
            PATH,
            params={"urlTokenId": token_of(automation)},
            json=ORDER,
            headers={"Authorization": f"Basic {credentials}", "Idempotency-Key": "order-42"},
        )
        assert response.status_code == 200, response.text

    run = wait_run(f"{automation.id}:event:order-42")
    assert run.status == "succeeded"
    assert len(CALLS["got"]) == 1
    assert Runs(engine.services).query(automation_id=automation.id).total == 1


@pytest.mark.parametrize(
    ("mutate", "status", "message"),
    [
        (lambda kw: kw["headers"].pop("X-API-TOKEN"), 401, "authentication required"),
        (lambda kw: kw["headers"].update({"X-API-TOKEN": "wrong"}), 401, "token is not valid"),
        (lambda kw: kw["params"].update({"urlTokenId": "nope"}), 404, "no automation"),
        (lambda kw: kw["params"].pop("urlTokenId"), 400, "urlTokenId"),
        (
            lambda kw: kw.update(
                {
                    "content": b"{not json",
                    "headers": {**kw["headers"], "Content-Type": "application/json"},
                }
            ),
            400,
            "malformed JSON",
        ),
        (
            lambda kw: kw.update(
                {
                    "content": b"a=1",
                    "headers": {
                        **kw["headers"],
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                }
            ),
            415,
            "application/json",
        ),
        (
            lambda kw: kw.update(
                {
                    "content": b'{"x": "' + b"a" * (100 * 1024) + b'"}',
                    "headers": {**kw["headers"], "Content-Type": "application/json"},
                }
            ),
            413,
            "larger than 100 KB",
        ),
    ],
    ids=[
        "no-token",
        "wrong-token",
        "unknown-url",
        "no-url-token",
        "bad-json",
        "not-json",
        "too-big",
    ],
)
def test_bad_input_is_refused_with_a_reason_and_recorded(
    client: TestClient,
    engine: Engine,
    automation: AutomationCreated,
    mutate: Callable[[dict[str, Any]], Any],
    status: int,
    message: str,
) -> None:
    request: dict[str, Any] = {
        "params": {"urlTokenId": token_of(automation)},
        "headers": {"X-API-TOKEN": automation.api_token or ""},
        "json": ORDER,
    }
    mutate(request)
    if "content" in request:
        request.pop("json")

    response = client.post(PATH, **request)

    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    [event] = events(engine)
    assert event.status == "rejected"
    assert event.reason is not None
    assert message in event.reason
    assert Runs(engine.services).query().total == 0


def test_disabled_automation_refuses_events(
    client: TestClient, engine: Engine, automation: AutomationCreated
) -> None:
    Automations(engine.services).set_enabled(automation.id, False)
    engine.endpoints.invalidate()

    response = client.post(
        PATH,
        params={"urlTokenId": token_of(automation)},
        json=ORDER,
        headers={"X-API-TOKEN": automation.api_token or ""},
    )

    assert response.status_code == 409
    assert "disabled" in response.json()["error"]["message"]


def test_rotated_token_replaces_the_old_one(
    client: TestClient, engine: Engine, automation: AutomationCreated
) -> None:
    new_token = Automations(engine.services).rotate_token(automation.id)
    engine.endpoints.invalidate()
    url = {"urlTokenId": token_of(automation)}

    old = client.post(
        PATH, params=url, json={}, headers={"X-API-TOKEN": automation.api_token or ""}
    )
    new = client.post(PATH, params=url, json={}, headers={"X-API-TOKEN": new_token})

    assert old.status_code == 401
    assert new.status_code == 200
