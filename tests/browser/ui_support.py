"""Helpers of the UI tests: people of each role and signing in through the real form."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

PASSWORD = "correct horse battery staple"
ROLES = ("admin", "manager", "member", "viewer")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def email_of(role: str) -> str:
    return f"{role}@example.com"


def csrf_token(client: TestClient, path: str = "/sign-in") -> str:
    """The CSRF token of the browser ``client`` (rendered into every form)."""
    page = client.get(path)
    match = _CSRF.search(page.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client: TestClient, role: str) -> None:
    token = csrf_token(client)
    answer = client.post(
        "/sign-in",
        data={"email": email_of(role), "password": PASSWORD, "next": "/", "csrf_token": token},
    )
    assert answer.status_code == 303, answer.text
