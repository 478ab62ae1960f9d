"""Portable INSERT-or-ignore and upsert for SQLite and PostgreSQL (both support ON CONFLICT)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_insert(session: Session | Connection, table: Table | Any) -> Any:
    """The INSERT of the session's dialect (PostgreSQL or SQLite), which has ON CONFLICT."""
    dialect = (
        session.get_bind().dialect.name if isinstance(session, Session) else session.dialect.name
    )
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def insert_ignoring_duplicates(
    session: Session | Connection, table: Table, rows: list[dict[str, Any]]
) -> None:
    """INSERT rows, silently skipping those whose primary key exists."""
    if rows:
        session.execute(dialect_insert(session, table).on_conflict_do_nothing(), rows)


def upsert(
    session: Session | Connection, table: Table, values: dict[str, Any], *, keys: Sequence[str]
) -> None:
    """INSERT one row, or UPDATE the existing row with the same ``keys``."""
    statement = dialect_insert(session, table).values(**values)
    updates = {k: statement.excluded[k] for k in values if k not in keys}
    session.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=updates))
