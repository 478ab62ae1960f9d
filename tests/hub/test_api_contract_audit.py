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


def test_every_201_documents_a_location_header(client: TestClient) -> None:
    missing = [
        f"{method} {path}"
        for method, path, operation in _operations(client)
        if "201" in operation["responses"]
        and "Location" not in operation["responses"]["201"].get("headers", {})
    ]
    assert missing == []


def test_created_resources_answer_with_their_location(
    client: TestClient, make_person: MakePerson
) -> None:
    admin = make_person("admin")
    created = client.post(
        f"{API}/users", json={"email": "new@example.org", "name": "New"}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    assert created.headers.get("location") == f"{API}/users/{created.json()['id']}"
    read = client.get(created.headers["location"], headers=admin.headers)
    assert read.status_code == 200
    assert read.json()["email"] == "new@example.org"

    token = client.post(f"{API}/me/tokens", json={"name": "script"}, headers=admin.headers)
    assert token.status_code == 201, token.text
    assert token.headers.get("location") == f"{API}/me/tokens/{token.json()['id']}"

    key = client.post(
        f"{API}/incentives/api-keys",
        json={"platform": "acme", "display_name": "Acme"},
        headers=admin.headers,
    )
    assert key.status_code == 201, key.text
    assert key.headers.get("location") == f"{API}/incentives/api-keys/{key.json()['id']}"

    pool = client.post(
        f"{API}/incentives/providers/gift-code-pools",
        json={"name": "Cards"},
        headers=admin.headers,
    )
    assert pool.status_code == 201, pool.text
    location = pool.headers.get("location")
    assert location == f"{API}/incentives/providers/gift-code-pools/{pool.json()['id']}"
    assert client.get(location, headers=admin.headers).json() == pool.json()


def _paged_operations(client: TestClient) -> list[tuple[str, dict[str, Any]]]:
    paged = []
    for method, path, operation in _operations(client):
        names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if {"limit", "offset"} & names:
            paged.append((f"{method} {path}", operation))
    return paged


def test_every_list_pages_with_the_same_documented_limit_and_offset(client: TestClient) -> None:
    paged = _paged_operations(client)
    assert len(paged) >= 4  # runs, automations, rewards, an incentive's rewards
    for name, operation in paged:
        query = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        assert set(query) >= {"limit", "offset"}, name
        limit, offset = query["limit"], query["offset"]
        assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 500), name
        assert limit["schema"]["default"] == 50, name
        assert "500" in limit.get("description", ""), name
        assert offset["schema"]["minimum"] == 0, name
        assert offset.get("description"), name


def test_the_total_of_every_page_is_documented(client: TestClient) -> None:
    document = client.app.openapi()  # type: ignore[attr-defined]
    schemas = document["components"]["schemas"]
    undocumented = [
        name
        for name, schema in schemas.items()
        if {"items", "total"} <= set(schema.get("properties", {}))
        and not schema["properties"]["total"].get("description")
    ]
    assert undocumented == []


def test_out_of_range_paging_is_refused_naming_the_parameter(
    client: TestClient, make_person: MakePerson
) -> None:
    admin = make_person("admin")
    for path in (f"{API}/runs", f"{API}/automations", f"{API}/incentives/rewards"):
        for query in ("limit=0", "limit=501", "offset=-1"):
            answer = client.get(f"{path}?{query}", headers=admin.headers)
            assert answer.status_code == 422, (path, query, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "validation_error"
            assert [d["field"] for d in error["details"]] == [query.split("=")[0]], (path, query)


def test_a_body_that_is_not_json_is_documented_as_the_422_it_answers(
    client: TestClient, make_person: MakePerson
) -> None:
    admin = make_person("admin")
    answer = client.post(
        f"{API}/users",
        content=b"{not json",
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    responses = client.app.openapi()["paths"][f"{API}/users"]["post"]["responses"]  # type: ignore[attr-defined]
    assert "not valid JSON" in responses["422"]["description"]
    assert "not valid JSON" not in responses["400"]["description"]


def test_every_operation_has_a_summary_a_description_and_a_declared_tag(
    client: TestClient,
) -> None:
    document = client.app.openapi()  # type: ignore[attr-defined]
    declared = {tag["name"]: tag.get("description") for tag in document.get("tags", [])}
    problems = []
    for method, path, operation in _operations(client):
        if not operation.get("summary"):
            problems.append(f"{method} {path}: no summary")
        if not operation.get("description"):
            problems.append(f"{method} {path}: no description")
        for tag in operation.get("tags") or ["(none)"]:
            if not declared.get(tag):
                problems.append(f"{method} {path}: tag {tag!r} is not declared with a description")
    assert problems == []


def test_a_refused_filter_names_its_parameter_in_details_like_every_422(
    client: TestClient, make_person: MakePerson
) -> None:
    admin = make_person("admin")
    cases = {
        "/runs?status=bogus": "status",
        "/runs?since=2020-01-02T00:00:00Z&until=2020-01-01T00:00:00Z": "until",
        "/incentives/rewards?status=bogus": "status",
        "/automations?trigger_type=bogus": "trigger_type",
    }
    for query, field in cases.items():
        answer = client.get(f"{API}{query}", headers=admin.headers)
        assert answer.status_code == 422, (query, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "validation_error", query
        assert [d["field"] for d in error.get("details") or []] == [field], (query, error)


def test_the_document_states_the_conventions_every_operation_follows(client: TestClient) -> None:
    description = client.app.openapi()["info"].get("description", "")  # type: ignore[attr-defined]
    for convention in ("ErrorResponse", "unknown field", "limit", "offset", "total", "Location"):
        assert convention in description, convention


def test_secrets_sent_are_never_answered(client: TestClient, make_person: MakePerson) -> None:
    admin = make_person("admin")
    h = admin.headers
    password, key = "a-Very-secret-pass-1", "tango-SECRET-key-9876"
    answers = [
        client.post(
            f"{API}/users",
            json={"email": "s@example.org", "name": "S", "password": password},
            headers=h,
        ),
        client.post(
            f"{API}/incentives/providers/tango-accounts",
            json={
                "name": "Tango",
                "platform_name": "qf",
                "platform_key": key,
                "customer_id": "C1",
                "account_id": "A1",
            },
            headers=h,
        ),
    ]
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    for path in ("/users", "/incentives/providers/tango-accounts", "/me/tokens"):
        answers.append(client.get(f"{API}{path}", headers=h))
    answers.append(client.get(answers[0].headers["location"], headers=h))
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        for secret in (password, key, admin.token):
            assert secret not in answer.text, (answer.request.url, secret)
    document = client.get("/openapi.json").text
    assert admin.token not in document


#: Collections with a filter naming another resource (404 when it does not exist).
FILTERS_NAMING_A_RESOURCE = {f"{API}/incentives/rewards"}  # ?incentive=INC-…


def test_an_operation_documents_no_error_it_cannot_give(client: TestClient) -> None:
    """A GET of a whole collection names no resource, so it cannot answer 404 or 409 (unless a
    filter names one); an operation taking no parameter and no body has nothing to refuse
    with 422."""
    wrong = []
    for method, path, operation in _operations(client):
        parameters = operation.get("parameters", [])
        statuses = set(operation["responses"])
        if method == "GET" and "{" not in path:
            gone = ("409",) if path in FILTERS_NAMING_A_RESOURCE else ("404", "409")
            wrong += [f"{method} {path}: {s}" for s in gone if s in statuses]
        if not parameters and "requestBody" not in operation and "422" in statuses:
            wrong.append(f"{method} {path}: 422")
    assert wrong == []
