"""`sandbox faults tango-fail --after-placing`: the order is placed and charged, then its answer
fails — the case where a client must retry with the same externalRefID and get the order it
already paid for, not a second one. Over HTTP, as against `qualflow sandbox serve`."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from qualflow.cli import app
from tests.sandbox.test_tango_faults import LiveTango, assert_tango_error, tango

__all__ = ["tango"]  # the fixture, used by name

runner = CliRunner()


def _summary(live: LiveTango) -> tuple[int, float]:
    """How many orders the Tango double holds, and its account's balance."""
    summary = httpx.get(f"{live.url}/_sandbox/tango").json()
    return summary["orders"], summary["accounts"][0]["currentBalance"]


def test_an_order_failed_after_placing_is_charged_once_and_found_by_its_ref(
    tango: LiveTango,
) -> None:
    _orders, balance = _summary(tango)
    set_up = tango.control("tango/failures", {"status": 503, "afterPlacing": True})
    assert set_up.status_code == 200, set_up.text

    assert_tango_error(tango.order(externalRefID="reflost1", amount=10.0), 503, "/raas/v2/orders")
    assert _summary(tango) == (1, balance - 10.0)  # placed and charged, though the answer failed
    retried = tango.order(externalRefID="reflost1", amount=10.0)

    assert retried.status_code in (200, 201), retried.text
    assert retried.json()["externalRefID"] == "reflost1"
    assert _summary(tango) == (1, balance - 10.0)  # the same order, not a second charge


def test_after_placing_from_the_command_line(tango: LiveTango) -> None:
    argv = ["sandbox", "faults", "tango-fail", "--status", "500", "--after-placing"]
    result = runner.invoke(app, [*argv, "--url", tango.url])
    assert result.exit_code == 0, result.output
    assert "after placing" in result.stdout
    assert_tango_error(tango.order(externalRefID="refcli1"), 500, "/raas/v2/orders")
    again = tango.order(externalRefID="refcli1")
    assert again.status_code in (200, 201), again.text
    first, second = again.json(), tango.order(externalRefID="refcli1").json()
    assert first["referenceOrderID"] == second["referenceOrderID"]


def test_after_placing_must_be_a_boolean(tango: LiveTango) -> None:
    answer = tango.control("tango/failures", {"status": 503, "afterPlacing": "yes"})
    error = assert_tango_error(answer, 400, "/_sandbox/tango/failures")
    assert error["errors"][0]["path"] == "afterPlacing"
    assert "true or false" in error["errors"][0]["message"]
