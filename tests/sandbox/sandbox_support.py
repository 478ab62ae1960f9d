"""Assertion helpers shared by the sandbox tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_ok_envelope(body: dict[str, Any], status: str = "200 - OK") -> None:
    assert body["meta"]["httpStatus"] == status
    rid = body["meta"]["requestId"]
    assert len(rid) == 36
    assert rid[14] == "4"


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> str:
    assert resp.status_code == status, resp.text
    meta = resp.json()["meta"]
    assert meta["httpStatus"].startswith(f"{status} - ")
    assert "result" not in resp.json()
    if code is not None:
        assert meta["error"]["errorCode"] == code
    message: str = meta["error"]["errorMessage"]
    assert message
    return message
