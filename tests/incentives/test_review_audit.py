"""Audit of the review and the test reward, run through the hub against the Qualtrics sandbox."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.incentives import test_review_anonymous_link as anonymous_link
from tests.incentives.test_pages import sign_in
from tests.incentives.test_review_anonymous_link import (
    MakePerson,
    Qualtrics,
    rewarded_survey,
)

# The hub whose Qualtrics is the in-process sandbox, and that sandbox.
hub = anonymous_link.hub
qualtrics = anonymous_link.qualtrics


def test_a_test_reward_with_nothing_to_test_says_so(
    hub: TestClient, make_person: MakePerson, qualtrics: Qualtrics
) -> None:
    """The survey has no responses yet and the person gives neither a response nor an email:
    the test asks for one, instead of blaming "this response" for having no email."""
    admin = make_person("admin")
    reference = rewarded_survey(hub, admin, qualtrics)

    answer = hub.post(f"/api/v1/incentives/{reference}/test-reward", json={},
                      headers=admin.headers)  # fmt: skip
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["ok"] is False
    assert report["paid"] is False
    [step] = report["steps"]
    assert step["name"] == "survey response"
    assert "no response to test with" in step["detail"]
    assert "this response has no respondent email" not in answer.text

    token = sign_in(hub, admin)
    page = hub.post(f"/incentives/{reference}/test", data={"csrf_token": token})
    assert page.status_code == 200, page.text
    assert "no response to test with" in page.text
