"""Schema migrations: one Alembic history shipped inside the package, on SQLite and PostgreSQL.

Revision ids are fixed slots so parallel work never forks the history: ``0001`` store, accounts
and connections; ``0002`` engine; ``0003`` incentives; later features continue the chain.
Write a new revision from the models with :func:`autogenerate_revision`, then review it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from qualflow.store.db import make_engine, normalize_url

__all__ = [
    "MIGRATIONS_DIR",
    "SchemaRevisionError",
    "alembic_config",
    "autogenerate_revision",
    "check_migratable",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrate",
    "migration_transaction",
    "schema_diff",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: Our revision ids are fixed four-digit slots (see the module's docstring).
_QUALFLOW_REVISION = re.compile(r"\d{4}")


class SchemaRevisionError(SQLAlchemyError):
    """The database cannot be migrated by this qualflow: its revision is newer than any this
    release ships (the software was rolled back), or it holds tables but is not qualflow's.

    A :class:`~sqlalchemy.exc.SQLAlchemyError`, so every start that reports database errors
    in one line (``qualflow migrate``, serve, worker, the other commands) reports this too."""


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def _engine_for(url: str) -> Engine:
    return make_engine(url, poolclass=NullPool)


def migrate(url: str, revision: str = "head", *, engine: Engine | None = None) -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the newest)."""
    owned = engine is None
    engine = engine or _engine_for(url)
    try:
        with engine.connect() as connection:
            # Every start of a process that migrates by itself comes here: a database already at
            # the newest revision is left alone without taking the migration lock (SQLite's
            # write lock would make each start wait for whatever another process is writing).
            if revision == "head" and _current(connection) == head_revision():
                return
            _upgrade_or_downgrade(connection, url, revision, command.upgrade)
    finally:
        if owned:
            engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"`` removes every table)."""
    engine = _engine_for(url)
    try:
        with engine.connect() as connection:
            _upgrade_or_downgrade(connection, url, revision, command.downgrade)
    finally:
        engine.dispose()


def _upgrade_or_downgrade(
    connection: Connection, url: str, revision: str, step: Callable[[Config, str], None]
) -> None:
    with migration_transaction(connection, url):
        config = alembic_config(url)
        config.attributes["connection"] = connection
        step(config, revision)


@contextmanager
def migration_transaction(connection: Connection, url: str) -> Iterator[None]:
    """The transaction every upgrade and downgrade runs in, from ``qualflow migrate``, a
    process's start or the ``alembic`` command (see ``migrations/env.py``).

    It refuses a database this release cannot migrate (:class:`SchemaRevisionError`). On
    SQLite it holds the file's write lock from the start, so the whole run is atomic and another
    process migrating the same file waits (busy timeout), then finds the schema current;
    PostgreSQL's equivalent is env.py's advisory lock.
    """
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite batch mode recreates tables; enforcing foreign keys meanwhile would cascade
        # deletes into child rows. The pragma is a no-op inside a transaction, hence first.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():
            if sqlite:
                # pysqlite would run DDL outside any transaction.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            _refuse_foreign_schema(connection, url)
            yield
    finally:
        if sqlite:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def _refuse_foreign_schema(connection: Connection, url: str) -> None:
    """Refuse, naming what was found, a database this release cannot migrate: one at a revision
    it does not ship (a newer release's, after rolling the software back), or one holding
    tables without a qualflow revision (another application's database)."""
    from qualflow.store.migrations.env_support import foreign_table

    shown = make_url(normalize_url(url)).render_as_string(hide_password=True)
    at = MigrationContext.configure(connection).get_current_revision()
    known = known_revisions()
    if at in known:
        return
    if at is None:
        tables = sorted(n for n in inspect(connection).get_table_names() if not foreign_table(n))
        if not tables:
            return
        listed = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
        what = f"holds tables ({listed}) but no qualflow revision"
    elif _QUALFLOW_REVISION.fullmatch(at):
        raise SchemaRevisionError(
            f"the database at {shown} is at revision {at}, which this qualflow does not know "
            f"(its newest is {known[-1]}): a newer release migrated it; run that release, or "
            "restore a backup taken before the upgrade"
        )
    else:
        what = f"is at revision {at} of another application's schema"
    raise SchemaRevisionError(
        f"the database at {shown} {what}: it is not a qualflow database; point "
        "QUALFLOW_DATABASE_URL at an empty database or at qualflow's own"
    )


def check_migratable(url: str) -> None:
    """Raise :class:`SchemaRevisionError` when this release cannot migrate the database at
    ``url`` (a newer release's revision, or another application's tables); for commands that
    do not migrate by themselves, which would otherwise advise running ``qualflow migrate``."""
    engine = _engine_for(url)
    try:
        with engine.connect() as connection:
            _refuse_foreign_schema(connection, url)
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision shipped with this version of qualflow."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def known_revisions() -> list[str]:
    """Every revision shipped with this version of qualflow, oldest first."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None when it was never migrated)."""
    engine = _engine_for(url)
    try:
        with engine.connect() as connection:
            return _current(connection)
    finally:
        engine.dispose()


def _current(connection: Connection) -> str | None:
    revision = MigrationContext.configure(connection).get_current_revision()
    # The read began a transaction; end it, so what follows on this connection starts afresh.
    connection.rollback()
    return revision


def schema_diff(url: str) -> list[Any]:
    """What autogenerate would change to make the database at ``url`` match the models.

    Empty when the migrations and the models agree. Every registered model module is imported
    first (:mod:`qualflow.store.models_registry`).
    """
    from qualflow.store.base import Base
    from qualflow.store.migrations.env_support import compare_options

    engine = _engine_for(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=compare_options(connection))
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def autogenerate_revision(url: str, *, rev_id: str, message: str) -> Path:
    """Write a new revision file from the difference between ``url``'s schema and the models.

    For developers: migrate a scratch database to head first, then call this with the slot id
    agreed for your package (e.g. ``"0002"``). Returns the path of the file to review.
    """
    config = alembic_config(url)
    engine = _engine_for(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            script = command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
    finally:
        engine.dispose()
    if script is None or isinstance(script, list):
        raise RuntimeError("alembic did not produce exactly one revision")
    return Path(script.path)
