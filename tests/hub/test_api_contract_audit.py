"""The REST API as an integrator sees it: what the OpenAPI document promises, the API does.

Every operation is described (summary, description, a declared tag); a body's unknown fields are
refused the same way by every router (422 naming the field); a 201 carries a ``Location`` header
naming the new resource, and the document says so; list paging is documented the same way.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.hub.hub_support import MakePerson

API = "/api/v1"


def _operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return [
        (method.upper(), path, operation)
        for path, item in paths.items()
        if path.startswith(API)
        for method, operation in item.items()
    ]


def test_unknown_body_fields_are_refused_by_every_router(
    client: TestClient, make_person: MakePerson
) -> None:
    admin = make_person("admin")
    bodies = {
        f"{API}/users": {"email": "x@example.org", "name": "X", "nickname": "x"},
        f"{API}/me/tokens": {"name": "script", "nickname": "x"},
        f"{API}/connections": {"name": "c", "api_token": "t" * 20, "nickname": "x"},
        f"{API}/incentives/api-keys": {"platform": "p", "display_name": "P", "nickname": "x"},
    }
    for path, body in bodies.items():
        answer = client.post(path, json=body, headers=admin.headers)
        assert answer.status_code == 422, (path, answer.status_code, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "validation_error", (path, error)
        assert "nickname" in error["message"], (path, error)
    for path, body in {
        f"{API}/me": {"name": "Ada", "nickname": "x"},
        f"{API}/users/{admin.id}": {"name": "Ada", "nickname": "x"},
    }.items():
        answer = client.patch(path, json=body, headers=admin.headers)
        assert answer.status_code == 422, (path, answer.status_code, answer.text)
        assert "nickname" in answer.json()["error"]["message"]


#: Trigger data of a manual run is whatever the automation's steps read: any object.
FREE_FORM_BODIES = {("POST", f"{API}/automations/{{automation_id}}/runs")}


def test_the_document_says_unknown_body_fields_are_refused(client: TestClient) -> None:
    document = client.app.openapi()  # type: ignore[attr-defined]
    schemas = document["components"]["schemas"]
    open_bodies = []
    for method, path, operation in _operations(client):
        if (method, path) in FREE_FORM_BODIES:
            continue
        content = operation.get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            continue
        for option in schema.get("anyOf", [schema]):
            if option.get("type") == "null":
                continue
            name = option.get("$ref", "").rsplit("/", 1)[-1]
            if (schemas[name] if name else option).get("additionalProperties") is not False:
                open_bodies.append(f"{method} {path} ({name or option.get('type')})")
    assert open_bodies == []
