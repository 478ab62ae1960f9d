"""A button someone may not press is refused as an action, naming the missing permission."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.hub.hub_support import MakePerson

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_a_viewer_pressing_a_manage_button_is_told_the_action_needs_manage(
    hub: TestClient, make_person: MakePerson
) -> None:
    viewer = make_person("viewer", password=True)
    token = _CSRF.search(hub.get("/sign-in").text)
    assert token
    signed = hub.post(
        "/sign-in",
        data={"email": viewer.email, "password": viewer.password, "next": "/",
              "csrf_token": token.group(1)},
        follow_redirects=False,
    )  # fmt: skip
    assert signed.status_code == 303

    page = hub.get("/automations/new")
    pressed = hub.post("/automations/1/delete", data={"csrf_token": token.group(1)})

    assert page.status_code == pressed.status_code == 403
    assert "This page requires Manage permission on automations" in page.text
    assert "This action requires Manage permission on automations" in pressed.text
