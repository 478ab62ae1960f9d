"""Incentive fixtures: a migrated database (SQLite file, or a PostgreSQL database of this test
session emptied before each test) and an open store with a secret box attached."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from pydantic import SecretStr

from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.tokens import issue_token
from qualflow.accounts.users import create_user, set_overrides
from qualflow.engine.testing import create_schema, reset_schema
from qualflow.incentives import throttle
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.providers import ProviderContext, tango_client
from qualflow.incentives.providers.tango import clear_caches
from qualflow.incentives.runtime import configure_incentives
from qualflow.incentives.service import RewardService
from qualflow.notify.email import SmtpSettings
from qualflow.settings import Settings
from qualflow.store.db import make_engine, make_sessionmaker
from qualflow.store.secrets import SecretBox, attach_secret_box
from qualflow.web.app import create_app
from tests.conftest import temporary_postgres_database
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import Db, Person, QuietSmtpSink, Tango, sandbox_with_tango


@pytest.fixture(scope="session")
def incentives_pg_database() -> Iterator[str]:
    with temporary_postgres_database("incentives") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'qualflow.db'}"
        create_schema(url)
        return url
    url = str(request.getfixturevalue("incentives_pg_database"))
    reset_schema(url)
    return url


@pytest.fixture
def secret_box() -> SecretBox:
    return SecretBox([SecretBox.generate_key()])


@pytest.fixture
def db(database_url: str, secret_box: SecretBox) -> Iterator[Db]:
    engine = make_engine(database_url)
    attach_secret_box(engine, secret_box)
    try:
        yield Db(url=database_url, engine=engine, sessionmaker=make_sessionmaker(engine))
    finally:
        engine.dispose()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = QuietSmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp(smtp_sink: SmtpSink) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=smtp_sink.port, sender="rewards@example.org")


@pytest.fixture
def tango() -> Tango:
    clear_caches()
    return sandbox_with_tango()


@pytest.fixture
def providers(db: Db, tango: Tango) -> ProviderContext:
    return ProviderContext(
        sessionmaker=db.sessionmaker,
        tango_transport=tango.transport,
        tango_interval=0.0,
        tango_backoff=0.0,
    )


@pytest.fixture
def service(db: Db, providers: ProviderContext, smtp: SmtpSettings) -> RewardService:
    return RewardService(db.sessionmaker, providers=providers, smtp=smtp)


@pytest.fixture
def manager(db: Db, providers: ProviderContext) -> IncentiveManager:
    return IncentiveManager(db.sessionmaker, providers)


@pytest.fixture
def hub_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_keys=[SecretStr(Fernet.generate_key().decode())],
        auto_migrate=True,
    )


@pytest.fixture
def hub(hub_settings: Settings, tango: Tango, smtp: SmtpSettings) -> Iterator[TestClient]:
    """The hub app with incentives, Tango on the sandbox in-process, email to aiosmtpd."""
    app = create_app(hub_settings, engine="off")
    configure_incentives(
        app, tango_transport=tango.transport, tango_interval=0.0, smtp=smtp,
        fulfiller_interval=0.1, alert_check_interval=0,  # tests check the alerts themselves
    )  # fmt: skip
    with TestClient(app) as client:
        yield client


@pytest.fixture
def make_person(hub: TestClient) -> Callable[..., Person]:
    counter = iter(range(1, 1000))

    def make(role: str = "admin", **overrides: str) -> Person:
        store = hub.app.state.store  # type: ignore[attr-defined]
        address = f"{role}{next(counter)}@example.org"
        password = f"correct horse {address}"
        with store.sessionmaker() as session:
            user = create_user(
                session, email=address, name=role.title(), role=role, password=password
            )
            if overrides:
                set_overrides(
                    session, user, {Area(k): Level.parse(v) for k, v in overrides.items()}
                )
            _token, raw = issue_token(session, user, "tests")
            session.commit()
        return Person(address, raw, password)

    return make


@pytest.fixture
def admin(make_person: Callable[..., Person]) -> Person:
    return make_person("admin")


class _SleepsRecorded:
    """``asyncio`` as one module sees it, except that ``sleep`` records its delay and returns
    at once: patched into that module only, so nothing else in the process (another test's
    background loop) stops sleeping or adds its waits to the record."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.waits.append(delay)
        await asyncio.sleep(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


@pytest.fixture
def no_client_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the Tango client and the shared Tango request limit ask for, recorded instead
    of slept."""
    recorded = _SleepsRecorded()
    monkeypatch.setattr(tango_client, "asyncio", recorded)
    monkeypatch.setattr(throttle, "asyncio", recorded)
    return recorded.waits
