"""A button someone may not press is refused as an action, naming the missing permission."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.hub.hub_support import MakePerson, sign_in


def test_a_viewer_pressing_a_manage_button_is_told_the_action_needs_manage(
    hub: TestClient, make_person: MakePerson
) -> None:
    viewer = make_person("viewer", password=True)
    token = sign_in(hub, viewer)

    page = hub.get("/automations/new")
    pressed = hub.post("/automations/1/delete", data={"csrf_token": token})

    assert page.status_code == pressed.status_code == 403
    assert "This page requires Manage permission on automations" in page.text
    assert "This action requires Manage permission on automations" in pressed.text
