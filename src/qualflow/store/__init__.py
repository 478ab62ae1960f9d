"""The store: declarative base, engine/session setup, migrations and encrypted secrets."""

from qualflow.store.base import Base, UTCDateTime, utcnow
from qualflow.store.db import make_engine, make_sessionmaker, session_scope
from qualflow.store.migrate import migrate

__all__ = [
    "Base",
    "UTCDateTime",
    "make_engine",
    "make_sessionmaker",
    "migrate",
    "session_scope",
    "utcnow",
]
