"""Helpers for tests and benchmarks of the engine (no fakes: real databases, real DBOS)."""

from __future__ import annotations

from qualflow.store.base import Base
from qualflow.store.db import make_engine


def create_schema(database_url: str) -> None:
    """Bring the database to the newest schema with the Alembic migrations (idempotent)."""
    from qualflow.store.migrate import migrate

    migrate(database_url)


def reset_schema(database_url: str) -> None:
    """Empty every qualflow table and DBOS's system tables (PostgreSQL test isolation)."""
    from sqlalchemy import inspect, text

    from qualflow.engine.config import system_database_url_for

    create_schema(database_url)
    engine = make_engine(database_url)
    try:
        present = set(inspect(engine).get_table_names()) - {"alembic_version"}
        tables = [t.name for t in Base.metadata.sorted_tables if t.name in present]
        with engine.begin() as conn:
            if tables:
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            has_dbos = conn.execute(
                text("SELECT 1 FROM information_schema.schemata WHERE schema_name = 'dbos'")
            ).first()
    finally:
        engine.dispose()
    if has_dbos:
        from dbos import DBOS

        DBOS.reset_system_database(
            system_database_url=system_database_url_for(database_url), truncate=True, schema="dbos"
        )
