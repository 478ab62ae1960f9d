"""UI fixtures: the hub app with its UI, people of each role, and a signed-in browser session.

HTTP-level page tests use Starlette's TestClient; the Playwright tests (marked ``browser``)
serve the same app on a loopback port and drive Debian's chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qualflow.accounts.passwords import hash_password
from qualflow.accounts.users import create_user
from qualflow.settings import Settings
from qualflow.store.runtime import open_store
from qualflow.web.app import create_app
from tests.browser.ui_support import PASSWORD, ROLES, email_of


@pytest.fixture
def ui_settings(tmp_path: Path, migrated_database_url: str) -> Settings:
    """The hub on SQLite, and again on PostgreSQL (``postgres`` mark)."""
    return Settings(
        data_dir=tmp_path / "hub",
        database_url=migrated_database_url,
        public_base_url="http://127.0.0.1:8000",
    )


@pytest.fixture(scope="session")
def password_hash() -> str:
    """:data:`PASSWORD` hashed once: argon2 is slow on purpose."""
    return hash_password(PASSWORD)


@pytest.fixture
def ui_people(ui_settings: Settings, password_hash: str) -> dict[str, str]:
    """One person per role, all with :data:`PASSWORD`; returns role → email."""
    store = open_store(ui_settings)
    try:
        with store.sessionmaker() as db:
            for role in ROLES:
                user = create_user(
                    db,
                    email=email_of(role),
                    name=f"{role.title()} Person",
                    role=role,
                    password=None,
                )
                user.password_hash = password_hash
            db.commit()
    finally:
        store.close()
    return {role: email_of(role) for role in ROLES}


@pytest.fixture
def ui_client(ui_settings: Settings, ui_people: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(ui_settings, engine="off")
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False) as client:
        yield client
