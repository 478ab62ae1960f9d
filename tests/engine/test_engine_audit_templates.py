"""A template naming a filter or test Jinja does not have is refused when the automation is
saved, naming the field, instead of failing every run later."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.test_api import API, Api, api, definition  # noqa: F401

EMAIL = {"to": ["cx@example.org"], "subject": "New response", "body": "Thanks"}


@pytest.mark.parametrize(
    ("step", "field", "reason"),
    [
        (
            {"action": "notify.email", "config": {**EMAIL, "subject": "{{ x | shout }}"}},
            "steps.0.config.subject",
            "No filter named 'shout'",
        ),
        (
            {
                "action": "http.request",
                "config": {"url": "https://example.org/h", "body": "{{ x is odd_ish }}"},
            },
            "steps.0.config.body",
            "No test named 'odd_ish'",
        ),
    ],
    ids=["email-filter", "http-test"],
)
def test_unknown_filters_and_tests_are_refused(
    api: Api,  # noqa: F811
    step: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    answer = api.client.post(f"{API}/automations", json=definition(steps=[step]), headers=api.admin)

    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["error"]["details"]
    assert detail["field"] == field
    assert reason in detail["message"]


def test_known_filters_are_accepted(api: Api) -> None:  # noqa: F811
    step = {"action": "notify.email", "config": {**EMAIL, "subject": "{{ x | upper }}"}}
    answer = api.client.post(f"{API}/automations", json=definition(steps=[step]), headers=api.admin)
    assert answer.status_code == 201, answer.text
