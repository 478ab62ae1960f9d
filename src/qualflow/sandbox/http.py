"""Request plumbing shared by the sandbox's routers: body parsing, the caller, paging."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qualflow.sandbox import errors
from qualflow.sandbox.errors import ApiError, bad_request
from qualflow.sandbox.state import SandboxState, User


def state_of(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def caller(request: Request) -> User:
    """The authenticated user (set by the auth middleware)."""
    user: User | None = request.scope.get("state", {}).get("user")
    if user is None:  # the middleware guards every /API/v3 path; this is a safety net
        raise ApiError(400, errors.NO_AUTH, "Expected authorization in headers, but none provided.")
    return user


class _NotJsonNumber(ValueError):
    def __init__(self, constant: str) -> None:
        super().__init__(constant)
        self.constant = constant


def _refuse_constant(constant: str) -> Any:
    # Python's parser accepts NaN and ±Infinity, JSON does not (RFC 8259 §6); stored, they
    # would make every later answer that holds them fail to serialise.
    raise _NotJsonNumber(constant)


def parse_json(raw: bytes | str, what: str = "request body") -> Any:
    """Strict JSON (no NaN / Infinity); 400 naming ``what`` and the reason when it is not."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except _NotJsonNumber as exc:
        raise bad_request(
            f"Invalid value {exc.constant} in the {what}: JSON has no NaN or Infinity."
        ) from None
    except RecursionError:
        raise bad_request(f"Invalid {what}: JSON nested too deeply.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise bad_request(f"Invalid {what}: not valid JSON ({reason}).") from None


async def json_body(request: Request, *, required: bool = True) -> Any:
    """The parsed JSON body; 400 with the parser's reason when it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise bad_request("Invalid request body: a JSON body is required.")
        return {}
    return parse_json(raw)


async def json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    body = await json_body(request, required=required)
    if not isinstance(body, dict):
        raise bad_request("Invalid request body: expected a JSON object.")
    return body


def require_str(body: dict[str, Any], name: str, *, allow_empty: bool = False) -> str:
    value = body.get(name)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise errors.invalid_param(name, "expected a non-empty string")
    return value


def optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.invalid_param(name, "expected a string")
    return value


def optional_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise errors.invalid_param(name, "expected a boolean")
    return value


def origin(request: Request) -> str:
    """``scheme://host[:port]`` the caller used (next-page links stay on the same host)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def _page_url(request: Request, params: dict[str, str]) -> str:
    return f"{origin(request)}{request.url.path}?{urlencode(params)}"


Handler = Callable[..., Awaitable[Response]]


def refuse_unseen_survey(request: Request) -> None:
    """404 for a call naming (in its path or ``?surveyId=``) an existing survey the caller can
    neither own nor collaborate on; an unknown survey is left to the handler's own answer."""
    state = state_of(request)
    for survey_id in (request.path_params.get("survey_id"), request.query_params.get("surveyId")):
        if survey_id and survey_id in state.surveys:
            state.survey_seen_by(caller(request).id, survey_id)


class Routes:
    """Collects plain Starlette routes with FastAPI-like decorators.

    The ``/API/v3`` surface is served by a Starlette router mounted in the FastAPI app: its
    regex matching costs a fraction of FastAPI's per-route matching, which dominated the cost of
    small requests (recording one response) with ~70 routes.
    """

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def _add(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                refuse_unseen_survey(request)
                return await handler(request, **request.path_params)

            endpoint.__name__ = handler.__name__
            endpoint.__doc__ = handler.__doc__
            self.routes.append(Route(path, endpoint, methods=[method]))
            return handler

        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("POST", path)

    def put(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("PUT", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("DELETE", path)


def offset_page(request: Request, items: list[Any], page_size: int) -> dict[str, Any]:
    """``{"elements", "nextPage"}`` with ``?offset=`` paging (surveys, users, groups ...)."""
    raw = request.query_params.get("offset", "0")
    if not raw.isdecimal():
        raise errors.invalid_param("offset", "expected a non-negative integer")
    offset = int(raw)
    chunk = items[offset : offset + page_size]
    next_page = None
    if offset + page_size < len(items):
        params = {k: v for k, v in request.query_params.items() if k != "offset"}
        params["offset"] = str(offset + page_size)
        next_page = _page_url(request, params)
    return {"elements": chunk, "nextPage": next_page}


def encode_skip_token(offset: int) -> str:
    raw = json.dumps({"o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skip_token(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset = data["o"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise bad_request("Parameter skipToken is invalid.", errors.INVALID_SKIP_TOKEN) from None


def skip_token_page(request: Request, items: list[Any], default_size: int) -> dict[str, Any]:
    """``{"elements", "nextPage"}`` with ``pageSize`` + opaque ``skipToken`` (XM directory)."""
    token = request.query_params.get("skipToken")
    if token is not None and not token:
        raise bad_request("Parameter skipToken should not be empty.", errors.INVALID_SKIP_TOKEN)
    offset = decode_skip_token(token) if token else 0
    raw_size = request.query_params.get("pageSize")
    size = default_size
    if raw_size is not None:
        if not raw_size.isdecimal() or not 1 <= int(raw_size) <= default_size:
            raise errors.invalid_param("pageSize", f"expected an integer from 1 to {default_size}")
        size = int(raw_size)
    chunk = items[offset : offset + size]
    next_page = None
    if offset + size < len(items):
        params = {k: v for k, v in request.query_params.items() if k != "skipToken"}
        params["skipToken"] = encode_skip_token(offset + size)
        next_page = _page_url(request, params)
    return {"elements": chunk, "nextPage": next_page}
