"""The app factory: health, error bodies, OpenAPI."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from qualflow import __version__
from qualflow.engine.runtime import engine_for, running_engine
from qualflow.settings import Settings
from qualflow.store.db import make_engine
from qualflow.web.app import create_app
from qualflow.web.ui.rendering import iter_routes


def test_healthz_reports_database_ok(client: TestClient) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok", "version": __version__}


def test_healthz_reports_unavailable_database(tmp_path: Path, settings: Settings) -> None:
    # SQLite cannot open a directory; nothing listens on PostgreSQL's port 1.
    broken = f"sqlite:///{tmp_path}" if settings.is_sqlite else "postgresql://127.0.0.1:1/none"
    app = create_app(settings, engine="off")
    with TestClient(app) as client:
        store = app.state.store
        working = store.engine
        store.engine = make_engine(broken)
        try:
            answer = client.get("/healthz")
        finally:
            store.engine.dispose()
            store.engine = working
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "database_unavailable"


def test_unknown_route_gets_error_body(client: TestClient) -> None:
    answer = client.get("/api/v1/no-such-thing")
    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": "not_found", "message": "Not Found"}}


def test_validation_error_is_readable(client: TestClient, admin) -> None:
    answer = client.post("/api/v1/users", json={"name": "x"}, headers=admin.headers)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert "email: Field required" in error["message"]
    assert error["details"][0]["field"] == "email"


def test_malformed_json_is_a_4xx(client: TestClient, admin) -> None:
    answer = client.post(
        "/api/v1/users",
        content=b"{not json",
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == (
        "invalid request: the body is not valid JSON (error at character 1)"
    )
    assert error["details"][0]["field"] == "body"


def test_a_body_sent_as_a_form_or_text_is_refused_with_the_media_type(
    client: TestClient, admin
) -> None:
    for media_type, body in (
        ("application/x-www-form-urlencoded", b"email=a@example.org&name=A"),
        ("text/plain", b'{"email": "a@example.org", "name": "A"}'),
    ):
        answer = client.post(
            "/api/v1/users", content=body, headers={**admin.headers, "Content-Type": media_type}
        )
        assert answer.status_code == 415
        assert answer.json()["error"] == {
            "code": "unsupported_media_type",
            "message": "the body must be JSON (Content-Type: application/json), "
            f"not {media_type}",
        }
    users = client.get("/openapi.json").json()["paths"]["/api/v1/users"]["post"]
    assert "415" in users["responses"]
    # A JSON body of the wrong shape is still a validation error.
    answer = client.post("/api/v1/users", json=["a"], headers=admin.headers)
    assert answer.status_code == 422


def test_an_unreadable_body_is_a_documented_400(client: TestClient, admin) -> None:
    answer = client.post(
        "/api/v1/users",
        content=b"\xff\xfe{",
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "bad_request"
    users = client.get("/openapi.json").json()["paths"]["/api/v1/users"]["post"]
    assert users["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


def test_openapi_documents_security_errors_and_tags(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["PersonalToken"]["scheme"] == "bearer"
    assert schemes["SessionCookie"]["in"] == "cookie"
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    users = schema["paths"]["/api/v1/users"]["post"]
    assert users["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert users["responses"]["403"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    assert {"PersonalToken": []} in users["security"]
    assert {tag["name"] for tag in schema["tags"]} >= {"auth", "me", "users", "health"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert operation.get("tags"), f"{method.upper()} {path} has no tag"
            # A written summary, not one FastAPI made from the function's name ("Read Me").
            generated = operation["operationId"].split("_api_v1")[0].replace("_", " ").title()
            assert operation["summary"] != generated, f"{method.upper()} {path} has no summary"


def test_hub_operations_document_their_answers(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation_ids = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            operation_ids.append(operation["operationId"])
            if not set(operation.get("tags", [])) & {
                "auth",
                "me",
                "users",
                "connections",
                "health",
            }:
                continue
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert len(success) == 1, where
            if success[0] != "204":
                assert "schema" in responses[success[0]]["content"]["application/json"], where
            if operation.get("security"):
                assert "401" in responses, f"{where} does not document 401"
            for code, answer in responses.items():
                if code.startswith(("4", "5")):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), f"{where} {code}"
    assert len(operation_ids) == len(set(operation_ids))


def test_create_app_is_a_complete_hub_with_the_engine_in_its_lifespan(settings: Settings) -> None:
    app = create_app(settings)
    paths = {getattr(route, "path", "") for route in iter_routes(app.routes)}
    assert {"/hooks/qualtrics/{token}", "/inbound-event/v1/events/json/triggers"} <= paths
    assert running_engine() is None
    with TestClient(app) as client:
        engine = running_engine()
        assert engine is not None
        assert engine.started
        assert app.state.qualflow_engine is engine
        # The edge records and answers (an unknown endpoint is a 4xx, not "engine not running").
        answer = client.post(
            "/inbound-event/v1/events/json/triggers?urlTokenId=unknown",
            json={"a": 1},
            headers={"X-API-TOKEN": "nope"},
        )
        assert 400 <= answer.status_code < 500
        assert answer.status_code != 503
    assert running_engine() is None


def test_an_engine_already_running_is_used_and_left_running(settings: Settings) -> None:
    engine = engine_for(settings, executor_id="outer")
    engine.start()
    try:
        app = create_app(settings)
        with TestClient(app):
            assert app.state.qualflow_engine is engine
        assert running_engine() is engine
        assert engine.started
    finally:
        engine.stop()
    assert running_engine() is None


def test_without_an_engine_the_edge_asks_to_retry(settings: Settings) -> None:
    with TestClient(create_app(settings, engine="off")) as client:
        assert running_engine() is None
        answer = client.post(
            "/inbound-event/v1/events/json/triggers?urlTokenId=x",
            json={"a": 1},
            headers={"X-API-TOKEN": "nope"},
        )
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable"
