"""Fixtures for engine tests: a fresh database and a started engine per test."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from qualflow.engine.config import EngineConfig
from qualflow.engine.runs import RunDetail, Runs
from qualflow.engine.runtime import Engine
from qualflow.engine.testing import create_schema, reset_schema
from qualflow.store.db import make_engine, normalize_url
from qualflow.store.secrets import SecretBox
from tests.engine.engine_support import CALLS, FAILURES, GATES, SmtpSink

FINAL = ("succeeded", "failed", "cancelled", "skipped")


@pytest.fixture(scope="session")
def engine_pg_database() -> Iterator[str]:
    """A PostgreSQL database of our own for this test session, dropped at the end."""
    base = os.environ.get("QUALFLOW_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
    name = f"qf_engine_{secrets.token_hex(4)}"
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(normalize_url(base)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'qualflow.db'}"
        create_schema(url)
        return url
    url = str(request.getfixturevalue("engine_pg_database"))
    reset_schema(url)
    return url


@pytest.fixture
def engine_config(database_url: str) -> EngineConfig:
    return EngineConfig(
        database_url=database_url,
        executor_id="test-executor",
        retry_initial_delay=0.01,
        retry_max_delay=0.05,
        step_max_attempts=4,
        scheduler_polling_interval=0.2,
    )


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def engine_extras() -> dict[str, object]:
    return {}


@pytest.fixture
def engine(engine_config: EngineConfig, engine_extras: dict[str, object]) -> Iterator[Engine]:
    eng = Engine(
        engine_config, extras=engine_extras, secret_box=SecretBox([SecretBox.generate_key()])
    )
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()


@pytest.fixture
def wait_run(engine: Engine) -> Callable[..., RunDetail]:
    runs = Runs(engine.services)

    def wait(run_id: str, statuses: tuple[str, ...] = FINAL, limit: float = 60.0) -> RunDetail:
        # A generous safety net against hangs, not a timing assertion.
        deadline = time.monotonic() + limit
        while True:
            try:
                detail = runs.get(run_id)
            except Exception:
                detail = None
            if detail is not None and detail.status in statuses:
                return detail
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} did not reach {statuses}: {detail}")
            time.sleep(0.02)

    return wait


@pytest.fixture(autouse=True)
def _reset_recorder() -> Iterator[None]:
    CALLS.clear()
    FAILURES.clear()
    GATES.clear()
    yield
    for gate in GATES.values():
        gate.set()
