"""Personal API token names follow the rules of people's names: no control characters."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.hub.hub_support import Person


@pytest.mark.parametrize("name", ["report\x1b[2Jscript", "line\nbreak", "tab\there"])
def test_a_token_name_with_control_characters_is_refused(
    client: TestClient, admin: Person, name: str
) -> None:
    answer = client.post("/api/v1/me/tokens", json={"name": name}, headers=admin.headers)
    assert answer.status_code == 422, answer.text
    assert "control characters" in answer.json()["error"]["message"]
    assert "token" not in answer.json()
    listed = client.get("/api/v1/me/tokens", headers=admin.headers).json()["items"]
    assert name not in [token["name"] for token in listed]


def test_a_plain_token_name_is_kept(client: TestClient, admin: Person) -> None:
    answer = client.post(
        "/api/v1/me/tokens", json={"name": "  Weekly report – café  "}, headers=admin.headers
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == "Weekly report – café"
