"""The platform endpoint's answer to an ``Authorization: Basic …`` header it cannot read: a 401
that says what is wrong with it and what it should hold, not FastAPI's bare "Not
authenticated"."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from tests.incentives.support import CLEAN_FRAUD_FIELDS, Person
from tests.incentives.test_api import API, gift_incentive, platform_key

EXPECTED_FORM = "platform name as the user name and the API key as the password"


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("Basic", "holds no credentials"),
        ("Basic ", "holds no credentials"),
        ("basic    ", "holds no credentials"),
        ("Basic not~base64!", "is not base64"),
        ("Basic YWJ", "is not base64"),  # bad padding
        (f"Basic {b64('acme')}", "has no ':' between the platform name and the API key"),
        ("Basic " + b64(b"acme:\xff\xfe"), "is not UTF-8 text"),
    ],
)
def test_a_malformed_basic_header_is_a_401_saying_what_is_wrong(
    hub: TestClient, admin: Person, header: str, problem: str
) -> None:
    incentive = gift_incentive(hub, admin)
    url = f"{API}/{incentive['reference_id']}/rewards"

    answer = hub.post(url, json={"email": "a@example.org"}, headers={"Authorization": header})

    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="qualflow incentives"'
    error = answer.json()["error"]
    assert error["code"] == "unauthorized"
    assert "Not authenticated" not in error["message"]
    assert error["message"].startswith(f"the Authorization header {problem}"), error["message"]
    assert EXPECTED_FORM in error["message"]


def test_wrong_or_missing_credentials_answer_as_before(hub: TestClient, admin: Person) -> None:
    incentive = gift_incentive(hub, admin)
    platform, key = platform_key(hub, admin)
    url = f"{API}/{incentive['reference_id']}/rewards"
    body = {"email": "a@example.org", **CLEAN_FRAUD_FIELDS}

    missing = hub.post(url, json=body)
    wrong = hub.post(url, json=body, auth=(platform, "qfk_nope"))
    empty_parts = hub.post(url, json=body, headers={"Authorization": f"Basic {b64(':')}"})
    bearer = hub.post(url, json=body, headers={"Authorization": "Bearer abc"})

    for answer in (missing, bearer):
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="qualflow incentives"'
        assert answer.json()["error"]["message"] == (
            "authentication required: HTTP Basic with your platform name and API key"
        )
    # Well-formed, only not a key anyone has: the same answer as any wrong key.
    for answer in (wrong, empty_parts):
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="qualflow incentives"'
        assert answer.json()["error"]["message"] == (
            "unknown platform name or API key (or the key was deactivated)"
        )
    # A password holding ':' is read whole (only the first ':' separates).
    assert hub.post(url, json=body, auth=(platform, key)).status_code == 201


def test_the_401_is_documented_in_the_openapi(hub: TestClient) -> None:
    operation = hub.app.openapi()["paths"]["/api/v1/incentives/{reference_id}/rewards"]["post"]
    assert "401" in operation["responses"]
