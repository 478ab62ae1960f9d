"""Fixtures for the Qualtrics budget: a migrated PostgreSQL database, its engine, a sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from qualflow.sandbox import SandboxState
from qualflow.sandbox import create_app as create_sandbox_app
from qualflow.store.db import make_engine
from tests.conftest import temporary_postgres_database


@pytest.fixture
def postgres_url(_migrated_templates: dict[str, str]) -> Iterator[str]:
    """A PostgreSQL database migrated to head (budgets are only shared on PostgreSQL)."""
    template = make_url(_migrated_templates["postgres"]).database
    with temporary_postgres_database("budget", template=template) as url:
        yield url


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sandbox_state() -> SandboxState:
    return SandboxState()


@pytest.fixture
def sandbox_transport(sandbox_state: SandboxState) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_sandbox_app(sandbox_state))
