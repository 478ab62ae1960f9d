"""The ``Location`` header of a 201: where the resource just created lives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request, Response

LOCATION_HEADER_DOC = {
    "Location": {
        "description": "The path of the resource this request created.",
        "schema": {"type": "string"},
    }
}


def set_location(
    request: Request, response: Response, endpoint: Callable[..., Any], **path_params: Any
) -> None:
    """Name the created resource in ``response``'s ``Location``: the path of the operation
    ``endpoint`` (the one that reads or changes that resource) with ``path_params``."""
    path = request.app.url_path_for(endpoint.__name__, **path_params)
    response.headers["Location"] = str(request.scope.get("root_path", "")).rstrip("/") + path
