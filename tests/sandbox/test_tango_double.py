"""The sandbox's Tango double: refusals in Tango's shape, and never a charge it cannot explain."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT
from tests.incentives.support import Tango, sandbox_with_tango
from tests.incentives.test_tango import call, order_body

TANGO_ERROR_KEYS = {"timestamp", "requestId", "path", "httpCode", "httpPhrase", "errors"}


@pytest.fixture
def tango() -> Tango:
    return sandbox_with_tango()


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (10.001, "at most 2 decimal places"),
        ("10.005", "at most 2 decimal places"),
        (0, "positive"),
        (-5, "positive"),
        ("NaN", "positive"),
        ("Infinity", "positive"),
        (True, "must be a number"),
    ],
)
def test_amounts_no_money_can_pay_are_refused_without_a_charge(
    tango: Tango, amount: Any, message: str
) -> None:
    response = call(tango, "POST", "/raas/v2/orders", json=order_body(amount=amount))
    assert response.status_code == 400
    body = response.json()
    assert set(body) == TANGO_ERROR_KEYS
    assert body["errors"][0]["path"] == "amount"
    assert message in body["errors"][0]["message"]
    assert tango.state.orders == {}
    assert tango.state.balance(DEFAULT_ACCOUNT) == Decimal("1000.00")


def test_an_injected_failure_after_the_order_places_it_and_a_repeat_returns_it(
    tango: Tango,
) -> None:
    tango.state.fail_next(502, path_prefix="/raas/v2/orders", after=True)
    lost = call(tango, "POST", "/raas/v2/orders", json=order_body())
    assert lost.status_code == 502
    assert set(lost.json()) == TANGO_ERROR_KEYS
    assert tango.state.balance(DEFAULT_ACCOUNT) == Decimal("990.00")  # charged all the same
    [placed] = tango.state.orders.values()
    again = call(tango, "POST", "/raas/v2/orders", json=order_body())
    assert again.status_code == 200
    assert again.json() == placed
    assert tango.state.balance(DEFAULT_ACCOUNT) == Decimal("990.00")
