"""Options shared by the Alembic environment and the schema-diff check."""

from __future__ import annotations

from typing import Any

from sqlalchemy import types
from sqlalchemy.engine import Connection

# DBOS keeps its system tables beside ours on SQLite; they are not part of our history.
_FOREIGN_TABLE_PREFIXES = ("dbos", "alembic_version")
_FOREIGN_SCHEMAS = ("dbos",)


def foreign_table(name: str) -> bool:
    """Whether a table of the database is someone else's (DBOS's, Alembic's own)."""
    return name.startswith(_FOREIGN_TABLE_PREFIXES)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if type_ == "table" and reflected and compare_to is None:
        schema = getattr(obj, "schema", None)
        if schema in _FOREIGN_SCHEMAS:
            return False
        if name and foreign_table(name):
            return False
    return True


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our TypeDecorators as their plain implementation type.

    Migrations must not import model code: the column types of today's models may not exist
    tomorrow, while the migration has to keep working.
    """
    if type_ == "type" and isinstance(obj, types.TypeDecorator):
        impl = obj.impl_instance if hasattr(obj, "impl_instance") else obj.impl
        return f"sa.{impl!r}"
    return False


def compare_options(connection: Connection) -> dict[str, Any]:
    from qualflow.store import models_registry
    from qualflow.store.base import Base

    models_registry.load_all()
    return {
        "target_metadata": Base.metadata,
        "compare_type": True,
        "compare_server_default": False,
        "include_object": include_object,
        "render_item": render_item,
        "render_as_batch": connection.dialect.name == "sqlite",
    }
