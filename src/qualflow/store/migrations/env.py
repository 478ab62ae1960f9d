"""Alembic environment: runs the packaged history against the configured database."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from qualflow.store.db import make_engine
from qualflow.store.migrate import migration_transaction
from qualflow.store.migrations.env_support import compare_options

# Serialises concurrent `qualflow migrate` / web starts against one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x7175616C666C6F77  # "qualflow"


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **compare_options(connection))
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL configured for migrations")
    engine = make_engine(url, poolclass=NullPool)
    try:
        # The `alembic` command: the same guarded transaction as `qualflow migrate`.
        with engine.connect() as connection, migration_transaction(connection, url):
            _run(connection)
    finally:
        engine.dispose()


def run_offline() -> None:
    from qualflow.store import models_registry
    from qualflow.store.base import Base

    models_registry.load_all()
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
