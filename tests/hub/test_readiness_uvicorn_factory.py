"""``uvicorn --factory qualflow.web.app:create_app`` given bad settings or no database: the same
one line ``qualflow serve`` prints, a non-zero exit, no traceback, and nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hub.hub_support import refused_uvicorn_factory


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (
            {"QUALFLOW_INBOUND_EVENTS_RETENTION_DAYS": "-1"},
            "error: invalid settings: QUALFLOW_INBOUND_EVENTS_RETENTION_DAYS",
        ),
        (
            {"QUALFLOW_DATABASE_URL": "mysql://nowhere/hub"},
            "error: invalid settings: QUALFLOW_DATABASE_URL",
        ),
    ],
)
def test_bad_settings_are_one_line_and_a_failed_exit(
    tmp_path: Path, settings: dict[str, str], says: str
) -> None:
    code, stderr = refused_uvicorn_factory(tmp_path, settings)

    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(says), stderr


def test_a_missing_sqlite_database_without_auto_migrate_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"

    code, stderr = refused_uvicorn_factory(
        tmp_path,
        {"QUALFLOW_DATABASE_URL": f"sqlite:///{path}", "QUALFLOW_AUTO_MIGRATE": "false"},
    )

    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    errors = [
        line
        for line in stderr.splitlines()
        if line.startswith("ERROR") and "Application startup failed" not in line
    ]
    assert len(errors) == 1, stderr
    assert f"there is no database at {path}; run `qualflow migrate` first" in errors[0], stderr
    assert not path.exists()
