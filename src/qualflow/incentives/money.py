"""Amounts in minor units (cents) with ISO 4217 currency codes.

Stored as integers so sums and limits are exact on every database; converted from and to
:class:`~decimal.Decimal` at the edges (APIs, CSV files, Tango's JSON numbers).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

from qualflow.validation import MAX_STORED_INT

# ISO 4217 currencies whose minor unit is not 1/100.
_EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip
_CURRENCY = re.compile(r"^[A-Z]{3}$")


#: The largest amount stored, in minor units: integer columns hold reward values, budgets and
#: gift-code values.
MAX_MINOR = MAX_STORED_INT


class MoneyError(ValueError):
    """An amount or currency that cannot be used."""


#: ISO 4217 codes that name no money a reward could be paid in: no currency, testing, funds
#: units and precious metals.
_NO_MONEY = frozenset({"XXX", "XTS", "XAU", "XAG", "XPT", "XPD", "XBA", "XBB", "XBC", "XBD", "XDR"})


def check_currency(currency: str) -> str:
    """Return the upper-cased ISO 4217 code, or raise :class:`MoneyError`."""
    code = currency.strip().upper()
    if not _CURRENCY.match(code):
        raise MoneyError(f"{currency!r} is not a three-letter ISO 4217 currency code")
    if code in _NO_MONEY:
        raise MoneyError(f"{code} is ISO 4217's code for no currency (or a test or metal)")
    return code


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def to_minor(amount: Decimal | str | int | float, currency: str) -> int:
    """``Decimal("10.50"), "USD"`` → ``1050``. Refuses fractions of the minor unit."""
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise MoneyError(f"{amount!r} is not an amount") from None
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not an amount")
    if value and value.adjusted() > 30:
        raise MoneyError(f"{amount} {currency} is too large an amount")
    with localcontext() as context:  # exact: no rounding to the default 28 digits
        context.prec = max(context.prec, len(value.as_tuple().digits) + exponent(currency) + 1)
        scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        places = exponent(currency)
        raise MoneyError(f"{amount} {currency} has more than {places} decimal places")
    return int(scaled)


def check_stored(minor: int, currency: str) -> int:
    """``minor`` if the database can store it as a value or budget, else :class:`MoneyError`."""
    if minor > MAX_MINOR:
        raise MoneyError(
            f"{from_minor(minor, currency)} {currency} is too large "
            f"(at most {from_minor(MAX_MINOR, currency)} {currency})"
        )
    return minor


def from_minor(minor: int, currency: str) -> Decimal:
    """``1050, "USD"`` → ``Decimal("10.50")``, exact whatever its size."""
    places = exponent(currency)
    quantum = Decimal(1).scaleb(-places)
    # Decimal's default 28 digits would round (or refuse to quantize) a longer amount, such as
    # the too-large one an error message has to show.
    with localcontext() as context:
        context.prec = max(context.prec, len(str(abs(minor))) + places + 1)
        return (Decimal(minor).scaleb(-places)).quantize(quantum, rounding=ROUND_HALF_UP)


def format_money(minor: int, currency: str) -> str:
    """``1050, "USD"`` → ``"10.50 USD"``."""
    return f"{from_minor(minor, currency)} {currency}"
