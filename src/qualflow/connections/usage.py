"""What uses a connection: found from the schema, plus checks other packages register.

A connection may only be deleted when nothing uses it. Any table with a foreign key to
``connections.id`` (or a column named ``connection_id``) counts automatically, once its model is
in :mod:`qualflow.store.models_registry`; rows are described by their ``name`` column when they
have one. Bookkeeping tables (cached responses) do not count. Packages with other kinds of
references register a check::

    register_usage_check(lambda db, connection_id: ["watch rule 'NPS drop'", ...])
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, Table, inspect, select
from sqlalchemy.orm import Session

from qualflow.store.base import Base
from qualflow.store.models_registry import load_all

__all__ = ["UsageCheck", "connection_usages", "register_usage_check"]

UsageCheck = Callable[[Session, int], list[str]]

_checks: list[UsageCheck] = []
_MAX_LISTED = 20
#: Tables that remember a connection without using it: responses cached for runs are pruned
#: by age and nobody can delete them by hand, so they must not keep a connection alive; they
#: are deleted with it (SQLite may give its id to the next connection).
_BOOKKEEPING_TABLES = frozenset({"response_cache"})


def register_usage_check(check: UsageCheck) -> UsageCheck:
    """Add a check returning descriptions of what uses a connection (idempotent)."""
    if check not in _checks:
        _checks.append(check)
    return check


def _referencing_columns() -> list[tuple[Table, Column[object]]]:
    load_all()
    found = []
    for table in Base.metadata.sorted_tables:
        if table.name == "connections" or table.name in _BOOKKEEPING_TABLES:
            continue
        for column in table.columns:
            points_at_connections = any(
                fk.column.table.name == "connections" for fk in column.foreign_keys
            )
            if points_at_connections or column.name == "connection_id":
                found.append((table, column))
    return found


def _describe(table: Table) -> str:
    return table.name.removesuffix("s").replace("_", " ")


def connection_usages(db: Session, connection_id: int) -> list[str]:
    """Human-readable descriptions of everything that uses the connection (empty: unused)."""
    existing = set(inspect(db.connection()).get_table_names())
    usages: list[str] = []
    for table, column in _referencing_columns():
        if table.name not in existing:
            continue
        label = table.c.get("name")
        key = label if label is not None else next(iter(table.primary_key.columns))
        rows = db.execute(
            select(key).where(column == connection_id).order_by(key).limit(_MAX_LISTED)
        ).scalars()
        usages.extend(f"{_describe(table)} {value!r}" for value in rows)
    for check in _checks:
        usages.extend(check(db, connection_id))
    return usages


def forget_connection(db: Session, connection_id: int) -> None:
    """Delete what bookkeeping tables remember of a connection that is being deleted."""
    load_all()
    existing = set(inspect(db.connection()).get_table_names())
    for table in Base.metadata.sorted_tables:
        if table.name in _BOOKKEEPING_TABLES and table.name in existing:
            db.execute(table.delete().where(table.c.connection_id == connection_id))
