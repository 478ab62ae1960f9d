"""An id too large for the database is "not found" like any other unknown id: inside the
signed-in layout with the way back to its list, and only after signing in."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.hub.hub_support import MakePerson
from tests.hub.test_ui_audit_numbers import signed_in

TOO_LARGE = "99999999999999999999"


@pytest.mark.parametrize(
    ("path", "back"),
    [
        (f"/connections/{TOO_LARGE}", "Back to connections"),
        (f"/automations/{TOO_LARGE}", "Back to automations"),
        (f"/outbox/{TOO_LARGE}", "Back to the outbox"),
    ],
)
def test_a_too_large_id_is_a_not_found_page_like_any_unknown_id(
    hub: TestClient, make_person: MakePerson, path: str, back: str
) -> None:
    signed_in(hub, make_person)
    unknown = hub.get(path.replace(TOO_LARGE, "424242"))
    too_large = hub.get(path)

    assert unknown.status_code == too_large.status_code == 404
    assert "Sign out" in unknown.text
    assert "Sign out" in too_large.text
    assert back in too_large.text


def test_a_too_large_id_asks_an_anonymous_visitor_to_sign_in(hub: TestClient) -> None:
    answer = hub.get(f"/automations/{TOO_LARGE}", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/sign-in")
