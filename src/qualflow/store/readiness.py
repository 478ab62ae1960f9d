"""Whether a process may start on its settings and their database, decided once for every
start: the CLI's commands, ``qualflow serve`` and ``worker``, and the web app's own factory and
lifespan (a server pointed at ``create_app``, e.g. ``uvicorn --factory``).

Bad ``QUALFLOW_*`` variables are named in one line, each by its environment variable.

A database at this release's revision is used; one behind it is migrated when
``QUALFLOW_AUTO_MIGRATE`` is on (the embedded SQLite default) and refused, saying to migrate,
when it is off; a newer release's, another application's or an unreachable one is refused. Each
refusal is one line: what was found and what to do.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from qualflow.settings import Settings
from qualflow.store.migrate import (
    SchemaRevisionError,
    check_migratable,
    current_revision,
    head_revision,
)
from qualflow.store.runtime import Store, open_store
from qualflow.store.secrets import SecretKeyError
from qualflow.validation import describe_errors, first_line

__all__ = [
    "DatabaseNotReady",
    "invalid_settings_reason",
    "open_ready_store",
    "refuse_unready_database",
]

_MIGRATE_FIRST = "run `qualflow migrate` first (or set QUALFLOW_AUTO_MIGRATE=true)"


class DatabaseNotReady(RuntimeError):
    """The settings' database cannot be used by this process; the message is one line."""


def invalid_settings_reason(exc: ValidationError) -> str:
    """Why the environment's settings were refused, on one line (no value is repeated)."""
    # Settings fields are flat: each is named by its environment variable.
    problems = describe_errors(exc, name_field=lambda field: f"QUALFLOW_{field.upper()}")
    return f"invalid settings: {problems}"


def open_ready_store(settings: Settings) -> Store:
    """The settings' store, migrated when auto-migrate is on, or :class:`DatabaseNotReady`."""
    refuse_unready_database(settings)
    try:
        return open_store(settings)
    except SchemaRevisionError as exc:
        raise DatabaseNotReady(str(exc)) from exc
    except (SecretKeyError, SQLAlchemyError, OSError) as exc:
        raise DatabaseNotReady(f"cannot open the database: {first_line(exc)}") from exc


def refuse_unready_database(settings: Settings) -> None:
    """Raise :class:`DatabaseNotReady` when the database is not migrated by this process
    (auto-migrate off) and is not at this release's revision, instead of failing later on a
    missing table. With auto-migrate on, migrating refuses a newer or foreign database itself."""
    if settings.should_auto_migrate:
        return
    url = settings.database_url
    database = make_url(url).database
    if settings.is_sqlite and database and database != ":memory:":
        path = Path(database)
        if not path.exists():
            # Connecting would create an empty file, then call it "at revision none".
            raise DatabaseNotReady(f"there is no database at {path}; run `qualflow migrate` first")
    try:
        at, head = current_revision(url), head_revision()
        if at == head:
            return
        # A newer or foreign database is named as such: `qualflow migrate` would refuse it too.
        check_migratable(url)
    except SchemaRevisionError as exc:
        raise DatabaseNotReady(str(exc)) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseNotReady(f"cannot open the database: {first_line(exc)}") from exc
    shown = make_url(url).render_as_string(hide_password=True)
    raise DatabaseNotReady(
        f"the database at {shown} is at revision {at or 'none'}, not {head}; {_MIGRATE_FIRST}"
    )
