"""Hub fixtures: settings on the database matrix, the app with its lifespan, signed-in people."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session

from qualflow.accounts.tokens import issue_token
from qualflow.accounts.users import create_user
from qualflow.connections.clients import configure_clients
from qualflow.sandbox import SandboxState
from qualflow.sandbox import create_app as create_sandbox_app
from qualflow.settings import Settings
from qualflow.store.runtime import Store, open_store
from qualflow.web.app import create_app
from tests.hub.hub_support import MakePerson, Person


@pytest.fixture
def settings(migrated_database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=migrated_database_url,
        secret_keys=[SecretStr(Fernet.generate_key().decode())],
        auto_migrate=True,
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings, run_migrations=True)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def db(store: Store) -> Iterator[Session]:
    session = store.sessionmaker()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine="off")) as test_client:
        yield test_client


@pytest.fixture
def make_person(request: pytest.FixtureRequest) -> MakePerson:
    """Create a person directly in the app's database and give them a personal token."""
    counter = iter(range(1, 1000))

    def make(role: str = "admin", *, email: str | None = None, password: bool = False) -> Person:
        # Works with whichever app the test uses: the plain one or the sandbox-backed one.
        app_client = request.getfixturevalue("hub" if "hub" in request.fixturenames else "client")
        store: Store = app_client.app.state.store
        address = email or f"{role}{next(counter)}@example.org"
        # Hashing with argon2 costs a fifth of a second: only for tests that sign in.
        secret = f"correct horse {address}" if password else None
        with store.sessionmaker() as session:
            user = create_user(
                session, email=address, name=role.title(), role=role, password=secret
            )
            _token, raw = issue_token(session, user, "tests")
            session.commit()
            return Person(id=user.id, email=address, password=secret or "", token=raw)

    return make


@pytest.fixture
def admin(make_person: MakePerson) -> Person:
    return make_person("admin")


@dataclass
class Sandbox:
    """A Qualtrics sandbox served in-process: its state, and the transport clients use."""

    state: SandboxState
    transport: httpx.ASGITransport
    admin_user_id: str
    admin_token: str
    base_url: str = "http://sandbox.qualflow.test"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    state = SandboxState()
    admin, token = state.create_user(
        "brand.admin@example.org", first_name="Brand", last_name="Admin"
    )
    transport = httpx.ASGITransport(app=create_sandbox_app(state))
    try:
        yield Sandbox(state, transport, admin.id, token)
    finally:
        configure_clients(transport=None)


@pytest.fixture
def hub(settings: Settings, sandbox: Sandbox) -> Iterator[TestClient]:
    """The hub app whose Qualtrics calls go to the in-process sandbox."""
    app = create_app(settings, qualtrics_transport=sandbox.transport, engine="off")
    with TestClient(app) as test_client:
        yield test_client
