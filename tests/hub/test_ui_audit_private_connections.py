"""A private connection stays private on the automation pages of people who cannot see it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.hub.conftest import Sandbox
from tests.hub.hub_support import MakePerson, sign_in

PRIVATE_NAME = "Finance brand (private)"


def _private_connection_and_automation(hub: TestClient, token: str, sandbox: Sandbox) -> int:
    created = hub.post(
        "/connections/new",
        data={"csrf_token": token, "name": PRIVATE_NAME, "location": "base_url",
              "base_url": sandbox.base_url, "auth": "token", "api_token": sandbox.admin_token,
              "requests_per_minute": "3000"},
        follow_redirects=False,
    )  # fmt: skip
    assert created.status_code == 303, created.text
    connection_id = created.headers["location"].rsplit("/", 1)[1]
    automation = hub.post(
        "/automations/new",
        data={"csrf_token": token, "name": "Finance alert", "connection_id": connection_id,
              "trigger_type": "schedule", "trigger-cron": "0 3 * * *", "step": "sa1",
              "step-sa1-action": "condition", "step-sa1-config-expression": "true"},
        follow_redirects=False,
    )  # fmt: skip
    assert automation.status_code == 303, automation.text
    return int(automation.headers["location"].rsplit("/", 1)[1])


def test_a_viewer_sees_neither_the_name_nor_a_dead_link_of_a_private_connection(
    hub: TestClient, make_person: MakePerson, sandbox: Sandbox
) -> None:
    owner = make_person("admin", password=True)
    automation_id = _private_connection_and_automation(hub, sign_in(hub, owner), sandbox)
    assert PRIVATE_NAME in hub.get(f"/automations/{automation_id}").text

    sign_in(hub, make_person("viewer", password=True))
    listing = hub.get("/automations")
    detail = hub.get(f"/automations/{automation_id}")

    assert listing.status_code == detail.status_code == 200
    assert "Finance alert" in listing.text
    assert PRIVATE_NAME not in listing.text
    assert PRIVATE_NAME not in detail.text
    assert "not visible to you" in detail.text
    assert 'href="/connections/' not in detail.text
