"""Connections over REST, validated against the in-process Qualtrics sandbox."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from qualflow.store.runtime import Store
from tests.hub.conftest import Sandbox
from tests.hub.hub_support import MakePerson, Person


def _create(hub: TestClient, person: Person, sandbox: Sandbox, **fields: Any) -> Any:
    body = {"name": "Main brand", "base_url": sandbox.base_url, "api_token": sandbox.admin_token}
    body.update(fields)
    return hub.post("/api/v1/connections", json=body, headers=person.headers)


def _raw_token(hub: TestClient, connection_id: int) -> str:
    store: Store = hub.app.state.store  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT api_token FROM connections WHERE id = :id"), {"id": connection_id}
            ).scalar_one()
        )


def test_create_validates_with_whoami_and_never_returns_the_token(
    hub: TestClient, admin: Person, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        answer = _create(hub, admin, sandbox, username="brand.admin@example.org", shared=True)
        assert answer.status_code == 201, answer.text
        body = answer.json()
        listed = hub.get("/api/v1/connections", headers=admin.headers)
        one = hub.get(f"/api/v1/connections/{body['id']}", headers=admin.headers)
    assert body["identity"]["user_id"] == sandbox.admin_user_id
    assert body["identity"]["brand_id"] == sandbox.state.config.brand_id
    assert body["brand_id"] == "sandbox"
    assert body["qualtrics_user_name"] == "brand.admin@example.org"
    assert body["api_token_hint"] == "••••" + sandbox.admin_token[-4:]
    assert body["auth_type"] == "token"
    assert body["owner"]["id"] == admin.id
    assert body["validated_at"] is not None
    for text_body in (answer.text, listed.text, one.text):
        assert sandbox.admin_token not in text_body
    assert sandbox.admin_token not in caplog.text
    raw = _raw_token(hub, body["id"])
    assert sandbox.admin_token not in raw
    assert raw.startswith("gAAAAA")  # a Fernet token


def test_rejected_credentials_are_a_422_and_nothing_is_saved(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    answer = _create(hub, admin, sandbox, api_token="not-a-real-token-123")
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "credentials_rejected"
    assert "Qualtrics rejected the credentials" in error["message"]
    assert "not-a-real-token-123" not in answer.text
    assert hub.get("/api/v1/connections", headers=admin.headers).json()["items"] == []


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"datacenter": "iad1"}, "exactly one of datacenter or base_url"),
        ({"api_token": None}, "API token or OAuth client credentials are required"),
        ({"oauth_client_id": "abc"}, "not both"),
        ({"name": "  "}, "name"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"api_token": "tökén"}, "printable ASCII"),
    ],
)
def test_bad_connection_input_is_a_422(
    hub: TestClient, admin: Person, sandbox: Sandbox, fields: dict[str, Any], fragment: str
) -> None:
    answer = _create(hub, admin, sandbox, **fields)
    assert answer.status_code == 422
    assert fragment in answer.json()["error"]["message"]


def test_unknown_datacenter_is_refused_before_calling_anyone(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    answer = _create(hub, admin, sandbox, base_url=None, datacenter="mars1")
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_connection"
    assert "unknown Qualtrics datacenter" in answer.json()["error"]["message"]


def test_oauth_connection_masks_the_client_secret(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    client_id, secret = sandbox.state.add_oauth_client(user_id=sandbox.admin_user_id)
    answer = _create(
        hub, admin, sandbox, api_token=None, oauth_client_id=client_id, oauth_client_secret=secret
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["auth_type"] == "oauth"
    assert body["oauth_client_id"] == client_id
    assert body["oauth_client_secret_hint"] == "••••" + secret[-4:]
    assert body["identity"]["user_id"] == sandbox.admin_user_id
    assert secret not in answer.text


def test_duplicate_names_conflict(hub: TestClient, admin: Person, sandbox: Sandbox) -> None:
    assert _create(hub, admin, sandbox).status_code == 201
    again = _create(hub, admin, sandbox)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "name_taken"


def test_edits_are_revalidated_only_when_credentials_change(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    connection_id = _create(hub, admin, sandbox).json()["id"]
    renamed = hub.patch(
        f"/api/v1/connections/{connection_id}",
        json={"name": "Renamed", "requests_per_minute": 600},
        headers=admin.headers,
    )
    assert renamed.status_code == 200
    assert renamed.json()["identity"] is None
    assert renamed.json()["name"] == "Renamed"
    assert renamed.json()["requests_per_minute"] == 600

    other, other_token = sandbox.state.create_user("analyst@example.org")
    switched = hub.patch(
        f"/api/v1/connections/{connection_id}",
        json={"api_token": other_token},
        headers=admin.headers,
    )
    assert switched.status_code == 200
    assert switched.json()["identity"]["user_id"] == other.id
    assert switched.json()["qualtrics_user_id"] == other.id
    assert other_token not in switched.text

    before = _raw_token(hub, connection_id)
    broken = hub.patch(
        f"/api/v1/connections/{connection_id}",
        json={"api_token": "wrong-token-wrong-token"},
        headers=admin.headers,
    )
    assert broken.status_code == 422
    assert _raw_token(hub, connection_id) == before
    still = hub.get(f"/api/v1/connections/{connection_id}", headers=admin.headers).json()
    assert still["qualtrics_user_id"] == other.id


def test_revalidate_reports_a_revoked_token(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    user, token = sandbox.state.create_user("soon.revoked@example.org")
    connection_id = _create(hub, admin, sandbox, api_token=token).json()["id"]
    ok = hub.post(f"/api/v1/connections/{connection_id}/validate", headers=admin.headers)
    assert ok.status_code == 200
    assert ok.json()["identity"]["user_id"] == user.id
    sandbox.state.new_api_token(user.id)  # the stored token stops working
    revoked = hub.post(f"/api/v1/connections/{connection_id}/validate", headers=admin.headers)
    assert revoked.status_code == 422
    assert revoked.json()["error"]["code"] == "credentials_rejected"


def test_validate_unsaved_credentials(hub: TestClient, admin: Person, sandbox: Sandbox) -> None:
    answer = hub.post(
        "/api/v1/connections/validate",
        json={"base_url": sandbox.base_url, "api_token": sandbox.admin_token},
        headers=admin.headers,
    )
    assert answer.status_code == 200
    assert answer.json()["user_id"] == sandbox.admin_user_id
    assert hub.get("/api/v1/connections", headers=admin.headers).json()["items"] == []


def test_visibility_and_permissions(
    hub: TestClient, admin: Person, sandbox: Sandbox, make_person: MakePerson
) -> None:
    private_id = _create(hub, admin, sandbox, name="Admin private").json()["id"]
    shared_id = _create(hub, admin, sandbox, name="Shared", shared=True).json()["id"]
    manager = make_person("manager")
    member = make_person("member")

    names = [
        c["name"] for c in hub.get("/api/v1/connections", headers=member.headers).json()["items"]
    ]
    assert names == ["Shared"]
    hidden = hub.get(f"/api/v1/connections/{private_id}", headers=manager.headers)
    assert hidden.status_code == 404

    refused = _create(hub, member, sandbox, name="Member's")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "requires Manage permission on connections"
    assert hub.delete(f"/api/v1/connections/{shared_id}", headers=member.headers).status_code == 403

    unshare = hub.patch(
        f"/api/v1/connections/{shared_id}", json={"shared": False}, headers=manager.headers
    )
    assert unshare.status_code == 403
    assert "only the owner or an admin" in unshare.json()["error"]["message"]
    rename = hub.patch(
        f"/api/v1/connections/{shared_id}", json={"name": "Shared brand"}, headers=manager.headers
    )
    assert rename.status_code == 200

    mine = _create(hub, manager, sandbox, name="Manager's").json()["id"]
    all_for_admin = hub.get("/api/v1/connections", headers=admin.headers).json()["items"]
    assert {c["id"] for c in all_for_admin} == {private_id, shared_id, mine}
    assert hub.get("/api/v1/connections").status_code == 401


def test_surveys_shared_with_the_connection_user(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    service, service_token = sandbox.state.create_user("svc@example.org", account_type="UT_SERVICE")
    shared_active = sandbox.state.new_survey("Onboarding NPS", owner_id=sandbox.admin_user_id)
    sandbox.state.update_survey(shared_active.id, is_active=True)
    draft = sandbox.state.new_survey("Draft survey", owner_id=sandbox.admin_user_id)
    for survey in (shared_active, draft):
        sandbox.state.directory.add_collaboration(
            survey.id, {"userId": service.id, "permissions": {}}
        )
    sandbox.state.new_survey("Not shared", owner_id=sandbox.admin_user_id)  # the user can't see
    own = sandbox.state.new_survey("Service's own", owner_id=service.id)
    sandbox.state.update_survey(own.id, is_active=True)

    connection_id = _create(hub, admin, sandbox, api_token=service_token).json()["id"]
    everything = hub.get(f"/api/v1/connections/{connection_id}/surveys", headers=admin.headers)
    assert everything.status_code == 200
    assert everything.json()["total"] == 3
    usable = hub.get(
        f"/api/v1/connections/{connection_id}/surveys",
        params={"active_only": True, "shared_only": True},
        headers=admin.headers,
    ).json()
    assert [s["name"] for s in usable["elements"]] == ["Onboarding NPS"]
    assert usable["elements"][0]["shared"] is True
    assert usable["elements"][0]["is_active"] is True


def test_a_spent_rate_limit_is_a_503_with_retry_after_instead_of_a_hung_request(
    hub: TestClient, admin: Person, sandbox: Sandbox
) -> None:
    connection_id = _create(hub, admin, sandbox, requests_per_minute=1).json()["id"]
    surveys = f"/api/v1/connections/{connection_id}/surveys"
    assert hub.get(surveys, headers=admin.headers).status_code == 200  # the minute's request
    for answer in (
        hub.get(surveys, headers=admin.headers),
        hub.post(f"/api/v1/connections/{connection_id}/validate", headers=admin.headers),
    ):
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "rate_limited"
        assert "1 request per minute" in error["message"]
        assert 10 < int(answer.headers["Retry-After"]) <= 65
