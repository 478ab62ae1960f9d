"""Guessing the current password through "change my password" (API or page) is throttled as
sign-ins are: a stolen session or API token is no faster way to the password."""

from __future__ import annotations

import html

import pytest
from fastapi.testclient import TestClient

from qualflow.accounts.throttle import sign_in_throttle
from tests.hub.hub_support import MakePerson, Person
from tests.hub.test_ui_audit_change_password import _change, _sign_in

LIMIT = 3


@pytest.fixture(autouse=True)
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lower limit, and failures of this test's own (the throttle is process-wide)."""
    monkeypatch.setattr(sign_in_throttle, "max_failures", LIMIT)
    monkeypatch.setattr(sign_in_throttle, "_failures", {})


def test_the_api_refuses_guesses_beyond_the_limit_even_the_right_one(
    hub: TestClient, make_person: MakePerson
) -> None:
    person: Person = make_person("viewer", password=True)

    def change(current: str) -> int:
        body = {"current_password": current, "new_password": "another long passphrase 1"}
        answer = hub.post("/api/v1/me/password", json=body, headers=person.headers)
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) > 0
            assert "too many wrong passwords" in answer.json()["error"]["message"]
        return answer.status_code

    assert [change(f"guess {n}") for n in range(LIMIT)] == [403] * LIMIT
    assert change(person.password) == 429
    # The sign-in form counts the same guesses.
    assert _sign_in(hub, person.email, person.password) == 429


def test_the_page_says_to_wait(hub: TestClient, make_person: MakePerson) -> None:
    person: Person = make_person("viewer", password=True)
    assert _sign_in(hub, person.email, person.password) == 303
    for n in range(LIMIT):
        assert (
            _change(hub, f"guess {n}", "new long passphrase 2", "new long passphrase 2").status_code
            == 400
        )

    answer = _change(hub, person.password, "new long passphrase 2", "new long passphrase 2")

    assert answer.status_code == 400
    assert "Too many wrong passwords. Try again in 15 minutes." in html.unescape(answer.text)
