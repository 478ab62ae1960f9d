"""The edge's ASGI fast path answers exactly as the documented FastAPI routes do."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from qualflow.engine.automations import AutomationCreated, Automations
from qualflow.engine.runtime import Engine
from qualflow.web import edge

PATH = edge.JSON_EVENT_PATH


def routed_app(engine: Engine) -> FastAPI:
    app = FastAPI()
    app.include_router(edge.router)
    app.state.qualflow_engine = engine
    return app


def fast_path_only(engine: Engine) -> FastAPI:
    """Only the fast path, no routes: any delivery it let through would get a 404."""
    app = FastAPI()
    app.add_middleware(edge.EdgeFastPath)
    app.state.qualflow_engine = engine
    return app


def installed_app(engine: Engine) -> FastAPI:
    app = FastAPI()
    edge.install(app)
    app.state.qualflow_engine = engine
    return app


@pytest.fixture
def clients(engine: Engine) -> Iterator[tuple[TestClient, TestClient]]:
    with TestClient(routed_app(engine)) as routed, TestClient(fast_path_only(engine)) as fast:
        yield routed, fast


@pytest.fixture
def automation(engine: Engine) -> AutomationCreated:
    automations = Automations(engine.services)
    created = automations.create(
        {
            "name": "orders",
            "trigger": {"type": "json_event", "fields": {"email": "$.email"}},
            "steps": [{"action": "test.record", "key": "got", "config": {"label": "got"}}],
        }
    )
    automations.set_enabled(created.id, True)
    return created


def comparable(response: Any) -> tuple[int, Any]:
    """Status and body, without the event ids (which differ by construction)."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        body.pop("eventId", None)
    return response.status_code, body


def test_every_kind_of_delivery_gets_the_same_answer_on_both_paths(
    clients: tuple[TestClient, TestClient], automation: AutomationCreated
) -> None:
    assert automation.endpoint is not None
    token = automation.endpoint.url.split("urlTokenId=")[1]
    good = {"X-API-TOKEN": automation.api_token or ""}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        (
            "POST",
            PATH,
            {"params": {"urlTokenId": token}, "json": {"email": "a@b.c"}, "headers": good},
        ),
        (
            "POST",
            PATH,
            {"params": {"urlTokenId": token}, "json": {}, "headers": {"X-API-TOKEN": "x"}},
        ),
        ("POST", PATH, {"params": {"urlTokenId": "nope"}, "json": {}, "headers": good}),
        ("POST", PATH, {"json": {}, "headers": good}),
        (
            "POST",
            PATH,
            {
                "params": {"urlTokenId": token},
                "content": b"{",
                "headers": {**good, "content-type": "application/json"},
            },
        ),
        (
            "POST",
            PATH,
            {
                "params": {"urlTokenId": token},
                "content": b"a=1",
                "headers": {**good, "content-type": "text/plain"},
            },
        ),
        (
            "POST",
            PATH,
            {"params": {"urlTokenId": token}, "json": {"pad": "x" * (101 * 1024)}, "headers": good},
        ),
        (
            "POST",
            edge.WEBHOOK_PREFIX + "unknown",
            {
                "content": b"Topic=x",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
        ),
    ]
    routed, fast = clients
    for method, path, options in cases:
        expected = comparable(routed.request(method, path, **options))
        actual = comparable(fast.request(method, path, **options))
        assert actual == expected, (method, path, options.get("params"))


def test_other_requests_go_on_to_the_routes(engine: Engine) -> None:
    routed_only = TestClient(routed_app(engine))
    installed = TestClient(installed_app(engine))
    for method, path in [
        ("GET", PATH),
        ("GET", edge.WEBHOOK_PREFIX + "unknown"),
        ("POST", edge.WEBHOOK_PREFIX + "a/b"),
        ("POST", edge.WEBHOOK_PREFIX),
    ]:
        expected = routed_only.request(method, path)
        actual = installed.request(method, path)
        assert (actual.status_code, actual.text) == (expected.status_code, expected.text)
        assert actual.status_code in (404, 405)


def test_the_fast_path_answers_503_when_no_engine_runs() -> None:
    app = FastAPI()
    edge.install(app)
    with TestClient(app) as client:
        response = client.post(edge.WEBHOOK_PREFIX + "t", content=b"Topic=x")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
