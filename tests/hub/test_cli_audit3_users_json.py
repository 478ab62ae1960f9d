"""`qualflow users ls --json` names each person's fields as the REST API's GET /api/v1/users
does (``has_password``, ``created_at``, ``permissions``…), so one script reads both; the CLI's
earlier ``can_sign_in`` is kept for the scripts that read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from qualflow.cli import app
from qualflow.web.api.accounts import UserOut


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str | None]:
    return {"QUALFLOW_DATA_DIR": str(tmp_path / "data"), "QUALFLOW_DATABASE_URL": None}


def _run(env: dict[str, str | None], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def test_users_ls_json_has_the_api_fields(env: dict[str, str | None]) -> None:
    admin = _run(env, "users", "create", "--email", "ada@example.com", "--name", "Ada",
                 "--generate-password")  # fmt: skip
    assert admin.exit_code == 0, admin.output
    robot = _run(env, "users", "create", "--email", "bot@example.com", "--name", "Bot",
                 "--role", "viewer", "--no-password")  # fmt: skip
    assert robot.exit_code == 0, robot.output

    listed = _run(env, "users", "ls", "--json")
    assert listed.exit_code == 0, listed.output
    assert listed.stderr == ""
    ada, bot = json.loads(listed.stdout)
    for person in (ada, bot):
        assert set(UserOut.model_fields) <= set(person), sorted(person)
    assert (ada["has_password"], ada["can_sign_in"]) == (True, True)
    assert (bot["has_password"], bot["can_sign_in"]) == (False, False)
    assert bot["role"] == "viewer"
    assert isinstance(bot["permissions"], dict)
    assert bot["permissions"]
    assert ada["created_at"]
    assert ada["last_login_at"] is None
