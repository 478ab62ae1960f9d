"""SQLite never hands a deleted row's id to a new row of a table whose ids people and stored
JSON refer to (automation versions name ``connection_id``, audit records name actors, URLs and
API clients hold ids): without AUTOINCREMENT it reuses max(rowid) + 1 after the newest row is
deleted, so an old reference would silently name someone else's row."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Engine,
    MetaData,
    Table,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy import types as sa_types
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from qualflow.store.base import Base
from qualflow.store.db import make_engine
from qualflow.store.migrate import head_revision, migrate, schema_diff
from qualflow.store.models_registry import load_all
from tests.hub.sample_rows import allowed_choices, sample_value

load_all()

#: The tables whose ids are referenced outside an enforced foreign key or shown to people.
NEVER_REUSED = (
    "users",
    "api_tokens",
    "connections",
    "automations",
    "inbound_events",
    "email_outbox",
    "tango_accounts",
    "gift_code_pools",
    "incentives",
    "rewards",
    "gift_codes",
    "platform_api_keys",
)

#: Samples a check constraint wants in a state of their own: deactivated keys hold no slot,
#: so that any number of them share one platform.
_STATE_BY_CHECK = {"platform_api_keys": {"active_slot": None}}


def _row(table: Table, parents: dict[str, int], number: int) -> dict[str, Any]:
    """Row ``number`` of ``table``: unique columns differ between numbers, foreign keys point
    at the parent sample rows (nullable ones stay empty, so that two rows never share a
    one-to-one parent), checked columns take an allowed value."""
    choices = allowed_choices(table, _STATE_BY_CHECK.get(table.name, {}))
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.primary_key and isinstance(column.type, sa_types.Integer):
            continue
        foreign = next(iter(column.foreign_keys), None)
        if foreign is not None:
            parent = foreign.column.table.name
            row[column.name] = None if column.nullable else parents[parent]
        elif column.name in choices:
            row[column.name] = choices[column.name]
        else:
            row[column.name] = sample_value(
                table,
                column,
                text=f"{number}.{table.name}.{column.name}",
                document={"row": number},
            )
    return row


def _insert(connection: Connection, table: Table, row: dict[str, Any]) -> int:
    result = connection.execute(table.insert().values(row).returning(table.c.id))
    return int(result.scalar_one())


def _reflect(connection: Connection) -> MetaData:
    reflected = MetaData()
    reflected.reflect(connection)
    return reflected


def _parent_rows(connection: Connection, reflected: MetaData) -> dict[str, int]:
    """One sample row in every table with an integer id, parents first; their ids by table."""
    parents: dict[str, int] = {}
    for table in reflected.sorted_tables:
        if "id" in table.c and isinstance(table.c.id.type, sa_types.Integer):
            parents[table.name] = _insert(connection, table, _row(table, parents, 0))
    return parents


def _id_after_deleting_the_newest(
    connection: Connection, table: Table, parents: dict[str, int], first: int = 1
) -> tuple[int, int]:
    """Insert two rows (numbers ``first`` and ``first + 1``), delete the newer, insert
    another: (the deleted id, the new id)."""
    _insert(connection, table, _row(table, parents, first))
    newer = _insert(connection, table, _row(table, parents, first + 1))
    connection.execute(table.delete().where(table.c.id == newer))
    return newer, _insert(connection, table, _row(table, parents, first + 1))


def _sqlite_engine(url: str) -> Engine:
    # The hub's own engine: foreign keys enforced, as in production.
    return make_engine(url, poolclass=NullPool)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def migrated_sqlite(sqlite_url: str) -> Iterator[Engine]:
    migrate(sqlite_url)
    engine = _sqlite_engine(sqlite_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.mark.parametrize("table_name", NEVER_REUSED)
def test_a_new_row_never_gets_the_id_of_a_deleted_one(
    migrated_sqlite: Engine, table_name: str
) -> None:
    with migrated_sqlite.begin() as connection:
        reflected = _reflect(connection)
        parents = _parent_rows(connection, reflected)
        deleted, new = _id_after_deleting_the_newest(
            connection, reflected.tables[table_name], parents
        )
    assert new > deleted, f"{table_name} gave the deleted id {deleted} to a new row"


def test_the_models_declare_every_such_table_and_a_fresh_database_has_them(
    migrated_sqlite: Engine,
) -> None:
    """The models (metadata.create_all) and the migrated schema agree on which tables never
    reuse ids; autogenerate does not compare this, so it is checked here."""
    declared = {
        name
        for name, table in Base.metadata.tables.items()
        if table.dialect_options["sqlite"]["autoincrement"]
    }
    assert declared == set(NEVER_REUSED)
    with migrated_sqlite.connect() as connection:
        created = {
            name
            for name, sql in connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
            )
            if "AUTOINCREMENT" in sql
        }
    assert created == set(NEVER_REUSED)


# --- upgrading an existing 0008 database ------------------------------------------------------


def _snapshot(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary key order, as stored."""
    reflected = _reflect(connection)
    return {
        table.name: [
            tuple(row)
            for row in connection.execute(select(table).order_by(*table.primary_key.columns)).all()
        ]
        for table in reflected.sorted_tables
    }


def _schema(connection: Connection) -> dict[tuple[str, str], str]:
    """The schema as SQLite stores it; for tables, without what 0009 is meant to change."""
    schema: dict[tuple[str, str], str] = {}
    for kind, name, sql in connection.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ):
        schema[(kind, name)] = _normalized(sql)
    return schema


def _normalized(sql: str | None) -> str:
    if sql is None:
        return ""
    sql = re.sub(r"\s+", " ", sql)
    # AUTOINCREMENT makes the id an inline "PRIMARY KEY AUTOINCREMENT" instead of a named
    # table constraint: the same key.
    sql = re.sub(r"id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT", "id INTEGER NOT NULL", sql)
    sql = re.sub(r", CONSTRAINT pk_\w+ PRIMARY KEY \(id\)", "", sql)
    sql = re.sub(r'"(\w+)"', r"\1", sql)
    sql = sql.replace("( ", "(").replace(" )", ")").strip()
    # A recreated table lists its named constraints in another order: the same constraints.
    columns, *constraints = sql.split(", CONSTRAINT ")
    if constraints:
        constraints[-1] = constraints[-1].removesuffix(")")
        sql = columns + "".join(sorted(f", CONSTRAINT {c}" for c in constraints)) + ")"
    return sql


def test_upgrading_a_0008_sqlite_database_keeps_every_row_and_stops_reusing_ids(
    sqlite_url: str,
) -> None:
    migrate(sqlite_url, "0008")
    engine = _sqlite_engine(sqlite_url)
    try:
        with engine.begin() as connection:
            reflected = _reflect(connection)
            parents = _parent_rows(connection, reflected)
            # A deleted newest row before the upgrade, so the copy's ids have a gap at the top
            # of some tables and not others.
            for name in ("connections", "users", "incentives"):
                table = reflected.tables[name]
                _insert(connection, table, _row(table, parents, 1))
                newest = _insert(connection, table, _row(table, parents, 2))
                connection.execute(table.delete().where(table.c.id == newest))
            before_rows = _snapshot(connection)
            before_schema = _schema(connection)
            counts = {name: len(rows) for name, rows in before_rows.items()}
            assert counts["users"] == 2
            assert counts["rewards"] == 1

        migrate(sqlite_url)

        with engine.begin() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            after_rows = _snapshot(connection)
            after_schema = _schema(connection)
            sequence = dict(
                connection.exec_driver_sql("SELECT name, seq FROM sqlite_sequence").all()
            )
        assert {name: len(rows) for name, rows in after_rows.items()} == {
            **counts,
            "alembic_version": 1,
        }
        assert {k: v for k, v in after_rows.items() if k != "alembic_version"} == {
            k: v for k, v in before_rows.items() if k != "alembic_version"
        }
        assert after_rows["alembic_version"] == [(head_revision(),)]
        # Every index (partial ones with their WHERE), unique and check constraint and foreign
        # key is as it was.
        assert after_schema == before_schema
        for name in NEVER_REUSED:
            assert sequence.get(name, 0) == max((row[0] for row in after_rows[name]), default=0), (
                name
            )

        with engine.begin() as connection:
            reflected = _reflect(connection)
            for name in NEVER_REUSED:
                table = reflected.tables[name]
                highest = connection.execute(select(func.max(table.c.id))).scalar_one()
                deleted, new = _id_after_deleting_the_newest(connection, table, parents, 3)
                assert deleted > highest, name
                assert new > deleted, name
        with pytest.raises(IntegrityError), engine.begin() as connection:
            # Foreign keys are still enforced on the recreated tables.
            connection.execute(text("UPDATE connections SET owner_id = 999999"))
    finally:
        engine.dispose()
    assert schema_diff(sqlite_url) == []


def test_a_fresh_sqlite_database_from_the_models_never_reuses_ids(tmp_path: Path) -> None:
    """metadata.create_all (what the models alone declare) gives the same guarantee."""
    engine = create_engine(f"sqlite:///{tmp_path / 'models.db'}")
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as connection:
            reflected = _reflect(connection)
            parents = _parent_rows(connection, reflected)
            for name in ("connections", "users", "incentives", "automations"):
                deleted, new = _id_after_deleting_the_newest(
                    connection, reflected.tables[name], parents
                )
                assert new > deleted, name
    finally:
        engine.dispose()
