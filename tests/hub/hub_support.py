"""Helpers shared by the hub tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi.testclient import TestClient

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Person:
    id: int
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakePerson = Callable[..., Person]


class CanSignIn(Protocol):
    @property
    def email(self) -> str: ...

    @property
    def password(self) -> str: ...


def sign_in(hub: TestClient, person: CanSignIn) -> str:
    """Sign ``person`` in through the form, as a browser does (anyone signed in before is
    signed out first); returns the CSRF token the browser's forms then carry."""
    hub.cookies.clear()
    page = hub.get("/sign-in")
    token = _CSRF.search(page.text)
    assert token, page.text[:300]
    answer = hub.post(
        "/sign-in",
        data={"email": person.email, "password": person.password, "next": "/",
              "csrf_token": token.group(1)},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303, answer.text
    return token.group(1)
