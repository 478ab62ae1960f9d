"""REST: authentication (401), permissions (403 naming what is missing), people and tokens."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from qualflow.accounts.dependencies import require
from qualflow.accounts.permissions import ROLE_GRANTS, Area, Level, Role
from qualflow.accounts.principal import Principal
from qualflow.accounts.throttle import sign_in_throttle
from qualflow.settings import Settings
from qualflow.web.app import create_app
from tests.hub.hub_support import MakePerson, Person


def _probe_router() -> APIRouter:
    """One route per area and level, guarded by the real dependency."""
    router = APIRouter()
    for area in Area:
        for level in (Level.VIEW, Level.MANAGE):

            def probe(principal: Principal = Depends(require(area, level))) -> dict[str, str]:
                return {"user": principal.email}

            router.add_api_route(f"/probe/{area.value}/{level.api_name}", probe, methods=["POST"])
    return router


@pytest.fixture
def probe_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, engine="off")
    app.include_router(_probe_router(), prefix="/api/v1")
    with TestClient(app) as client:
        yield client


def test_no_credentials_is_401_with_challenge(client: TestClient) -> None:
    answer = client.get("/api/v1/me")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.json()["error"]["code"] == "unauthorized"
    assert "authentication required" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer qfp_not-a-real-token", "the API token is not valid"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer <personal API token>'"),
        ("Bearer", "must be 'Bearer <personal API token>'"),
    ],
)
def test_bad_credentials_are_401(client: TestClient, header: str, message: str) -> None:
    answer = client.get("/api/v1/me", headers={"Authorization": header})
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    assert message in answer.json()["error"]["message"]


@pytest.mark.parametrize("role", [role.value for role in Role])
def test_every_area_and_level_is_checked_per_role(
    probe_client: TestClient, make_person_probe: MakePerson, role: str
) -> None:
    person = make_person_probe(role)
    grants = ROLE_GRANTS[Role(role)]
    for area in Area:
        for level in (Level.VIEW, Level.MANAGE):
            answer = probe_client.post(
                f"/api/v1/probe/{area.value}/{level.api_name}", headers=person.headers
            )
            if grants[area] >= level:
                assert answer.status_code == 200, (role, area, level)
            else:
                assert answer.status_code == 403, (role, area, level)
                assert answer.json()["error"] == {
                    "code": "forbidden",
                    "message": f"requires {level.label} permission on {area.label}",
                }


@pytest.fixture
def make_person_probe(probe_client: TestClient) -> MakePerson:
    from qualflow.accounts.tokens import issue_token
    from qualflow.accounts.users import create_user

    def make(role: str = "admin") -> Person:
        store = probe_client.app.state.store  # type: ignore[attr-defined]
        with store.sessionmaker() as session:
            user = create_user(
                session, email=f"{role}@example.org", name=role, role=role, password=None
            )
            _token, raw = issue_token(session, user, "probe")
            session.commit()
            return Person(id=user.id, email=user.email, password="", token=raw)

    return make


def test_permission_message_names_manage_on_connections(
    probe_client: TestClient, make_person_probe: MakePerson
) -> None:
    viewer = make_person_probe("viewer")
    answer = probe_client.post("/api/v1/probe/connections/manage", headers=viewer.headers)
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "requires Manage permission on connections"


def test_login_sets_cookie_and_session_authenticates(
    client: TestClient, make_person: MakePerson
) -> None:
    person = make_person("member", password=True)
    wrong = client.post(
        "/api/v1/auth/login", json={"email": person.email, "password": "nope nope nope"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    answer = client.post(
        "/api/v1/auth/login", json={"email": person.email, "password": person.password}
    )
    assert answer.status_code == 200
    cookie = answer.cookies.get("qualflow_session")
    assert cookie
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie
    assert "samesite=lax" in set_cookie
    me = client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["authenticated_via"] == "session"
    assert me.json()["permissions"]["automations"] == "manage"
    # A cookie-authenticated write from a foreign origin is refused.
    forged = client.post(
        "/api/v1/me/tokens", json={"name": "x"}, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "cross_site_request"
    same = client.post(
        "/api/v1/me/tokens", json={"name": "x"}, headers={"Origin": "http://testserver"}
    )
    assert same.status_code == 201
    assert client.post("/api/v1/auth/logout").status_code == 204
    client.cookies.clear()
    client.cookies.set("qualflow_session", cookie)
    after = client.get("/api/v1/me")
    assert after.status_code == 401


def test_personal_tokens_are_shown_once_and_masked_afterwards(
    client: TestClient, admin: Person, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        created = client.post(
            "/api/v1/me/tokens", json={"name": "ci", "expires_in_days": 30}, headers=admin.headers
        )
        assert created.status_code == 201
        raw = created.json()["token"]
        assert raw.startswith("qfp_")
        assert created.json()["token_hint"] == "••••" + raw[-4:]
        listed = client.get("/api/v1/me/tokens", headers=admin.headers)
        assert raw not in listed.text
        assert admin.token not in listed.text
        assert (
            client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
        )
        token_id = created.json()["id"]
        revoked = client.delete(f"/api/v1/me/tokens/{token_id}", headers=admin.headers)
        assert revoked.status_code == 200
        assert revoked.json()["active"] is False
        refused = client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == "the API token has been revoked"
        logging.getLogger("qualflow.test").info("used token %s", raw)
    assert raw not in caplog.text
    assert admin.token not in caplog.text


def test_admins_manage_people(client: TestClient, admin: Person, make_person: MakePerson) -> None:
    created = client.post(
        "/api/v1/users",
        json={
            "email": "New@Example.org",
            "name": "New",
            "role": "viewer",
            "generate_password": True,
        },
        headers=admin.headers,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["email"] == "new@example.org"
    assert body["has_password"] is True
    password = body["generated_password"]
    assert len(password) == 20
    user_id = body["id"]
    listed = client.get("/api/v1/users", headers=admin.headers)
    assert password not in listed.text
    assert "password_hash" not in listed.text
    duplicate = client.post(
        "/api/v1/users", json={"email": "new@example.org", "name": "Again"}, headers=admin.headers
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "email_taken"
    weak = client.post(
        "/api/v1/users",
        json={"email": "w@example.org", "name": "W", "password": "123"},
        headers=admin.headers,
    )
    assert weak.status_code == 422
    assert "at least 10 characters" in weak.json()["error"]["message"]
    raised = client.put(
        f"/api/v1/users/{user_id}/permissions",
        json={"overrides": {"runs": "manage"}},
        headers=admin.headers,
    )
    assert raised.status_code == 200
    assert raised.json()["permissions"]["runs"] == "manage"
    assert raised.json()["overrides"] == {"runs": "manage"}
    login = client.post(
        "/api/v1/auth/login", json={"email": "new@example.org", "password": password}
    )
    assert login.status_code == 200
    client.cookies.clear()
    deactivated = client.patch(
        f"/api/v1/users/{user_id}", json={"active": False}, headers=admin.headers
    )
    assert deactivated.status_code == 200
    assert deactivated.json()["active"] is False
    again = client.post(
        "/api/v1/auth/login", json={"email": "new@example.org", "password": password}
    )
    assert again.status_code == 401
    member = make_person("member")
    forbidden = client.get("/api/v1/users", headers=member.headers)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["message"] == "requires the admin role"
    last = client.delete(f"/api/v1/users/{admin.id}", headers=admin.headers)
    assert last.status_code == 409
    assert last.json()["error"]["code"] == "last_admin"
    assert client.delete(f"/api/v1/users/{user_id}", headers=admin.headers).status_code == 204
    assert client.get(f"/api/v1/users/{user_id}", headers=admin.headers).status_code == 404


def test_change_password_requires_the_current_one(
    client: TestClient, make_person: MakePerson
) -> None:
    person = make_person("viewer", password=True)
    wrong = client.post(
        "/api/v1/me/password",
        json={"current_password": "not it at all", "new_password": "another long one"},
        headers=person.headers,
    )
    assert wrong.status_code == 403
    ok = client.post(
        "/api/v1/me/password",
        json={"current_password": person.password, "new_password": "another long one"},
        headers=person.headers,
    )
    assert ok.status_code == 204
    login = client.post(
        "/api/v1/auth/login", json={"email": person.email, "password": "another long one"}
    )
    assert login.status_code == 200


def test_repeated_failed_sign_ins_are_throttled(
    client: TestClient, make_person: MakePerson, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sign_in_throttle, "max_failures", 2)
    person = make_person("viewer", password=True)
    wrong = {"email": person.email, "password": "wrong password!"}
    for _ in range(2):
        assert client.post("/api/v1/auth/login", json=wrong).status_code == 401
    limited = client.post(
        "/api/v1/auth/login", json={"email": person.email, "password": person.password}
    )
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "too_many_attempts"
    assert int(limited.headers["Retry-After"]) > 0
    sign_in_throttle.succeeded(person.email, "testclient")
