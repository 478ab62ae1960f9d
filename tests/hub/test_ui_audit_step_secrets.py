"""Editing an automation in the form keeps each step's saved secret with that step.

Secrets are never sent back to the browser, so an empty secret field means "keep the saved
one"; which one must follow the step when steps are reordered or removed, not its position.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.hub.hub_support import MakePerson, Person, sign_in

_STEP_UID = re.compile(r'data-step-uid="([^"]+)"')

HOOKS = {
    "https://a.example.org/hook": "whsec_first_secret_AAAA",
    "https://b.example.org/hook": "whsec_second_secret_BBBB",
}


def _form(token: str, steps: list[tuple[str, str, str]]) -> dict[str, str | list[str]]:
    """The editor's fields for http.request steps given as (uid, url, secret typed)."""
    fields: dict[str, str | list[str]] = {
        "csrf_token": token,
        "name": "Two hooks",
        "connection_id": "",
        "trigger_type": "schedule",
        "trigger-cron": "0 3 * * *",
        "step": [uid for uid, _url, _secret in steps],
    }
    for uid, url, secret in steps:
        fields[f"step-{uid}-action"] = "http.request"
        fields[f"step-{uid}-config-url"] = url
        fields[f"step-{uid}-config-method"] = "POST"
        fields[f"step-{uid}-config-signing_secret"] = secret
    return fields


def _saved_secret_endings(hub: TestClient, person: Person, automation_id: int) -> dict[str, str]:
    """url → the last 4 characters of the secret saved with it (the API shows only those)."""
    answer = hub.get(f"/api/v1/automations/{automation_id}", headers=person.headers)
    assert answer.status_code == 200, answer.text
    return {
        step["config"]["url"]: step["config"]["signing_secret"][-4:]
        for step in answer.json()["steps"]
    }


def test_reordered_steps_keep_their_own_saved_secrets(
    hub: TestClient, make_person: MakePerson
) -> None:
    person = make_person("admin", password=True)
    token = sign_in(hub, person)
    automation_id = _create_two(hub, token)
    first, second = _STEP_UID.findall(hub.get(f"/automations/{automation_id}/edit").text)
    urls = list(HOOKS)

    # The browser moved the second step up; neither secret was typed again.
    answer = hub.post(
        f"/automations/{automation_id}/edit",
        data=_form(token, [(second, urls[1], ""), (first, urls[0], "")]),
        follow_redirects=False,
    )

    assert answer.status_code == 303, answer.text
    assert _saved_secret_endings(hub, person, automation_id) == {
        urls[0]: "AAAA",
        urls[1]: "BBBB",
    }


def test_a_step_left_after_removing_the_one_above_keeps_its_own_secret(
    hub: TestClient, make_person: MakePerson
) -> None:
    person = make_person("admin", password=True)
    token = sign_in(hub, person)
    automation_id = _create_two(hub, token)
    _first, second = _STEP_UID.findall(hub.get(f"/automations/{automation_id}/edit").text)
    urls = list(HOOKS)

    answer = hub.post(
        f"/automations/{automation_id}/edit",
        data=_form(token, [(second, urls[1], "")]),
        follow_redirects=False,
    )

    assert answer.status_code == 303, answer.text
    assert _saved_secret_endings(hub, person, automation_id) == {urls[1]: "BBBB"}


def _create_two(hub: TestClient, token: str) -> int:
    steps = [(f"sn{index}", url, secret) for index, (url, secret) in enumerate(HOOKS.items())]
    answer = hub.post("/automations/new", data=_form(token, steps), follow_redirects=False)
    assert answer.status_code == 303, answer.text
    match = re.fullmatch(r"/automations/(\d+)", answer.headers["location"])
    assert match
    return int(match.group(1))
