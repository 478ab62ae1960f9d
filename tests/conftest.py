"""Fixtures shared by every test package. Keep additions additive: others build on these."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = "postgresql://127.0.0.1:5432/test"

# pytest-xdist's workers start with COLUMNS=80 and LINES=24; the CLI's consoles read COLUMNS
# once, when their module is imported, so a width a test asks for would be ignored and tables
# cut at 80 columns. Without them, a console sizes itself per call, as it does for a user.
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)

# Property tests draw the same examples on every run by default, so that a run on a fresh clone
# (CI) passes or fails for a reason, not for a draw; QUALFLOW_HYPOTHESIS=explore draws new ones
# (and remembers failures in .hypothesis/) when hunting for counterexamples.
hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(
    "explore" if os.environ.get("QUALFLOW_HYPOTHESIS") == "explore" else "repeatable"
)


def postgres_server_url() -> str:
    """The PostgreSQL the tests may create databases on (``QUALFLOW_TEST_PG_URL``)."""
    return os.environ.get("QUALFLOW_TEST_PG_URL", DEFAULT_PG_URL)


def _driver_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@contextmanager
def temporary_postgres_database(purpose: str, *, template: str | None = None) -> Iterator[str]:
    """Create a uniquely named database ``qf_<purpose>_<random>``; drop it afterwards.

    ``template`` copies an existing database (which must have no open connections).

    Yields its ``postgresql://`` URL. Skips the test when the server cannot be reached and
    ``QUALFLOW_TEST_PG_URL`` was not set explicitly (when it was set, failing to reach it fails).
    """
    server = postgres_server_url()
    name = f"qf_{purpose}_{uuid.uuid4().hex[:12]}".lower()
    admin = create_engine(_driver_url(server), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            copy = f' TEMPLATE "{template}"' if template else ""
            connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    except Exception as exc:
        admin.dispose()
        if "QUALFLOW_TEST_PG_URL" in os.environ:
            raise
        pytest.skip(f"PostgreSQL at {server} is not reachable: {exc.__class__.__name__}")
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, once as a SQLite file and once as a fresh PostgreSQL database.

    Test packages may override this fixture locally (e.g. to migrate it first).
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'qualflow-test.db'}"
        return
    with temporary_postgres_database("test") as url:
        yield url


@pytest.fixture(scope="session")
def _migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Databases migrated to head once per session (PostgreSQL's only when first needed)."""
    from qualflow.store.migrate import migrate

    sqlite_path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{sqlite_path}")
    with ExitStack() as stack:

        def make_postgres() -> str:
            url = stack.enter_context(temporary_postgres_database("template"))
            migrate(url)
            return url

        yield _LazyTemplates({"sqlite": str(sqlite_path)}, make_postgres)


class _LazyTemplates(dict[str, str]):
    def __init__(self, ready: dict[str, str], make_postgres: Callable[[], str]) -> None:
        super().__init__(ready)
        self._make_postgres = make_postgres

    def __missing__(self, key: str) -> str:
        if key != "postgres":
            raise KeyError(key)
        self[key] = self._make_postgres()
        return self[key]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, _migrated_templates: dict[str, str]
) -> Iterator[str]:
    """Like ``database_url`` but already migrated to head (copied from a per-session template,
    which is much faster than migrating every test's database)."""
    if request.param == "sqlite":
        path = tmp_path / "qualflow-test.db"
        shutil.copyfile(_migrated_templates["sqlite"], path)
        yield f"sqlite:///{path}"
        return
    template = make_url(_migrated_templates["postgres"]).database
    with temporary_postgres_database("test", template=template) as url:
        yield url
