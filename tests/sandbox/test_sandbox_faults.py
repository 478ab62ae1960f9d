"""Fault injection: per-path errors with Retry-After, latency, hangs, the brand rate limit."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from qualflow.sandbox import FaultRule, SandboxState
from qualflow.sandbox.faults import TokenBucket
from tests.sandbox.sandbox_support import assert_error

pytestmark = pytest.mark.anyio


async def test_429_with_retry_after_then_recovers(client: httpx.AsyncClient) -> None:
    rule = await client.post(
        "/_sandbox/faults", json={"path": "/API/v3/surveys*", "status": 429, "count": 2}
    )
    assert rule.status_code == 200
    for _ in range(2):
        resp = await client.get("/API/v3/surveys")
        assert_error(resp, 429)
        assert resp.headers["Retry-After"] == "1"
    assert (await client.get("/API/v3/surveys")).status_code == 200
    assert (await client.get("/API/v3/whoami")).status_code == 200


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_server_errors_with_optional_retry_after(
    client: httpx.AsyncClient, state: SandboxState, status: int
) -> None:
    state.faults.add(FaultRule(path="/API/v3/whoami", status=status, count=1))
    plain = await client.get("/API/v3/whoami")
    assert_error(plain, status)
    assert "Retry-After" not in plain.headers
    state.faults.add(FaultRule(path="/API/v3/whoami", status=status, count=1, retry_after=7))
    hinted = await client.get("/API/v3/whoami")
    assert_error(hinted, status)
    assert hinted.headers["Retry-After"] == "7"
    if status == 503:
        assert hinted.json()["meta"]["httpStatus"] == "503 - Temporary Internal Server Error"


async def test_method_filter_and_rate_zero(client: httpx.AsyncClient, state: SandboxState) -> None:
    state.faults.add(FaultRule(path="*", method="post", status=500))
    state.faults.add(FaultRule(path="*", status=503, rate=0.0))
    assert (await client.get("/API/v3/whoami")).status_code == 200
    assert_error(await client.post("/API/v3/eventsubscriptions", json={}), 500)


async def test_faults_do_not_touch_control_api(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    state.faults.add(FaultRule(path="*", status=500))
    assert (await client.get("/_sandbox/faults")).status_code == 200
    assert (await client.delete("/_sandbox/faults")).status_code == 200
    assert (await client.get("/API/v3/whoami")).status_code == 200


async def test_latency_is_added(client: httpx.AsyncClient, state: SandboxState) -> None:
    state.faults.add(FaultRule(path="/API/v3/whoami", latency=0.05, count=1))
    assert (await client.get("/API/v3/whoami")).status_code == 200
    assert state.faults.rules[0].hits == 1


async def test_hang_outlasts_a_client_timeout(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    state.faults.add(FaultRule(path="/API/v3/whoami", hang=60.0, count=1))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.get("/API/v3/whoami"), timeout=0.2)
    assert (await client.get("/API/v3/whoami")).status_code == 200


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"path": "*", "status": 404}, "status"),
        ({"path": "*", "status": 500, "rate": 2}, "rate"),
        ({"path": "*"}, "at least one"),
        ({"path": "*", "status": 500, "colour": "red"}, "colour"),
        ({"path": "*", "latency": -1}, "negative"),
    ],
)
async def test_bad_fault_rules(
    client: httpx.AsyncClient, body: dict[str, object], needle: str
) -> None:
    assert needle in assert_error(await client.post("/_sandbox/faults", json=body), 400)


async def test_delete_fault_rule(client: httpx.AsyncClient) -> None:
    rule = (await client.post("/_sandbox/faults", json={"path": "*", "status": 500})).json()
    rule_id = rule["result"]["id"]
    assert_error(await client.get("/API/v3/whoami"), 500)
    assert (await client.delete(f"/_sandbox/faults/{rule_id}")).status_code == 200
    assert (await client.get("/API/v3/whoami")).status_code == 200
    assert_error(await client.delete(f"/_sandbox/faults/{rule_id}"), 404)


async def test_brand_rate_limit(client: httpx.AsyncClient, state: SandboxState) -> None:
    resp = await client.put("/_sandbox/faults/rate-limit", json={"perMinute": 30})
    assert resp.status_code == 200
    statuses = [(await client.get("/API/v3/whoami")).status_code for _ in range(30)]
    assert statuses == [200] * 30
    limited = None
    for _ in range(30):  # the bucket refills at 0.5/s: the burst runs dry within a few calls
        r = await client.get("/API/v3/whoami")
        if r.status_code == 429:
            limited = r
            break
    assert limited is not None
    assert_error(limited, 429, "RATE_1")
    assert int(limited.headers["Retry-After"]) >= 1
    await client.put("/_sandbox/faults/rate-limit", json={"perMinute": None})
    assert (await client.get("/API/v3/whoami")).status_code == 200


def test_token_bucket_allows_the_per_minute_budget_then_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(3000, clock=lambda: now[0])
    assert all(bucket.take() == 0.0 for _ in range(3000))
    wait = bucket.take()
    assert wait == pytest.approx(0.02)  # 3000/min = one token every 20 ms
    now[0] += 0.02
    assert bucket.take() == 0.0
    now[0] += 60.0
    assert sum(1 for _ in range(3100) if bucket.take() == 0.0) == 3000


async def test_proxy_notice(client: httpx.AsyncClient, state: SandboxState) -> None:
    resp = await client.patch("/_sandbox/config", json={"proxy_notice_host": "fra1.qualtrics.com"})
    assert resp.status_code == 200
    meta = (await client.get("/API/v3/whoami")).json()["meta"]
    assert meta["notice"] == (
        "Request proxied. For faster response times, use this host instead: fra1.qualtrics.com"
    )
    missing = (await client.get("/API/v3/surveys/SV_000000000000000")).json()["meta"]
    assert "notice" not in missing
    assert "notice" not in (await client.get("/_sandbox/faults")).json()["meta"]
    state.config.proxy_notice_host = None
    assert "notice" not in (await client.get("/API/v3/whoami")).json()["meta"]


async def test_body_too_large_is_413(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    state.config.max_body_bytes = 1000
    resp = await client.post(
        f"/API/v3/surveys/{csat}/responses", json={"values": {"x": "y" * 2000}}
    )
    assert_error(resp, 413, "QVAL_13")
