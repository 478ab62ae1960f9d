"""A step config key the action does not know (a typo such as ``subjet``) is refused when the
automation is saved, naming the key, instead of being silently dropped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.test_api import API, Api, api, definition  # noqa: F401

EMAIL = {"to": ["cx@example.org"], "subject": "New response", "body": "Thanks"}


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"action": "notify.email", "config": {**EMAIL, "ccc": ["x@example.org"]}}, "ccc"),
        ({"action": "qualtrics.get_response", "config": {"respone_id": "R_1"}}, "respone_id"),
        ({"action": "condition", "config": {"expression": "true", "reson": "x"}}, "reson"),
        ({"action": "http.request", "config": {"url": "https://x.org", "hedaers": {}}}, "hedaers"),
    ],
    ids=["email", "get-response", "condition", "http"],
)
def test_unknown_config_keys_are_refused_on_create_and_edit(
    api: Api,  # noqa: F811
    step: dict[str, Any],
    field: str,
) -> None:
    created = api.client.post(
        f"{API}/automations", json=definition(steps=[step]), headers=api.admin
    )
    assert created.status_code == 422, created.text
    [detail] = created.json()["error"]["details"]
    assert detail["field"] == f"steps.0.config.{field}"

    good = dict(step, config={k: v for k, v in step["config"].items() if k != field})
    automation = api.client.post(
        f"{API}/automations", json=definition(steps=[good]), headers=api.admin
    )
    assert automation.status_code == 201, automation.text
    edited = api.client.put(
        f"{API}/automations/{automation.json()['id']}",
        json=definition(steps=[step]),
        headers=api.admin,
    )
    assert edited.status_code == 422, edited.text
    assert field in edited.json()["error"]["message"]


def test_the_http_json_alias_is_still_accepted(api: Api) -> None:  # noqa: F811
    step = {"action": "http.request", "config": {"url": "https://x.org", "json": {"a": 1}}}
    answer = api.client.post(f"{API}/automations", json=definition(steps=[step]), headers=api.admin)
    assert answer.status_code == 201, answer.text
    assert answer.json()["steps"][0]["config"]["json"] == {"a": 1}
