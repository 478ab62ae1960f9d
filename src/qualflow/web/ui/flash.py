"""One-shot messages shown on the next page ("Connection saved.").

Kept in a short-lived cookie as JSON. It is not signed: it only ever holds text we wrote, a
foreign site cannot set cookies for our host, and templates escape it like any other text.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from starlette.responses import Response

__all__ = ["FLASH_COOKIE", "Flash", "add", "clear", "pop"]

FLASH_COOKIE = "qualflow_flash"
Kind = Literal["success", "error", "info", "warning"]
_MAX_MESSAGES = 5
_MAX_LENGTH = 500


@dataclass(frozen=True)
class Flash:
    kind: Kind
    message: str


def _decode(raw: str | None) -> list[Flash]:
    if not raw:
        return []
    try:
        items = json.loads(base64.urlsafe_b64decode(raw.encode()).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return []
    out: list[Flash] = []
    if not isinstance(items, list):
        return out
    for item in items[:_MAX_MESSAGES]:
        if (
            isinstance(item, list)
            and len(item) == 2
            and item[0] in ("success", "error", "info", "warning")
            and isinstance(item[1], str)
        ):
            out.append(Flash(item[0], item[1][:_MAX_LENGTH]))
    return out


def add(request: Request, response: Response, kind: Kind, message: str) -> None:
    """Queue ``message`` for the next rendered page (usually after a redirect)."""
    queued: list[Flash] = getattr(request.state, "flash_out", None) or []
    queued.append(Flash(kind, message[:_MAX_LENGTH]))
    request.state.flash_out = queued[-_MAX_MESSAGES:]
    payload = json.dumps([[f.kind, f.message] for f in request.state.flash_out])
    response.set_cookie(
        FLASH_COOKIE,
        base64.urlsafe_b64encode(payload.encode()).decode(),
        max_age=120,
        httponly=True,
        samesite="lax",
        path="/",
    )


def pop(request: Request) -> list[Flash]:
    """The messages waiting for this request (the caller clears the cookie on its response)."""
    return _decode(request.cookies.get(FLASH_COOKIE))


def clear(response: Response) -> None:
    response.delete_cookie(FLASH_COOKIE, path="/")
