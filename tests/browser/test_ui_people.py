"""People (admins) and personal API tokens pages, over HTTP with the real forms."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from qualflow.accounts.models import ApiToken, User
from qualflow.settings import Settings
from qualflow.store.runtime import open_store
from tests.browser.ui_support import csrf_token, email_of, sign_in


def _user(settings: Settings, email: str) -> User | None:
    store = open_store(settings)
    try:
        with store.sessionmaker() as db:
            user = db.query(User).filter(User.email == email).one_or_none()
            if user is not None:
                db.expunge(user)
            return user
    finally:
        store.close()


def _tokens(settings: Settings, email: str) -> list[ApiToken]:
    store = open_store(settings)
    try:
        with store.sessionmaker() as db:
            tokens = db.query(ApiToken).join(User).filter(User.email == email).all()
            for token in tokens:
                db.expunge(token)
            return tokens
    finally:
        store.close()


def test_admins_add_people_with_a_password_shown_once(
    ui_client: TestClient, ui_settings: Settings
) -> None:
    sign_in(ui_client, "admin")
    page = ui_client.get("/people")
    assert page.status_code == 200
    for role in ("admin", "manager", "member", "viewer"):
        assert email_of(role) in page.text
    assert 'href="/people"' in page.text  # in the navigation

    token = csrf_token(ui_client, "/people")
    created = ui_client.post(
        "/people",
        data={
            "csrf_token": token,
            "email": "New.Person@Example.org",
            "name": "New Person",
            "role": "member",
            "sign_in": "generate",
        },
    )
    assert created.status_code == 201
    shown = re.search(r'data-testid="new-password">([^<]+)<', created.text)
    assert shown
    user = _user(ui_settings, "new.person@example.org")
    assert user is not None
    assert user.role == "member"
    assert user.password_hash is not None
    assert shown.group(1) not in user.password_hash
    # Shown once: the list afterwards does not carry it.
    assert shown.group(1) not in ui_client.get("/people").text

    # The new person signs in with it.
    other = TestClient(ui_client.app, base_url="http://127.0.0.1:8000", follow_redirects=False)
    login = other.post(
        "/sign-in",
        data={
            "email": "new.person@example.org",
            "password": shown.group(1),
            "next": "/",
            "csrf_token": csrf_token(other),
        },
    )
    assert login.status_code == 303

    api_only = ui_client.post(
        "/people",
        data={
            "csrf_token": token,
            "email": "robot@example.org",
            "name": "Robot",
            "role": "viewer",
            "sign_in": "api_only",
        },
    )
    assert api_only.status_code == 201
    assert 'data-testid="new-password"' not in api_only.text
    robot = _user(ui_settings, "robot@example.org")
    assert robot is not None
    assert robot.password_hash is None


def test_adding_a_person_explains_bad_input(ui_client: TestClient) -> None:
    sign_in(ui_client, "admin")
    token = csrf_token(ui_client, "/people")
    empty = ui_client.post(
        "/people", data={"csrf_token": token, "email": "", "name": "", "role": "boss"}
    )
    assert empty.status_code == 400
    assert "Enter the person&#39;s email address." in empty.text
    assert "Enter a display name." in empty.text
    assert "Choose a role." in empty.text

    taken = ui_client.post(
        "/people",
        data={
            "csrf_token": token,
            "email": email_of("viewer"),
            "name": "Dup",
            "role": "viewer",
            "sign_in": "generate",
        },
    )
    assert taken.status_code == 400
    assert "already exists" in taken.text


def test_admins_change_roles_and_deactivate(ui_client: TestClient, ui_settings: Settings) -> None:
    sign_in(ui_client, "admin")
    viewer = _user(ui_settings, email_of("viewer"))
    assert viewer is not None
    token = csrf_token(ui_client, "/people")

    changed = ui_client.post(
        f"/people/{viewer.id}/role", data={"csrf_token": token, "role": "manager"}
    )
    assert changed.status_code == 303
    page = ui_client.get("/people")
    assert f"{email_of('viewer')} is now manager." in page.text
    assert _user(ui_settings, email_of("viewer")).role == "manager"  # type: ignore[union-attr]

    off = ui_client.post(
        f"/people/{viewer.id}/active", data={"csrf_token": token, "active": "false"}
    )
    assert off.status_code == 303
    assert _user(ui_settings, email_of("viewer")).active is False  # type: ignore[union-attr]
    assert "is deactivated" in ui_client.get("/people").text

    on = ui_client.post(f"/people/{viewer.id}/active", data={"csrf_token": token, "active": "true"})
    assert on.status_code == 303
    assert _user(ui_settings, email_of("viewer")).active is True  # type: ignore[union-attr]

    # The last admin stays an admin, and nobody deactivates themselves.
    admin = _user(ui_settings, email_of("admin"))
    assert admin is not None
    demote = ui_client.post(
        f"/people/{admin.id}/role", data={"csrf_token": token, "role": "viewer"}
    )
    assert demote.status_code == 303
    assert "last active admin" in ui_client.get("/people").text
    self_off = ui_client.post(
        f"/people/{admin.id}/active", data={"csrf_token": token, "active": "false"}
    )
    assert self_off.status_code == 303
    assert "You cannot deactivate yourself." in ui_client.get("/people").text
    assert _user(ui_settings, email_of("admin")).role == "admin"  # type: ignore[union-attr]

    assert ui_client.get("/people/999999/role").status_code == 405
    missing = ui_client.post("/people/999999/role", data={"csrf_token": token, "role": "viewer"})
    assert missing.status_code == 404


@pytest.mark.parametrize("role", ["manager", "member", "viewer"])
def test_only_admins_see_people(ui_client: TestClient, role: str) -> None:
    sign_in(ui_client, role)
    page = ui_client.get("/people")
    assert page.status_code == 403
    assert "requires the admin role" in page.text
    assert 'href="/people"' not in ui_client.get("/account/tokens").text
    token = csrf_token(ui_client, "/account/tokens")
    refused = ui_client.post(
        "/people",
        data={"csrf_token": token, "email": "x@example.org", "name": "X", "role": "admin"},
    )
    assert refused.status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(ui_client: TestClient) -> None:
    for path in ("/people", "/account/tokens"):
        answer = ui_client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/sign-in")


def test_personal_tokens_are_shown_once_listed_masked_and_revocable(
    ui_client: TestClient, ui_settings: Settings
) -> None:
    sign_in(ui_client, "viewer")
    page = ui_client.get("/account/tokens")
    assert page.status_code == 200
    assert "No API tokens yet" in page.text

    token = csrf_token(ui_client, "/account/tokens")
    created = ui_client.post(
        "/account/tokens", data={"csrf_token": token, "name": "nightly export", "expires": "30"}
    )
    assert created.status_code == 201
    shown = re.search(r'<pre class="json"[^>]*>([^<]+)</pre>', created.text)
    assert shown
    raw = shown.group(1).strip()
    (stored,) = _tokens(ui_settings, email_of("viewer"))
    assert stored.name == "nightly export"
    assert stored.expires_at is not None
    assert raw.endswith(stored.last4)

    listing = ui_client.get("/account/tokens")
    assert raw not in listing.text
    assert f"••••{stored.last4}" in listing.text

    # The token works against the API, until it is revoked.
    bearer = {"Authorization": f"Bearer {raw}"}
    assert ui_client.get("/api/v1/me", headers=bearer).status_code == 200
    revoked = ui_client.post(f"/account/tokens/{stored.id}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 303
    assert "revoked" in ui_client.get("/account/tokens").text
    assert ui_client.get("/api/v1/me", headers=bearer).status_code == 401

    bad = ui_client.post("/account/tokens", data={"csrf_token": token, "name": " ", "expires": "7"})
    assert bad.status_code == 400
    assert "Name the token" in bad.text
    assert "Choose how long" in bad.text


def test_nobody_revokes_someone_elses_token(ui_client: TestClient, ui_settings: Settings) -> None:
    sign_in(ui_client, "member")
    token = csrf_token(ui_client, "/account/tokens")
    ui_client.post("/account/tokens", data={"csrf_token": token, "name": "mine", "expires": ""})
    (theirs,) = _tokens(ui_settings, email_of("member"))

    ui_client.cookies.clear()
    sign_in(ui_client, "admin")
    token = csrf_token(ui_client, "/account/tokens")
    answer = ui_client.post(f"/account/tokens/{theirs.id}/revoke", data={"csrf_token": token})
    assert answer.status_code == 404
    (still,) = _tokens(ui_settings, email_of("member"))
    assert still.revoked_at is None
