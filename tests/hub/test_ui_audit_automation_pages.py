"""The automations list is paginated: every automation is reachable, a page at a time."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from qualflow.web.ui.automations import PAGE_SIZE
from tests.hub.hub_support import MakePerson
from tests.hub.test_ui_audit_numbers import signed_in

_ROW = re.compile(r'<tr data-automation="([^"]+)">')


def test_every_automation_is_reachable_through_the_pages(
    hub: TestClient, make_person: MakePerson
) -> None:
    token = signed_in(hub, make_person)
    names = [f"Automation {index:03d}" for index in range(PAGE_SIZE + 3)]
    for name in names:
        created = hub.post(
            "/automations/new",
            data={"csrf_token": token, "name": name, "connection_id": "",
                  "trigger_type": "schedule", "trigger-cron": "0 3 * * *", "step": "sa1",
                  "step-sa1-action": "condition", "step-sa1-config-expression": "true"},
            follow_redirects=False,
        )  # fmt: skip
        assert created.status_code == 303, created.text

    first = hub.get("/automations")
    second = hub.get("/automations?page=2")

    assert len(_ROW.findall(first.text)) == PAGE_SIZE
    assert 'href="/automations?page=2"' in first.text
    assert _ROW.findall(first.text) + _ROW.findall(second.text) == names
    assert 'href="/automations?page=1"' in second.text or 'href="/automations"' in second.text
    assert f"{len(names)} automations" in first.text


def test_disabling_from_a_later_page_of_the_list_returns_to_that_page(
    hub: TestClient, make_person: MakePerson
) -> None:
    token = signed_in(hub, make_person)
    created = hub.post(
        "/automations/new",
        data={"csrf_token": token, "name": "Webhook relay", "connection_id": "",
              "trigger_type": "json_event", "trigger-fields": "", "step": "sa1",
              "step-sa1-action": "condition", "step-sa1-config-expression": "true"},
        follow_redirects=False,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    automation_id = re.search(r'action="/automations/(\d+)/enable"', created.text)
    assert automation_id

    answer = hub.post(
        f"/automations/{automation_id.group(1)}/enable",
        data={"csrf_token": token},
        headers={"referer": "http://testserver/automations?page=2"},
        follow_redirects=False,
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == "/automations?page=2"
