"""Pydantic validation failures as the one-line messages our CLI and services show, and the
checks every display text (names) shares."""

from __future__ import annotations

import unicodedata

from pydantic import ValidationError

#: The largest id a row can have (the id columns are 32-bit integers on PostgreSQL): bound
#: every id taken from outside with it, so a bigger number is refused, not a database error.
MAX_ID = 2**31 - 1


def refuse_control_characters(value: str) -> str:
    """``value`` unchanged, or ValueError when it holds a control character.

    Names are shown in terminals, tables and emails: an escape sequence in one could rewrite
    what a terminal shows, and a line break would split a one-line listing.
    """
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError(
            "must not contain control characters (escape sequences, line breaks, tabs)"
        )
    return value


def describe_errors(exc: ValidationError) -> str:
    """A validation failure on one line: ``field: message; field: message``.

    A model-level check has no field, so its message stands alone; pydantic's
    ``Value error, `` prefix is dropped because it tells a user nothing.
    """
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
