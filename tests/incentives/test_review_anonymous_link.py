"""The configuration review tells whether a survey is answered by its anonymous link.

A survey's anonymous link is no distribution: only the responses show it, by their
``distributionChannel``. The sandbox records that channel as Qualtrics does ("anonymous" for the
anonymous link, "email" for personal links), so these tests field the survey through the
sandbox's respondent simulator and read the review through the hub, as a person would.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from qualflow.connections.clients import configure_clients
from qualflow.incentives.review import ANONYMOUS_WARNING, SAMPLE_SIZE
from qualflow.incentives.runtime import configure_incentives
from qualflow.notify.email import SmtpSettings
from qualflow.sandbox import SandboxState
from qualflow.sandbox import create_app as create_sandbox_app
from qualflow.sandbox.model import Survey
from qualflow.sandbox.respondents import Profile, Simulator
from qualflow.sandbox.seed import research_screener
from qualflow.settings import Settings
from qualflow.web.app import create_app
from tests.incentives.e2e_support import email_qid
from tests.incentives.support import Person
from tests.incentives.test_pages import sign_in


@dataclass
class Qualtrics:
    state: SandboxState
    token: str
    survey: Survey


@pytest.fixture
def qualtrics() -> Qualtrics:
    state = SandboxState()
    _user, token = state.default_user()
    return Qualtrics(state, token, research_screener(state))


@pytest.fixture
def hub(hub_settings: Settings, smtp: SmtpSettings, qualtrics: Qualtrics) -> Iterator[TestClient]:
    """The hub whose Qualtrics calls go to the in-process sandbox (overrides conftest's hub)."""
    app = create_app(
        hub_settings,
        qualtrics_transport=httpx.ASGITransport(app=create_sandbox_app(qualtrics.state)),
        engine="off",
    )
    configure_incentives(app, smtp=smtp, alert_check_interval=0)
    try:
        with TestClient(app) as client:
            yield client
    finally:
        configure_clients(transport=None)


def rewarded_survey(hub: TestClient, admin: Person, qualtrics: Qualtrics) -> str:
    """A manual incentive paid by an automation on the sandbox survey; its reference id."""
    connection = hub.post(
        "/api/v1/connections",
        json={"name": "Sandbox", "base_url": "http://sandbox.test", "api_token": qualtrics.token},
        headers=admin.headers,
    )
    assert connection.status_code == 201, connection.text
    incentive = hub.post(
        "/api/v1/incentives",
        json={"name": "Screener thanks", "provider": "manual", "amount": "10",
              "currency": "USD", "approval_mode": "automatic"},
        headers=admin.headers,
    )  # fmt: skip
    assert incentive.status_code == 201, incentive.text
    reference = str(incentive.json()["reference_id"])
    automation = hub.post(
        "/api/v1/automations",
        json={
            "name": "screener rewards",
            "connection_id": connection.json()["id"],
            "trigger": {"type": "survey_response", "survey_id": qualtrics.survey.id},
            "steps": [
                {"action": "qualtrics.get_response", "key": "response"},
                {"action": "incentives.send_reward", "key": "reward",
                 "config": {"incentive": reference, "email_field": email_qid(qualtrics.survey)}},
            ],
        },
        headers=admin.headers,
    )  # fmt: skip
    assert automation.status_code == 201, automation.text
    return reference


def field(qualtrics: Qualtrics, count: int, *, by_email: float) -> None:
    """``count`` simulated respondents; ``by_email`` of them come by personal (email) links."""
    profile = Profile(email_channel_rate=by_email, bot_rate=0.0, duplicate_rate=0.0)
    Simulator(qualtrics.state, qualtrics.survey.id, seed=4, profile=profile).run(count)


def automation_review(hub: TestClient, admin: Person, reference: str) -> dict[str, Any]:
    answer = hub.get(f"/api/v1/incentives/{reference}/review", headers=admin.headers)
    assert answer.status_code == 200, answer.text
    [automation] = answer.json()["automations"]
    assert isinstance(automation, dict)
    return automation


def review_page(hub: TestClient, admin: Person, reference: str) -> str:
    sign_in(hub, admin)
    page = hub.get(f"/incentives/{reference}/review")
    assert page.status_code == 200, page.text
    return html.unescape(page.text)


MakePerson = Callable[..., Person]


def test_responses_by_the_anonymous_link_raise_the_warning(
    hub: TestClient, make_person: MakePerson, qualtrics: Qualtrics
) -> None:
    admin = make_person("admin")
    reference = rewarded_survey(hub, admin, qualtrics)
    field(qualtrics, 6, by_email=1.0)
    field(qualtrics, 1, by_email=0.0)  # one respondent found the survey's anonymous link
    # No distribution of the survey is an anonymous one: the responses alone tell.
    assert not qualtrics.state.directory.list_distributions(qualtrics.survey.id)

    automation = automation_review(hub, admin, reference)
    assert automation["anonymous_link"] is True
    assert ANONYMOUS_WARNING in automation["warnings"]
    # A sample of one column, not an export of the survey.
    [job] = qualtrics.state.exports.values()
    assert job.options.limit == SAMPLE_SIZE
    assert job.options.survey_metadata_ids == ["distributionChannel"]
    assert job.options.question_ids == []
    assert job.options.embedded_data_ids == []
    assert job.options.start is not None

    page = review_page(hub, admin, reference)
    assert "Answered by anonymous link" in page
    assert "1 of the 7 responses sampled from the last 90 days came by the anonymous link" in page
    assert ANONYMOUS_WARNING in page


def test_personal_links_only_is_a_no(
    hub: TestClient, make_person: MakePerson, qualtrics: Qualtrics
) -> None:
    admin = make_person("admin")
    reference = rewarded_survey(hub, admin, qualtrics)
    field(qualtrics, 5, by_email=1.0)

    automation = automation_review(hub, admin, reference)
    assert automation["anonymous_link"] is False
    assert ANONYMOUS_WARNING not in automation["warnings"]
    page = review_page(hub, admin, reference)
    assert "none of the 5 responses sampled from the last 90 days came by the anonymous link" in (
        page
    )


def test_without_responses_the_answer_is_unknown(
    hub: TestClient, make_person: MakePerson, qualtrics: Qualtrics
) -> None:
    admin = make_person("admin")
    reference = rewarded_survey(hub, admin, qualtrics)

    automation = automation_review(hub, admin, reference)
    assert automation["anonymous_link"] is None
    assert ANONYMOUS_WARNING not in automation["warnings"]
    page = review_page(hub, admin, reference)
    assert 'data-testid="anonymous-link"><span class="badge">Unknown</span>' in page
    assert "no responses in the last 90 days to tell from" in page
    assert "no anonymous distribution" not in page


def test_when_the_responses_cannot_be_read_the_answer_is_unknown(
    hub: TestClient, make_person: MakePerson, qualtrics: Qualtrics
) -> None:
    admin = make_person("admin")
    reference = rewarded_survey(hub, admin, qualtrics)
    field(qualtrics, 3, by_email=1.0)
    qualtrics.state.fail_exports(qualtrics.survey.id)

    automation = automation_review(hub, admin, reference)
    assert automation["anonymous_link"] is None
    warnings: list[str] = automation["warnings"]
    assert any(
        w.startswith("could not read the survey's recent responses to tell whether it is "
                     "answered by anonymous link: ")
        for w in warnings
    )  # fmt: skip
