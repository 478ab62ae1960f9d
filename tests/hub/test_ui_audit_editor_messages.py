"""The automation editor explains problems in words, not pydantic's prefixes or regexes."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from tests.hub.hub_support import MakePerson
from tests.hub.test_ui_audit_numbers import signed_in


def _schedule_form(token: str, **overrides: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "name": "Nightly check",
        "connection_id": "",
        "trigger_type": "schedule",
        "trigger-cron": "0 3 * * *",
        "trigger-timezone": "",
        "step": "sabc1",
        "step-sabc1-action": "condition",
        "step-sabc1-key": "",
        "step-sabc1-config-expression": "1 + 1 == 2",
        **overrides,
    }


def _field_errors(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'class="error-text"[^>]*>([^<]+)<', page)]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"trigger-cron": "every day"}, "Invalid cron expression 'every day'"),
        ({"trigger-timezone": "Mars/Base"}, "Unknown time zone 'Mars/Base'"),
        ({"step-sabc1-config-expression": "1 +"}, "Syntax error at column 0"),
        ({"step-sabc1-key": "Bad key!"}, "Step key 'Bad key!' must match"),
    ],
)
def test_model_checks_read_as_sentences_without_pydantics_prefix(
    hub: TestClient, make_person: MakePerson, overrides: dict[str, str], expected: str
) -> None:
    token = signed_in(hub, make_person)
    answer = hub.post("/automations/new", data=_schedule_form(token, **overrides))
    assert answer.status_code == 400
    errors = _field_errors(answer.text)
    assert any(error.startswith(expected) for error in errors), errors
    assert not any("Value error" in error for error in errors), errors


def test_a_missing_or_mistyped_survey_id_says_what_a_survey_id_looks_like(
    hub: TestClient, make_person: MakePerson
) -> None:
    token = signed_in(hub, make_person)
    form = _schedule_form(
        token, **{"trigger_type": "survey_response", "trigger-survey_id": "my survey"}
    )
    answer = hub.post("/automations/new", data=form)
    assert answer.status_code == 400
    errors = _field_errors(answer.text)
    assert any("SV_" in error and "pattern" not in error for error in errors), errors
    assert 'value="my survey"' in answer.text


def test_the_json_editor_lists_problems_without_pydantics_prefix(
    hub: TestClient, make_person: MakePerson
) -> None:
    token = signed_in(hub, make_person)
    definition = (
        '{"name": "x", "trigger": {"type": "schedule", "cron": "every day"},'
        ' "steps": [{"action": "condition", "config": {"expression": "true"}}]}'
    )
    answer = hub.post("/automations/new.json", data={"csrf_token": token, "definition": definition})
    assert answer.status_code == 400
    problems = [html.unescape(p) for p in re.findall(r"<li>([^<]*)</li>", answer.text)]
    assert any("cron: invalid cron expression 'every day'" in p for p in problems), problems
    assert not any("Value error" in p for p in problems), problems
