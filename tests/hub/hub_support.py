"""Helpers shared by the hub tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from fastapi.testclient import TestClient

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Person:
    id: int
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakePerson = Callable[..., Person]


class CanSignIn(Protocol):
    @property
    def email(self) -> str: ...

    @property
    def password(self) -> str: ...


def sign_in(hub: TestClient, person: CanSignIn) -> str:
    """Sign ``person`` in through the form, as a browser does (anyone signed in before is
    signed out first); returns the CSRF token the browser's forms then carry."""
    hub.cookies.clear()
    page = hub.get("/sign-in")
    token = _CSRF.search(page.text)
    assert token, page.text[:300]
    answer = hub.post(
        "/sign-in",
        data={"email": person.email, "password": person.password, "next": "/",
              "csrf_token": token.group(1)},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303, answer.text
    return token.group(1)


def read_two_pages(client: TestClient, path: str, headers: dict[str, str], key: str) -> list[Any]:
    """The rows of ``path`` read as a page of 3 and the page after it; checks both envelopes
    (the page envelope every growing list of the REST API answers)."""
    separator = "&" if "?" in path else "?"
    first = client.get(f"{path}{separator}limit=3&offset=0", headers=headers)
    assert first.status_code == 200, first.text
    second = client.get(f"{path}{separator}limit=3&offset=3", headers=headers)
    assert second.status_code == 200, second.text
    for page, offset in ((first.json(), 0), (second.json(), 3)):
        assert isinstance(page, dict), page
        assert set(page) == {"items", "total", "limit", "offset"}, page
        assert (page["limit"], page["offset"]) == (3, offset)
    assert len(first.json()["items"]) == 3
    assert first.json()["total"] == second.json()["total"]
    rows = [row[key] for row in first.json()["items"] + second.json()["items"]]
    assert first.json()["total"] == len(rows)
    return rows


def assert_limit_out_of_range_refused(
    client: TestClient, path: str, headers: dict[str, str]
) -> None:
    for value in ("0", "501"):
        answer = client.get(f"{path}?limit={value}", headers=headers)
        assert answer.status_code == 422, (path, value, answer.text)
        error = answer.json()["error"]
        assert [d["field"] for d in error["details"]] == ["limit"], (path, value, error)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused_uvicorn_factory(tmp_path: Path, settings: dict[str, str]) -> tuple[int, str]:
    """Run ``uvicorn --factory qualflow.web.app:create_app`` with only ``settings`` (and a data
    directory under ``tmp_path``) from the environment, expecting it to refuse to start; its
    exit code and stderr. Fails the test if it serves instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUALFLOW_", "QUALTRICS_"))}
    env |= {"QUALFLOW_DATA_DIR": str(tmp_path / "data"), **settings}
    command = [sys.executable, "-m", "uvicorn", "--factory", "qualflow.web.app:create_app"]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _out, err = server.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        _out, err = server.communicate()
        pytest.fail(f"the server started with settings it should refuse:\n{err}")
    return server.returncode, err
