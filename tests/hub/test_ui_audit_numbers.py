"""UI numbers typed by people (form fields, list filters in the URL) never crash a page.

``str.isdigit`` accepts digits such as "²" that ``int()`` refuses, and a number may be far
larger than the database's integer columns: both must end as a message or a lenient default.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.hub.conftest import Sandbox
from tests.hub.hub_support import MakePerson, sign_in

HUGE = "99999999999999999999999"


def signed_in(hub: TestClient, make_person: MakePerson) -> str:
    """Sign an admin in through the form; returns the browser's CSRF token."""
    return sign_in(hub, make_person("admin", password=True))


@pytest.mark.parametrize("query", [f"page={HUGE}", "page=²", f"automation={HUGE}", "automation=²"])
def test_runs_list_with_an_impossible_number_in_the_url_is_still_the_list(
    hub: TestClient, make_person: MakePerson, query: str
) -> None:
    signed_in(hub, make_person)
    page = hub.get(f"/runs?{query}")
    assert page.status_code == 200
    assert "No runs" in page.text


@pytest.mark.parametrize("query", [f"page={HUGE}", "page=²"])
def test_outbox_with_an_impossible_page_number_is_still_the_outbox(
    hub: TestClient, make_person: MakePerson, query: str
) -> None:
    signed_in(hub, make_person)
    page = hub.get(f"/outbox?{query}")
    assert page.status_code == 200
    assert "Outbox" in page.text


def test_a_non_ascii_digit_as_the_rate_limit_is_a_message_on_the_field(
    hub: TestClient, make_person: MakePerson, sandbox: Sandbox
) -> None:
    token = signed_in(hub, make_person)
    answer = hub.post(
        "/connections/new",
        data={"csrf_token": token, "name": "Main brand", "location": "base_url",
              "base_url": sandbox.base_url, "auth": "token", "api_token": sandbox.admin_token,
              "requests_per_minute": "²"},
    )  # fmt: skip
    assert answer.status_code == 400
    assert "Enter a whole number of requests per minute." in answer.text
    assert 'value="Main brand"' in answer.text


def _automation_form(token: str, **overrides: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "name": "Detractor alert",
        "connection_id": "",
        "trigger_type": "survey_response",
        "trigger-survey_id": "SV_abcdef12",
        "trigger-reconcile_every_minutes": "5",
        "step": "sabc1",
        "step-sabc1-action": "condition",
        "step-sabc1-config-expression": "1 + 1 == 2",
        **overrides,
    }


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("trigger-reconcile_every_minutes", "Enter a whole number of minutes."),
        ("connection_id", "Choose a connection."),
    ],
)
def test_a_non_ascii_digit_in_the_automation_form_is_a_message_on_the_field(
    hub: TestClient, make_person: MakePerson, field: str, message: str
) -> None:
    token = signed_in(hub, make_person)
    answer = hub.post("/automations/new", data=_automation_form(token, **{field: "²"}))
    assert answer.status_code == 400
    assert message in answer.text
    assert 'value="Detractor alert"' in answer.text
