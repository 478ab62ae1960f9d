"""The Qualtrics response envelope and the error the sandbox raises to answer with one."""

from __future__ import annotations

from contextvars import ContextVar
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

from qualflow.sandbox import ids

# Error codes. ATP_2 and DCD_7 are the real ones; QVAL_* mirrors the real validation family;
# the others are the sandbox's own (the real codes are not documented).
NO_AUTH = "ATP_2"
BAD_TOKEN = "DCD_7"
BAD_OAUTH_TOKEN = "AUTH_1"
INVALID = "QVAL_1"
INVALID_SKIP_TOKEN = "QVAL_5"
NOT_FOUND = "RES_404"
TOO_LARGE = "QVAL_13"
RATE_LIMITED = "RATE_1"
SERVER_ERROR = "SRV_1"
UNAVAILABLE = "SRV_3"
METHOD_NOT_ALLOWED = "QVAL_2"
FORBIDDEN = "PERM_1"

# Qualtrics spells a few reasons its own way.
_REASONS = {503: "Temporary Internal Server Error", 202: "Accepted"}


def http_status_text(status: int) -> str:
    """``"200 - OK"``, ``"404 - Not Found"``: the ``meta.httpStatus`` string."""
    reason = _REASONS.get(status) or HTTPStatus(status).phrase
    return f"{status} - {reason}"


#: ``meta.notice`` for successful answers of the current request (set by the middleware when the
#: sandbox plays a wrong-datacenter host that proxies calls).
NOTICE: ContextVar[str | None] = ContextVar("sandbox_notice", default=None)


def meta(status: int = 200, **extra: Any) -> dict[str, Any]:
    out = {"httpStatus": http_status_text(status), "requestId": ids.request_id(), **extra}
    notice = NOTICE.get()
    if notice and status < 400:
        out["notice"] = notice
    return out


def envelope(result: Any = None, *, status: int = 200, with_result: bool = True) -> dict[str, Any]:
    """``{"result": …, "meta": {…}}``; ``with_result=False`` gives the meta-only form."""
    body: dict[str, Any] = {}
    if with_result:
        body["result"] = result
    body["meta"] = meta(status)
    return body


def ok(result: Any = None, *, status: int = 200) -> JSONResponse:
    return JSONResponse(envelope(result, status=status), status_code=status)


def ok_meta(status: int = 200) -> JSONResponse:
    """Write endpoints that answer with ``{"meta": …}`` only."""
    return JSONResponse(envelope(with_result=False, status=status), status_code=status)


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"meta": meta(status, error={"errorCode": code, "errorMessage": message})}


class ApiError(Exception):
    """Raised anywhere in a handler; answered with the Qualtrics error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            error_body(self.status, self.code, self.message),
            status_code=self.status,
            headers=self.headers,
        )


def bad_request(message: str, code: str = INVALID) -> ApiError:
    return ApiError(400, code, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, NOT_FOUND, message)


def invalid_param(name: str, detail: str = "") -> ApiError:
    suffix = f": {detail}" if detail else "."
    return ApiError(400, INVALID, f"Invalid request. Missing or invalid parameter {name}{suffix}")
