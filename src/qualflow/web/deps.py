"""What route handlers depend on: the store, a database session, the settings, API errors.

Every router (ours and other areas') uses these instead of reaching into ``app.state``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from qualflow.settings import Settings
from qualflow.store.runtime import Store
from qualflow.validation import MAX_ID

__all__ = [
    "MAX_ID",
    "ApiError",
    "DbSession",
    "ErrorBody",
    "ErrorResponse",
    "Offset",
    "ResourceId",
    "error_responses",
    "get_app_settings",
    "get_db",
    "get_store",
    "refused_field",
]


#: A row id in a path: out of range is a 422, never a database error.
ResourceId = Annotated[int, Path(ge=1, le=MAX_ID)]
#: How many rows of a list to skip.
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Rows to skip (paging).")]


class ApiError(Exception):
    """An error answer: HTTP status, a stable machine-readable code and a readable message."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def refused_field(code: str, message: str, field: str | None) -> ApiError:
    """A 422 ``code`` whose ``details`` names the one field refused (a body field or a query
    parameter), shaped as FastAPI's own 422; no ``details`` when no one field is (a rule over
    several fields, or a refusal that does not say which)."""
    details = [{"field": field, "message": message}] if field is not None else None
    return ApiError(422, code, message, details=details)


#: The error ``code`` of an answer with this HTTP status (when nothing more specific applies).
_STATUS_CODE_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
}


def status_code_name(status_code: int) -> str:
    return _STATUS_CODE_NAMES.get(status_code, f"http_{status_code}")


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """The JSON answer every error of the app has: ``{"error": {"code", "message"}}``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status_code, headers=headers)


def api_error_response(exc: ApiError) -> JSONResponse:
    return error_response(
        exc.status_code, exc.code, exc.message, headers=exc.headers, details=exc.details
    )


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable error code, e.g. `not_found`.")
    message: str = Field(description="What went wrong, for people.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems of a request that failed validation."
    )


class ErrorResponse(BaseModel):
    """The body of every error answer of the API."""

    error: ErrorBody


_ERROR_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing or invalid credentials",
    403: "Missing permission",
    404: "Not found",
    409: "Conflict with the current state",
    413: "The body is too large",
    415: "The body's media type is not accepted",
    422: "Request failed validation",
    429: "Too many attempts",
    502: "An upstream service (Qualtrics) failed",
    503: "Temporarily unavailable; try again shortly",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error body for these statuses."""
    return {
        status: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS.get(status, "Error")}
        for status in statuses
    }


def media_type(request: Request) -> str:
    """The request's Content-Type without its parameters, lower-cased ("" when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None when it exceeds ``limit`` bytes (without reading it all into memory)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def get_store(request: Request) -> Store:
    store: Store | None = getattr(request.app.state, "store", None)
    if store is None:
        raise RuntimeError("the application's store is not open (is the lifespan running?)")
    return store


def get_app_settings(request: Request) -> Settings:
    return get_store(request).settings


def get_db(request: Request) -> Iterator[Session]:
    """A session per request. Handlers commit explicitly; anything uncommitted rolls back."""
    session = get_store(request).sessionmaker()
    try:
        yield session
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_db)]
