"""An opened store: the engine, its sessionmaker and the secret box, from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from qualflow.settings import Settings
from qualflow.store.db import make_engine, make_sessionmaker
from qualflow.store.migrate import migrate
from qualflow.store.secrets import SecretBox, attach_secret_box, secret_box_for

log = logging.getLogger(__name__)


@dataclass
class Store:
    """What a process needs to use the database: open once, share everywhere, close at exit."""

    settings: Settings
    engine: Engine
    sessionmaker: sessionmaker[Session]
    secret_box: SecretBox

    def close(self) -> None:
        self.engine.dispose()


def open_store(
    settings: Settings, *, run_migrations: bool | None = None, box: SecretBox | None = None
) -> Store:
    """Open the database the settings point at, attach the secret box, optionally migrate.

    ``run_migrations`` defaults to ``settings.should_auto_migrate`` (on for the embedded SQLite
    default). The data dir is created when the database lives in it.
    """
    if settings.is_sqlite or not settings.secret_keys:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not settings.is_sqlite and not settings.secret_keys and box is None:
        log.warning(
            "QUALFLOW_SECRET_KEYS is not set: using %s; every process sharing this database "
            "needs the same keys, so set QUALFLOW_SECRET_KEYS explicitly",
            settings.secret_keys_file,
        )
    box = box or secret_box_for(settings)
    engine = make_engine(settings.database_url)
    attach_secret_box(engine, box)
    if settings.should_auto_migrate if run_migrations is None else run_migrations:
        migrate(settings.database_url, engine=engine)
    return Store(settings, engine, make_sessionmaker(engine), box)
