"""Amounts in minor units: exact conversions at any size, clear refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qualflow.incentives.money import MoneyError, check_stored, from_minor, to_minor

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD"])


@given(minor=st.integers(0, 10**30), currency=CURRENCIES)
def test_minor_units_round_trip_exactly_at_any_size(minor: int, currency: str) -> None:
    amount = from_minor(minor, currency)
    assert to_minor(amount, currency) == minor
    assert to_minor(str(amount), currency) == minor


def test_examples_per_currency_exponent() -> None:
    assert from_minor(1050, "USD") == Decimal("10.50")
    assert from_minor(5, "JPY") == Decimal("5")
    assert from_minor(12345, "KWD") == Decimal("12.345")
    assert to_minor("10.5", "USD") == 1050


def test_amounts_that_cannot_be_used_are_refused_with_the_reason() -> None:
    with pytest.raises(MoneyError, match=r"^0\.001 USD has more than 2 decimal places$"):
        to_minor("0.001", "USD")
    with pytest.raises(MoneyError, match=r"^'ten' is not an amount$"):
        to_minor("ten", "USD")
    with pytest.raises(MoneyError, match="too large an amount"):
        to_minor("1e31", "USD")
    with pytest.raises(MoneyError, match=r"^1000000000000000000000000000000\.00 USD is too large"):
        check_stored(to_minor("1e30", "USD"), "USD")
