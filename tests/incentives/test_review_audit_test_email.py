"""The test reward emails only the person testing, and says the respondent got nothing."""

from __future__ import annotations

import html

from fastapi.testclient import TestClient

from tests.engine.engine_support import SmtpSink
from tests.incentives import test_review_anonymous_link as anonymous_link
from tests.incentives.test_pages import sign_in
from tests.incentives.test_review_anonymous_link import (
    MakePerson,
    Qualtrics,
    field,
    rewarded_survey,
)

# The hub whose Qualtrics is the in-process sandbox, and that sandbox.
hub = anonymous_link.hub
qualtrics = anonymous_link.qualtrics


def test_a_test_reward_says_the_respondent_was_not_emailed(
    hub: TestClient, make_person: MakePerson, qualtrics: Qualtrics, smtp_sink: SmtpSink
) -> None:
    """A real response is tested: its respondent's address is found, but only the person
    testing gets the email, and the report says the respondent got nothing."""
    admin = make_person("admin")
    reference = rewarded_survey(hub, admin, qualtrics)
    field(qualtrics, 1, by_email=1.0)
    [response_id] = qualtrics.state.responses[qualtrics.survey.id]

    answer = hub.post(f"/api/v1/incentives/{reference}/test-reward",
                      json={"response_id": response_id}, headers=admin.headers)  # fmt: skip
    assert answer.status_code == 200, answer.text
    steps = {step["name"]: step for step in answer.json()["steps"]}
    respondent = steps["respondent email"]["detail"].removeprefix("found ")
    assert "@" in respondent
    assert steps["test email"]["ok"], steps
    assert steps["test email"]["detail"] == (
        f"sent to {admin.email} only: the respondent ({respondent}) was not emailed"
    )
    [mail] = smtp_sink.messages
    assert mail["to"] == [admin.email]

    token = sign_in(hub, admin)
    page = hub.post(f"/incentives/{reference}/test",
                    data={"csrf_token": token, "response_id": response_id})  # fmt: skip
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    assert f"the respondent ({respondent}) was not emailed" in text
    assert "Nobody was paid. The respondent was not emailed." in text
