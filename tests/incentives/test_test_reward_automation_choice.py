"""The test-reward form reads the response as the automation the manager picks reads it."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from tests.incentives import test_review_anonymous_link as anonymous_link
from tests.incentives.test_pages import sign_in
from tests.incentives.test_review_anonymous_link import (
    MakePerson,
    Person,
    Qualtrics,
    field,
    rewarded_survey,
)

# The hub whose Qualtrics is the in-process sandbox, and that sandbox.
hub = anonymous_link.hub
qualtrics = anonymous_link.qualtrics


def second_automation(hub: TestClient, admin: Person, qualtrics: Qualtrics, reference: str) -> int:
    """Another automation of the same incentive, reading the email from a field nobody fills."""
    connection_id = hub.get("/api/v1/connections", headers=admin.headers).json()["items"][0]["id"]
    automation = hub.post(
        "/api/v1/automations",
        json={
            "name": "panel rewards",
            "connection_id": connection_id,
            "trigger": {"type": "survey_response", "survey_id": qualtrics.survey.id},
            "steps": [
                {"action": "qualtrics.get_response", "key": "response"},
                {"action": "incentives.send_reward", "key": "reward",
                 "config": {"incentive": reference, "email_source": "embedded_data",
                            "email_field": "panelEmail"}},
            ],
        },
        headers=admin.headers,
    )  # fmt: skip
    assert automation.status_code == 201, automation.text
    return int(automation.json()["id"])


def test_the_form_offers_each_automation_and_tests_the_one_picked(
    hub: TestClient, make_person: MakePerson, qualtrics: Qualtrics
) -> None:
    admin = make_person("admin")
    reference = rewarded_survey(hub, admin, qualtrics)
    panel = second_automation(hub, admin, qualtrics, reference)
    field(qualtrics, 1, by_email=1.0)
    [response_id] = qualtrics.state.responses[qualtrics.survey.id]
    token = sign_in(hub, admin)

    page = html.unescape(hub.get(f"/incentives/{reference}").text)
    options = dict(re.findall(r'<option value="(\d+)">([^<]+)</option>', page))
    assert options[str(panel)] == f"panel rewards (#{panel})"
    [screener] = [int(i) for i, name in options.items() if name.startswith("screener rewards")]

    def test_with(automation: int) -> str:
        answer = hub.post(f"/incentives/{reference}/test",
                          data={"csrf_token": token, "response_id": response_id,
                                "automation_id": str(automation)})  # fmt: skip
        assert answer.status_code == 200, answer.text
        return html.unescape(answer.text)

    assert "this response has no respondent email" in test_with(panel)
    assert "this response has no respondent email" not in test_with(screener)
    assert "Nobody was paid" in test_with(screener)


def test_an_automation_choice_that_is_not_an_id_is_refused(
    hub: TestClient, make_person: MakePerson, qualtrics: Qualtrics
) -> None:
    admin = make_person("admin")
    reference = rewarded_survey(hub, admin, qualtrics)
    token = sign_in(hub, admin)
    for bad in ("abc", "0", "99999999999999999999"):
        answer = hub.post(f"/incentives/{reference}/test",
                          data={"csrf_token": token, "email": "a@example.org",
                                "automation_id": bad})  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert "choose one of the automations listed" in answer.text


def test_one_automation_is_named_on_the_form(
    hub: TestClient, make_person: MakePerson, qualtrics: Qualtrics
) -> None:
    admin = make_person("admin")
    reference = rewarded_survey(hub, admin, qualtrics)
    sign_in(hub, admin)
    page = html.unescape(hub.get(f"/incentives/{reference}").text)
    assert "reward step of <strong>screener rewards</strong>" in page
    assert '<select id="f-test-automation"' not in page
