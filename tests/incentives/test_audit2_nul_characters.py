"""Text holding a NUL character, which PostgreSQL cannot store, is a 422 naming the field on
every incentives endpoint (the platform endpoint first: other systems call it), never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.incentives.support import CLEAN_FRAUD_FIELDS, Person
from tests.incentives.test_api import API, gift_incentive, platform_key

NUL = "a\x00b"


@pytest.fixture
def setup(hub: TestClient, admin: Person) -> dict[str, Any]:
    incentive = gift_incentive(hub, admin, stock=2, approval_mode="review_all")
    platform, key = platform_key(hub, admin)
    held = hub.post(
        f"{API}/{incentive['reference_id']}/rewards",
        json={"email": "held@example.org", **CLEAN_FRAUD_FIELDS},
        auth=(platform, key),
    )
    assert held.json()["status"] == "held", held.text
    return {
        "incentive": incentive["reference_id"],
        "auth": (platform, key),
        "reward": held.json()["reference_id"],
    }


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("firstName", {"email": "n1@example.org", "firstName": NUL}),
        ("responseId", {"email": "n2@example.org", "responseId": NUL}),
        ("surveyId", {"email": "n3@example.org", "surveyId": NUL}),
        ("participantId", {"email": "n4@example.org", "participantId": NUL}),
    ],
)
def test_the_platform_endpoint_refuses_a_nul(
    hub: TestClient, setup: dict[str, Any], field: str, body: dict[str, str]
) -> None:
    answer = hub.post(
        f"{API}/{setup['incentive']}/rewards",
        json={**body, **CLEAN_FRAUD_FIELDS},
        auth=setup["auth"],
    )

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["field"] == field
    assert "NUL character" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/providers/gift-code-pools", {"name": NUL}, "name"),
        ("post", "/providers/gift-code-pools", {"name": "ok", "description": NUL}, "description"),
        ("post", "/api-keys", {"platform": "acme", "display_name": NUL}, "display_name"),
        ("patch", "/api-keys/1", {"display_name": NUL}, "display_name"),
        ("patch", "/{incentive}", {"name": NUL}, "name"),
        ("patch", "/{incentive}", {"email_subject": NUL}, "email_subject"),
        ("post", "/rewards/{reward}/block", {"reason": NUL}, "reason"),
        (
            "post",
            "/rewards/bulk",
            {"action": "block", "rewards": ["{reward}"], "reason": NUL},
            "reason",
        ),
    ],
)
def test_people_s_requests_refuse_a_nul(
    hub: TestClient,
    admin: Person,
    setup: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    filled = {
        name: ([v.format(**setup) for v in value] if isinstance(value, list) else value)
        for name, value in body.items()
    }
    answer = getattr(hub, method)(API + path.format(**setup), json=filled, headers=admin.headers)

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["field"] == field
    assert "NUL character" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "parameter"), [("", "q"), ("/rewards", "q"), ("/api-keys", "platform")]
)
def test_a_search_for_a_nul_is_refused(
    hub: TestClient, admin: Person, setup: dict[str, Any], path: str, parameter: str
) -> None:
    answer = hub.get(API + path, params={parameter: NUL}, headers=admin.headers)

    assert answer.status_code == 422, answer.text
    assert "NUL character" in answer.json()["error"]["message"]


def test_a_reward_reference_holding_a_nul_is_not_found(
    hub: TestClient, admin: Person, setup: dict[str, Any]
) -> None:
    answer = hub.get(f"{API}/rewards/RW-a%00b", headers=admin.headers)

    assert answer.status_code == 404, answer.text
    assert hub.post(f"{API}/INC-a%00b/rewards", json={}, auth=setup["auth"]).status_code == 404
