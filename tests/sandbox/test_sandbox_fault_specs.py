"""POST /_sandbox/faults with a rule of the wrong shape: a 400 that names the field, no rule
added, and the API keeps answering (a rule that cannot be matched must never be stored)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qualflow.sandbox import SandboxState

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"path": 5, "status": 500}, "path"),
        ({"path": "", "status": 500}, "path"),
        ({"path": ["/API/v3/*"], "status": 500}, "path"),
        ({"status": True}, "status"),
        ({"status": 500.0}, "status"),
        ({"status": "500"}, "status"),
        ({"status": 500, "rate": "0.5"}, "rate"),
        ({"status": 500, "rate": True}, "rate"),
        ({"latency": True}, "latency"),
        ({"latency": "1"}, "latency"),
        ({"hang": [1]}, "hang"),
        ({"status": 429, "retryAfter": 1.5}, "retryAfter"),
        ({"status": 429, "retryAfter": "3"}, "retryAfter"),
        ({"status": 429, "retryAfter": 1e30}, "retryAfter"),
        ({"status": 429, "retryAfter": 86401}, "retryAfter"),
        ({"status": 500, "count": 1.5}, "count"),
        ({"status": 500, "count": "2"}, "count"),
        ({"status": 500, "count": True}, "count"),
    ],
)
async def test_a_malformed_rule_is_refused_and_the_api_keeps_working(
    client: httpx.AsyncClient, state: SandboxState, rule: dict[str, Any], field: str
) -> None:
    answer = await client.post("/_sandbox/faults", json=rule)
    assert answer.status_code == 400, answer.text
    message = answer.json()["meta"]["error"]["errorMessage"]
    assert message.startswith("Invalid fault: "), message
    assert field in message, message
    assert state.faults.rules == []
    assert (await client.get("/API/v3/whoami")).status_code == 200


async def test_a_rule_is_listed_and_cleared(client: httpx.AsyncClient, state: SandboxState) -> None:
    added = await client.post(
        "/_sandbox/faults",
        json={"path": "/API/v3/whoami", "status": 429, "retryAfter": 3, "count": 1},
    )
    assert added.status_code == 200, added.text
    listed = (await client.get("/_sandbox/faults")).json()["result"]["rules"]
    assert [(r["path"], r["status"], r["retryAfter"], r["count"]) for r in listed] == [
        ("/API/v3/whoami", 429, 3, 1)
    ]
    limited = await client.get("/API/v3/whoami")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert (await client.delete("/_sandbox/faults")).status_code == 200
    assert (await client.get("/_sandbox/faults")).json()["result"]["rules"] == []
    assert (await client.get("/API/v3/whoami")).status_code == 200


@pytest.mark.parametrize("per_minute", [0, -5, 10**23, 1_000_001])
async def test_an_impossible_brand_rate_limit_is_refused(
    client: httpx.AsyncClient, state: SandboxState, per_minute: int
) -> None:
    answer = await client.put("/_sandbox/faults/rate-limit", json={"perMinute": per_minute})
    assert answer.status_code == 400, answer.text
    assert "1 to 1000000" in answer.json()["meta"]["error"]["errorMessage"]
    assert state.faults.rate_limit_per_minute is None
    highest = await client.put("/_sandbox/faults/rate-limit", json={"perMinute": 1_000_000})
    assert highest.status_code == 200
