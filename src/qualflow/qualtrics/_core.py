"""The I/O-free heart shared by ``Client`` and ``AsyncClient``.

An :class:`ApiCall` describes one logical API call (what to send, how to read the answer,
whether repeating it is safe); the clients only differ in how they perform the I/O.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import httpx
import pydantic

from qualflow.qualtrics.datacenters import datacenter_of_host
from qualflow.qualtrics.errors import (
    ConfigurationError,
    DatacenterNotice,
    ForeignNextPage,
    QualtricsError,
    TransportError,
    UnexpectedResponse,
    error_for_status,
)
from qualflow.qualtrics.models import Meta, Page
from qualflow.qualtrics.retry import parse_retry_after

__all__ = [
    "ApiCall",
    "Envelope",
    "content_length",
    "decode_response",
    "error_from_response",
    "transport_error",
]

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)

QueryValue = str | int | float | bool | Sequence[str] | None
FileField = tuple[str, bytes, str]

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_NOTICE_HOST = re.compile(r"([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.qualtrics\.com)", re.IGNORECASE)


@dataclass(frozen=True)
class Envelope:
    """A decoded successful answer: ``result`` and ``meta`` of the Qualtrics envelope."""

    status_code: int
    result: Any
    meta: Meta
    headers: httpx.Headers
    body: Any = None

    @property
    def request_id(self) -> str | None:
        return self.meta.request_id


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    """One API call: the request to send and the parser of its successful answer.

    ``path`` is relative to ``…/API/v3`` (``/surveys``) unless ``absolute`` is set, for
    ``nextPage`` links and the OAuth token endpoint.
    """

    method: str
    path: str
    parse: Callable[[Envelope], T]
    params: Mapping[str, QueryValue] | None = None
    json: Any = None
    form: Mapping[str, str] | None = None
    files: Mapping[str, FileField] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    absolute: bool = False
    authenticated: bool = True
    #: Overrides the method-based rule; True for POSTs that change nothing (start an export).
    safe_to_repeat: bool | None = None
    #: Whether the answer is a Qualtrics envelope (False for the OAuth token endpoint).
    enveloped: bool = True

    @property
    def idempotent(self) -> bool:
        """Whether sending this twice has the effect of sending it once."""
        if self.safe_to_repeat is not None:
            return self.safe_to_repeat
        if self.method.upper() in _IDEMPOTENT_METHODS:
            return True
        return any(name.lower() == "idempotency-key" for name in self.headers)

    def follow(self, url: str) -> ApiCall[T]:
        """The same call aimed at an absolute ``nextPage`` URL (whose query replaces ours)."""
        return replace(self, path=url, params=None, absolute=True)

    def describe(self) -> str:
        return f"{self.method} {self.path}"


def query_params(params: Mapping[str, QueryValue] | None) -> list[tuple[str, str]]:
    """Query pairs: ``None`` dropped, booleans as ``true``/``false``, sequences repeated."""
    pairs: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, str | int | float):
            pairs.append((key, str(value)))
        else:
            pairs.extend((key, str(item)) for item in value)
    return pairs


def content_length(headers: httpx.Headers) -> int | None:
    """The ``Content-Length`` of an answer, or ``None`` when absent or not ASCII digits (a
    progress total only: the body is read to its end either way)."""
    value = headers.get("Content-Length", "").strip(" \t")
    # 19 digits fit any real length (and int() refuses over 4300 of them).
    if value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None


def _json_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def _snippet(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:200] + ("…" if len(text) > 200 else "")


def error_from_response(response: httpx.Response) -> QualtricsError:
    """The error for an HTTP error answer, read from the Qualtrics (or OAuth) error body."""
    body = _json_body(response)
    error_code = error_message = request_id = None
    if isinstance(body, dict):
        meta = body.get("meta")
        if isinstance(meta, dict):
            request_id = _str_or_none(meta.get("requestId"))
            error = meta.get("error")
            if isinstance(error, dict):
                error_code = _str_or_none(error.get("errorCode"))
                error_message = _str_or_none(error.get("errorMessage"))
        if error_code is None and isinstance(body.get("error"), str):
            # The OAuth token endpoint answers the RFC 6749 way, not with the envelope.
            error_code = body["error"]
            error_message = _str_or_none(body.get("error_description")) or error_code
    if error_message is None and response.content:
        error_message = _snippet(response) or None
    return error_for_status(
        response.status_code,
        error_code=error_code,
        error_message=error_message,
        request_id=request_id,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def decode_response(response: httpx.Response, call: ApiCall[Any]) -> Envelope:
    """Check the status, unwrap the envelope, and surface ``meta.notice`` as a warning."""
    if response.status_code >= 400:
        raise error_from_response(response)
    if response.is_redirect:
        # Redirects are not followed (the token must not travel to another address), so
        # nothing was done: a write would otherwise look like it had succeeded.
        location = response.headers.get("location", "")
        raise UnexpectedResponse(
            f"{call.describe()}: the server answered {response.status_code} redirecting to "
            f"{location!r}; nothing was done: if that address is right for your account, "
            "configure it as base_url",
            status_code=response.status_code,
        )
    body = _json_body(response)
    if body is None and response.content:
        raise UnexpectedResponse(
            f"{call.describe()}: expected JSON, got {response.headers.get('content-type')!r}: "
            f"{_snippet(response)}",
            status_code=response.status_code,
        )
    if not call.enveloped:
        return Envelope(response.status_code, body, Meta(), response.headers, body)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise UnexpectedResponse(
            f"{call.describe()}: expected a JSON object, got {type(body).__name__}",
            status_code=response.status_code,
        )
    raw_meta = body.get("meta")
    try:
        meta = Meta.model_validate(raw_meta if isinstance(raw_meta, dict) else {})
    except pydantic.ValidationError:
        meta = Meta()
    if meta.notice:
        warn_notice(meta.notice)
    return Envelope(response.status_code, body.get("result"), meta, response.headers, body)


def warn_notice(notice: str) -> None:
    match = _NOTICE_HOST.search(notice)
    host = match.group(1).lower() if match else None
    datacenter = datacenter_of_host(host) if host else None
    warnings.warn(DatacenterNotice(notice, host=host, datacenter=datacenter), stacklevel=4)


def transport_error(exc: httpx.TransportError, call: ApiCall[Any]) -> QualtricsError:
    """Translate an httpx failure; ``request_sent`` is False only when nothing left the client."""
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ConfigurationError(f"{call.describe()}: {exc}")
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    kind = type(exc).__name__
    return TransportError(
        f"{call.describe()}: {kind}: {exc or 'no details'}", request_sent=not never_sent
    )


def parse_model(model: type[M], data: Any, envelope: Envelope | None = None) -> M:
    """Validate ``data`` as ``model``; a mismatch is an :class:`UnexpectedResponse`."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise UnexpectedResponse(
            f"Qualtrics returned a {model.__name__} this client cannot read: "
            f"{exc.errors(include_url=False)[:3]}",
            request_id=envelope.request_id if envelope else None,
        ) from exc


def result_as(model: type[M]) -> Callable[[Envelope], M]:
    """Parser: the envelope's ``result`` as ``model``."""

    def parse(envelope: Envelope) -> M:
        return parse_model(model, envelope.result, envelope)

    return parse


def page_of(model: type[M]) -> Callable[[Envelope], Page[M]]:
    """Parser: the envelope's ``result`` as a page of ``model`` elements."""
    page_model: type[Page[M]] = Page[model]  # type: ignore[valid-type]

    def parse(envelope: Envelope) -> Page[M]:
        return parse_model(page_model, envelope.result, envelope)

    return parse


def elements_of(model: type[M]) -> Callable[[Envelope], list[M]]:
    """Parser: ``result.elements`` of an unpaged list."""
    parse_page = page_of(model)

    def parse(envelope: Envelope) -> list[M]:
        return parse_page(envelope).elements

    return parse


def nothing(envelope: Envelope) -> None:
    """Parser for calls whose answer is only ``meta``."""
    return None


def check_next_page(next_page: str, current_url: str, origin: str) -> str:
    """The absolute URL to fetch for ``nextPage``, or :class:`ForeignNextPage`.

    Relative links are resolved against the page that returned them; absolute ones must share
    scheme, host and port with the API base, so credentials never travel to another host. One
    exception keeps brand hosts working: Qualtrics writes its links on the datacenter's host
    (``https://iad1.qualtrics.com/API/v3/surveys?offset=100``) whichever host was called, so
    when both are Qualtrics hosts the link's path and query are fetched from the API base's
    own host instead.
    """
    try:
        target = httpx.URL(current_url).join(next_page)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise ForeignNextPage(next_page, origin) from None
    if target.fragment:
        raise ForeignNextPage(next_page, origin)
    target_origin = f"{target.scheme}://{target.netloc.decode('ascii', 'replace')}"
    if target_origin.lower() == origin.lower():
        return str(target)
    own = httpx.URL(origin)
    if (
        _qualtrics_https(own)
        and _qualtrics_https(target)
        and target.path.startswith("/API/v3/")
        and not target.userinfo
    ):
        return str(own.copy_with(path=target.path, query=target.query))
    raise ForeignNextPage(next_page, origin)


def _qualtrics_https(url: httpx.URL) -> bool:
    """An https URL on a Qualtrics host (``*.qualtrics.com``) on the default port."""
    host = (url.host or "").lower()
    return url.scheme == "https" and url.port is None and host.endswith(".qualtrics.com")


def path_segment(value: str, name: str) -> str:
    """An id placed in a URL path: non-empty, and unable to change the path's meaning."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    if any(ch in value for ch in "/?#%\\") or value in (".", "..") or not value.isprintable():
        raise ValueError(f"{name} {value!r} is not a valid Qualtrics id")
    return value
