"""Tango faults over HTTP: fault rules on /raas/v2 answer in Tango's error shape, and the
control API makes the Tango double fail its next orders or refuse a recipient's email."""

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


def test_fail_the_next_orders_with_a_status_and_message(tango: LiveTango) -> None:
    set_up = tango.control(
        "tango/failures", {"status": 503, "count": 2, "message": "Tango is down for upkeep."}
    )
    assert set_up.status_code == 200, set_up.text
    for _ in range(2):
        body = assert_tango_error(tango.order(), 503, "/raas/v2/orders")
        assert body["errors"][0]["message"] == "Tango is down for upkeep."
        assert tango.catalogs().status_code == 200  # only orders fail
    assert tango.order().status_code == 201


def test_fail_the_next_orders_with_a_4xx(tango: LiveTango) -> None:
    tango.control("tango/failures", {"status": 422, "message": "Unprocessable order."})
    body = assert_tango_error(tango.order(), 422, "/raas/v2/orders")
    assert body["errors"][0]["message"] == "Unprocessable order."
    assert tango.order().status_code == 201


def test_failed_orders_can_send_retry_after(tango: LiveTango) -> None:
    tango.control("tango/failures", {"status": 429, "retryAfter": 3})
    limited = tango.order()
    assert_tango_error(limited, 429, "/raas/v2/orders")
    assert limited.headers["Retry-After"] == "3"


def test_refuse_orders_for_an_email(tango: LiveTango) -> None:
    set_up = tango.control(
        "tango/refusals",
        {"email": "Blocked@Example.org", "message": "This email address is not deliverable."},
    )
    assert set_up.status_code == 200, set_up.text
    refused = tango.order(recipient={"email": "blocked@example.org ", "firstName": "B"})
    body = assert_tango_error(refused, 400, "/raas/v2/orders")
    assert body["errors"][0]["path"] == "recipient.email"
    assert body["errors"][0]["message"] == "This email address is not deliverable."
    assert tango.order(externalRefID="other1").status_code == 201  # p@example.org still served
    again = tango.order(recipient={"email": "BLOCKED@example.org", "firstName": "B"})
    assert again.status_code == 400  # refused every time, not once
    summary = httpx.get(f"{tango.url}/_sandbox/tango").json()
    assert summary["orders"] == 1


def test_refusal_with_another_4xx(tango: LiveTango) -> None:
    tango.control("tango/refusals", {"email": "x@example.org", "status": 403})
    refused = tango.order(recipient={"email": "x@example.org", "firstName": "X"})
    body = assert_tango_error(refused, 403, "/raas/v2/orders")
    assert "x@example.org" in body["errors"][0]["message"]


def test_clearing_faults_ends_tango_failures_and_refusals(tango: LiveTango) -> None:
    tango.control("tango/failures", {"status": 500, "count": 5})
    tango.control("tango/refusals", {"email": "p@example.org"})
    assert httpx.delete(f"{tango.url}/_sandbox/faults").status_code == 200
    assert tango.order().status_code == 201


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("tango/failures", {"status": 200}, "status"),
        ("tango/failures", {"status": 302}, "status"),
        ("tango/failures", {"status": "503"}, "status"),
        ("tango/failures", {"status": 599}, "status"),
        ("tango/failures", {"status": 503, "count": 0}, "count"),
        ("tango/failures", {"status": 503, "message": 5}, "message"),
        ("tango/failures", {"status": 503, "retryAfter": -1}, "retryAfter"),
        ("tango/failures", {"status": 503, "colour": "red"}, "colour"),
        ("tango/failures", [], ""),
        ("tango/refusals", {"email": ""}, "email"),
        ("tango/refusals", {"email": "no-at-sign"}, "email"),
        ("tango/refusals", {"email": "a@b.org", "status": 503}, "status"),
        ("tango/refusals", {"email": "a@b.org", "message": ""}, "message"),
    ],
)
def test_bad_tango_fault_requests_are_refused_with_a_reason(
    tango: LiveTango, route: str, body: Any, field: str
) -> None:
    answer = tango.control(route, body)
    error = assert_tango_error(answer, 400, f"/_sandbox/{route}")
    assert error["errors"][0]["path"] == field
    assert tango.order().status_code == 201


def test_tango_failures_and_refusals_from_the_command_line(tango: LiveTango) -> None:
    def sandbox(*args: str) -> Any:
        return runner.invoke(app, ["sandbox", "faults", *args, "--url", tango.url])

    failing = sandbox("tango-fail", "--status", "502", "--count", "1", "--message", "Bad gateway.")
    assert failing.exit_code == 0, failing.output
    body = assert_tango_error(tango.order(), 502, "/raas/v2/orders")
    assert body["errors"][0]["message"] == "Bad gateway."
    refusing = sandbox("tango-refuse", "p@example.org", "--status", "400")
    assert refusing.exit_code == 0, refusing.output
    assert_tango_error(tango.order(), 400, "/raas/v2/orders")
    wrong = sandbox("tango-fail", "--status", "200")
    assert wrong.exit_code == 2
