"""An opened store: the engine, its sessionmaker and the secret box, from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from qualflow.settings import Settings
from qualflow.store.base import Base
from qualflow.store.db import make_engine, make_sessionmaker
from qualflow.store.migrate import migrate
from qualflow.store.models_registry import load_all
from qualflow.store.secrets import (
    SecretBox,
    SecretDecryptionError,
    SecretKeyError,
    attach_secret_box,
    secret_box_for,
    stored_ciphertext_samples,
)

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
    try:
        if settings.should_auto_migrate if run_migrations is None else run_migrations:
            migrate(settings.database_url, engine=engine)
        _refuse_keys_that_open_nothing(engine, box, settings)
    except BaseException:
        engine.dispose()
        raise
    return Store(settings, engine, make_sessionmaker(engine), box)


def _refuse_keys_that_open_nothing(engine: Engine, box: SecretBox, settings: Settings) -> None:
    """Keys that decrypt none of the stored secrets are the wrong keys (changed or replaced):
    said once, here, rather than as an internal error wherever a secret is read. A secret or
    two made with a dropped key still lets the hub start, to be re-entered."""
    load_all()
    with engine.connect() as connection:
        samples = stored_ciphertext_samples(connection, Base.metadata)
    if not samples or any(_opens(box, sample) for sample in samples):
        return
    source = "QUALFLOW_SECRET_KEYS" if settings.secret_keys else str(settings.secret_keys_file)
    raise SecretKeyError(
        f"the keys in {source} cannot decrypt any stored secret (they are not the keys the "
        "secrets were saved with); restore those keys (a rotation keeps them behind the new one)"
    )


def _opens(box: SecretBox, ciphertext: str) -> bool:
    try:
        box.decrypt(ciphertext, secret=False)
    except SecretDecryptionError:
        return False
    return True
