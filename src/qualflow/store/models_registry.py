"""Every module that defines tables on :class:`qualflow.store.Base`, imported in one place.

Migrations and the schema check need the complete metadata. A feature package that adds tables
adds one line to ``MODEL_MODULES`` (keep the order of the revision chain).
"""

from __future__ import annotations

import importlib

MODEL_MODULES: tuple[str, ...] = (
    "qualflow.accounts.models",
    "qualflow.connections.models",
    "qualflow.engine.models",
    "qualflow.incentives.models",
    "qualflow.connections.budget",
)


def load_all() -> None:
    """Import every registered model module (idempotent)."""
    for module in MODEL_MODULES:
        importlib.import_module(module)
