"""Whole numbers typed by people: in form fields and in list URLs (page, filter ids).

``str.isdigit`` also accepts digits such as "²" that ``int()`` refuses, and a number may be
larger than any integer column holds, which fails the query itself; both are "not a number".
"""

from __future__ import annotations

from qualflow.validation import MAX_STORED_INT

__all__ = ["page_number", "whole_number"]


def whole_number(text: str | None, maximum: int = MAX_STORED_INT) -> int | None:
    """The number ``text`` spells in ASCII digits (0 … ``maximum``), or ``None``."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    # Checked on the text first: int() of thousands of digits is slow, then refused.
    if len(text.lstrip("0")) > len(str(maximum)):
        return None
    number = int(text)
    return number if number <= maximum else None


def page_number(text: str | None, page_size: int) -> int:
    """A list's page from its URL: 1 unless a page whose rows the database can address."""
    number = whole_number(text, maximum=MAX_STORED_INT // page_size)
    return max(number or 1, 1)
