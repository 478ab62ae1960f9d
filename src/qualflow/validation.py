"""Pydantic validation failures as the one-line messages our CLI and services show."""

from __future__ import annotations

from pydantic import ValidationError


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
