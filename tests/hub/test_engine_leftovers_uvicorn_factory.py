"""``uvicorn --factory qualflow.web.app:create_app`` (a deployment under its own process
manager) started on a database this release refuses: one error line saying what was found and
what to do, a non-zero exit, and no "startup failed" traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from qualflow.store.migrate import head_revision, migrate
from tests.hub.hub_support import refused_uvicorn_factory


def _errors(stderr: str) -> list[str]:
    """The error lines uvicorn printed, but its own closing 'Application startup failed'."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith("ERROR") and "Application startup failed" not in line
    ]


def _ahead(path: Path) -> str:
    url = f"sqlite:///{path}"
    migrate(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    return url


def _foreign(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE customers (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    return url


def _never_migrated(path: Path) -> str:
    url = f"sqlite:///{path}"
    create_engine(url).connect().close()
    return url


@pytest.mark.parametrize(
    ("make", "auto_migrate", "says"),
    [
        (_ahead, True, "at revision 0099, which this qualflow does not know"),
        (_ahead, False, "a newer release migrated it; run that release"),
        (_foreign, True, "holds tables (customers) but no qualflow revision"),
        (_foreign, False, "it is not a qualflow database"),
        (_never_migrated, False, f"is at revision none, not {head_revision()}; run `qualflow"),
    ],
)
def test_a_refused_database_is_one_line_and_a_failed_exit(
    tmp_path: Path, make: Callable[[Path], str], auto_migrate: bool, says: str
) -> None:
    url = make(tmp_path / "hub.db")

    code, stderr = refused_uvicorn_factory(
        tmp_path,
        {
            "QUALFLOW_DATABASE_URL": url,
            "QUALFLOW_AUTO_MIGRATE": "true" if auto_migrate else "false",
        },
    )

    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    errors = _errors(stderr)
    assert len(errors) == 1, stderr
    assert says in errors[0], stderr
