"""Pydantic validation failures as the one-line messages our CLI and services show, and the
checks every display text (names) shares."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from urllib.parse import urlsplit

from pydantic import ValidationError

#: The largest value an integer column holds (32-bit on PostgreSQL): ids, counts and amounts
#: in minor units taken from outside are bounded by it, so a bigger number is refused, not a
#: database error.
MAX_STORED_INT = 2**31 - 1
#: The largest id a row can have.
MAX_ID = MAX_STORED_INT


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


def refuse_credentials_in_url(value: str) -> str:
    """``value`` unchanged, or ValueError when it carries a user name or password
    (``https://user:password@host``).

    Credentials belong in their own encrypted fields; a base URL is stored in clear and shown
    wherever its connection or account is listed.
    """
    if "@" in urlsplit(value).netloc:
        raise ValueError("must not contain a user name or password (they have fields of their own)")
    return value


def describe_errors(exc: ValidationError, *, name_field: Callable[[str], str] | None = None) -> str:
    """A validation failure on one line: ``field: message; field: message``.

    A model-level check has no field, so its message stands alone; pydantic's
    ``Value error, `` prefix is dropped because it tells a user nothing. ``name_field`` turns a
    field's dotted path into the name the user knows it by (e.g. an environment variable).
    """
    parts = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        where = name_field(path) if path and name_field else path
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def first_line(exc: BaseException) -> str:
    """An error's message cut to its first line (a driver's can run to many), or its class name
    when it has none: what a one-line refusal shows of it."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__
