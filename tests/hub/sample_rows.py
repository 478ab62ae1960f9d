"""Sample values for any table's columns, for the migration tests that fill every table: an
allowed value for each checked column, and a value of each column's type."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, Table
from sqlalchemy import types as sa_types

from qualflow.store.base import Base

#: When every sample row's times are.
SAMPLE_AT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
_CHOICES = re.compile(r"(\w+) IN \('([^']*)'")


def allowed_choices(table: Table, preset: dict[str, Any]) -> dict[str, Any]:
    """``preset``, then for each column a check constraint limits to a list, its first value
    (read from the models' constraints, the ones the database has)."""
    choices = dict(preset)
    for constraint in Base.metadata.tables[table.name].constraints:
        if isinstance(constraint, CheckConstraint):
            for column, value in _CHOICES.findall(str(constraint.sqltext)):
                choices.setdefault(column, value)
    return choices


def sample_value(
    table: Table, column: Column[Any], *, text: str, document: Any, keep_end: bool = False
) -> Any:
    """A value of ``column``'s type: ``text`` for strings, cut to the column's length (its
    start, or its end with ``keep_end``), ``document`` for JSON."""
    kind = column.type
    if isinstance(kind, sa_types.Boolean):
        return True
    if isinstance(kind, sa_types.Integer | sa_types.Numeric):
        return 1
    if isinstance(kind, sa_types.DateTime):
        return SAMPLE_AT
    if isinstance(kind, sa_types.Date):
        return SAMPLE_AT.date()
    if isinstance(kind, sa_types.JSON):
        return document
    if isinstance(kind, sa_types.String):
        length = kind.length or 100
        return text[-length:] if keep_end else text[:length]
    raise AssertionError(f"no sample value for {table.name}.{column.name}")
