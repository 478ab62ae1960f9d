"""Tango faults over HTTP: fault rules on /raas/v2 answer in Tango's error shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.sandbox import SandboxState
from tests.incentives.test_tango import order_body

TANGO_ERROR_KEYS = {"timestamp", "requestId", "path", "httpCode", "httpPhrase", "errors"}
runner = CliRunner()


class LiveTango:
    """A sandbox served over HTTP, called as a Tango client would call it."""

    def __init__(self, url: str) -> None:
        self.url = url
        summary = httpx.get(f"{url}/_sandbox/tango").json()
        self.auth = (summary["platformName"], summary["platformKey"])

    def order(self, **overrides: Any) -> httpx.Response:
        return httpx.post(
            f"{self.url}/raas/v2/orders", json=order_body(**overrides), auth=self.auth
        )

    def catalogs(self) -> httpx.Response:
        return httpx.get(f"{self.url}/raas/v2/catalogs", auth=self.auth)

    def control(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(f"{self.url}/_sandbox/{path}", json=body)


@pytest.fixture
def tango(live_sandbox: tuple[str, SandboxState]) -> LiveTango:
    return LiveTango(live_sandbox[0])


def assert_tango_error(response: httpx.Response, status: int, path: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == TANGO_ERROR_KEYS
    assert body["httpCode"] == status
    assert body["path"] == path
    assert body["errors"][0]["message"]
    return body


@pytest.mark.parametrize("status", [500, 503, 504])
def test_a_fault_rule_on_tango_orders_answers_in_tangos_shape(
    tango: LiveTango, status: int
) -> None:
    rule = tango.control("faults", {"path": "/raas/v2/orders", "status": status, "count": 1})
    assert rule.status_code == 200, rule.text
    failed = tango.order()
    assert_tango_error(failed, status, "/raas/v2/orders")
    assert "Retry-After" not in failed.headers
    assert tango.catalogs().status_code == 200  # the rule's pattern is only the orders path
    assert tango.order().status_code == 201  # the rule is spent; nothing was ordered before


def test_a_429_rule_on_tango_sends_retry_after(tango: LiveTango) -> None:
    tango.control("faults", {"path": "/raas/v2/*", "status": 429, "retryAfter": 4, "count": 1})
    limited = tango.catalogs()
    assert_tango_error(limited, 429, "/raas/v2/catalogs")
    assert limited.headers["Retry-After"] == "4"
    tango.control("faults", {"path": "/raas/v2/*", "status": 429, "count": 1})
    assert tango.catalogs().headers["Retry-After"] == "1"
    assert tango.catalogs().status_code == 200


def test_qualtrics_paths_keep_their_error_shape(live_sandbox: tuple[str, SandboxState]) -> None:
    url, state = live_sandbox
    _user, token = state.create_user("shape@example.com")
    httpx.post(f"{url}/_sandbox/faults", json={"path": "*", "status": 503, "count": 1})
    failed = httpx.get(f"{url}/API/v3/whoami", headers={"X-API-TOKEN": token})
    assert failed.status_code == 503
    assert "meta" in failed.json()
    assert "httpCode" not in failed.json()


def test_the_qualtrics_brand_rate_limit_does_not_count_tango_calls(
    tango: LiveTango, live_sandbox: tuple[str, SandboxState]
) -> None:
    url, state = live_sandbox
    _user, token = state.create_user("limit@example.com")
    httpx.put(f"{url}/_sandbox/faults/rate-limit", json={"perMinute": 1})
    for _ in range(3):
        assert tango.catalogs().status_code == 200
    assert httpx.get(f"{url}/API/v3/whoami", headers={"X-API-TOKEN": token}).status_code == 200


def test_tango_fault_rule_from_the_command_line(tango: LiveTango) -> None:
    added = runner.invoke(
        app,
        ["sandbox", "faults", "add", "--url", tango.url, "--path", "/raas/v2/orders",
         "--status", "503", "--rate", "1"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    for _ in range(2):
        assert_tango_error(tango.order(), 503, "/raas/v2/orders")
    cleared = runner.invoke(app, ["sandbox", "faults", "clear", "--url", tango.url])
    assert cleared.exit_code == 0, cleared.output
    assert tango.order().status_code == 201
