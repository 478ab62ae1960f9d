"""People told "they can change it after signing in" can: the account's password page."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient

from tests.hub.hub_support import MakePerson, Person

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NEW_PASSWORD = "a much longer passphrase 2026"


def _sign_in(hub: TestClient, email: str, password: str) -> int:
    token = _CSRF.search(hub.get("/sign-in").text)
    assert token
    answer = hub.post(
        "/sign-in",
        data={"email": email, "password": password, "next": "/", "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    return answer.status_code


def _change(hub: TestClient, current: str, new: str, repeat: str) -> httpx.Response:
    token = _CSRF.search(hub.get("/account/password").text)
    assert token
    return hub.post(
        "/account/password",
        data={"csrf_token": token.group(1), "current_password": current,
              "new_password": new, "repeat_password": repeat},
        follow_redirects=False,
    )  # fmt: skip


def test_a_person_changes_their_password_in_the_ui(
    hub: TestClient, make_person: MakePerson
) -> None:
    person: Person = make_person("viewer", password=True)
    assert _sign_in(hub, person.email, person.password) == 303
    page = hub.get("/account/password")
    assert page.status_code == 200
    assert 'href="/account/password"' in page.text  # reachable from the navigation

    answer = _change(hub, person.password, NEW_PASSWORD, NEW_PASSWORD)

    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/sign-in")
    hub.cookies.clear()
    assert _sign_in(hub, person.email, person.password) != 303
    assert _sign_in(hub, person.email, NEW_PASSWORD) == 303


def test_a_wrong_current_password_or_a_mistyped_repeat_is_explained(
    hub: TestClient, make_person: MakePerson
) -> None:
    person: Person = make_person("viewer", password=True)
    assert _sign_in(hub, person.email, person.password) == 303

    wrong_current = _change(hub, "not my password", NEW_PASSWORD, NEW_PASSWORD)
    mismatch = _change(hub, person.password, NEW_PASSWORD, NEW_PASSWORD + "!")
    too_short = _change(hub, person.password, "short", "short")

    assert wrong_current.status_code == 400
    assert "current password is wrong" in wrong_current.text
    assert mismatch.status_code == 400
    assert "do not match" in mismatch.text
    assert too_short.status_code == 400
    assert "at least" in too_short.text
    assert NEW_PASSWORD not in mismatch.text
    assert _sign_in(hub, person.email, person.password) == 303
