"""Every error the Qualtrics client raises.

The hierarchy, grouped by what a caller should do about it::

    QualtricsError                    base: status_code, error_code, error_message, request_id
    ├── ConfigurationError            bad client settings (unknown datacenter, no credentials…)
    ├── APIError                      Qualtrics answered with an error envelope (HTTP 4xx/5xx)
    │   ├── BadRequest                400 (and other 4xx without a dedicated class)
    │   │   └── PayloadTooLarge       413
    │   ├── AuthError                 401, or 400 ATP_2 (no credentials), or an OAuth token refusal
    │   ├── PermissionDenied          403
    │   ├── NotFound                  404
    │   ├── RateLimited               429                         retriable, carries retry_after
    │   └── ServerError               5xx                         retriable for 500/502/503/504
    ├── TransportError                connect/read error or timeout, no answer    retriable
    ├── RateLimiterBusy               the client's own rate limiter would hold the request longer
    │                                 than the caller allows; nothing was sent (carries retry_after)
    ├── UnexpectedResponse            an answer that is not the documented Qualtrics shape
    ├── ForeignNextPage               a `nextPage` link pointing at another host (never followed)
    ├── NotYetAvailable               202: the response exists but is not readable yet (retriable)
    ├── ExportFailed                  an export job ended with status `failed`
    └── ExportTimeout                 an export job did not finish within the caller's deadline

Reading files and deliveries is not calling the API: a bad export file raises
``export_file.ExportFileError`` and a bad webhook delivery ``webhooks.WebhookError`` (both
``ValueError`` subclasses, since they are bad input).

Warnings (``warnings.warn``)::

    QualtricsWarning (UserWarning)
    └── DatacenterNotice              ``meta.notice``: the request was proxied from another host

`retriable` says whether repeating the same request later may succeed; the client's retry loop
consults it (and, for non-idempotent requests, whether the request could have been processed).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

_E = TypeVar("_E", bound=BaseException)


def _rebuild(cls: type[_E], args: tuple[Any, ...]) -> _E:
    """Unpickle an error or warning without calling its ``__init__`` (whose keyword-only
    arguments ``BaseException``'s pickling would not pass); ``__dict__`` is restored after."""
    return cls.__new__(cls, *args)


__all__ = [
    "APIError",
    "AuthError",
    "BadRequest",
    "ClientClosed",
    "ConfigurationError",
    "DatacenterNotice",
    "ExportFailed",
    "ExportTimeout",
    "ForeignNextPage",
    "NotFound",
    "NotYetAvailable",
    "PayloadTooLarge",
    "PermissionDenied",
    "QualtricsError",
    "QualtricsWarning",
    "RateLimited",
    "RateLimiterBusy",
    "ServerError",
    "TransportError",
    "UnexpectedResponse",
    "error_for_status",
]


class QualtricsError(Exception):
    """Base class of every error raised by :mod:`qualflow.qualtrics`."""

    _retriable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_code = error_code
        self.error_message = error_message
        self.request_id = request_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (worker pools): keep every attribute, whatever the
        # subclass's __init__ takes.
        return (_rebuild, (type(self), self.args), self.__dict__)

    def __repr__(self) -> str:
        fields = [repr(self.message)]
        for name in ("status_code", "error_code", "request_id"):
            value = getattr(self, name)
            if value is not None:
                fields.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(fields)})"

    @property
    def retriable(self) -> bool:
        """Whether repeating the same request later may succeed."""
        return self._retriable

    def __str__(self) -> str:
        details = []
        if self.status_code is not None:
            details.append(f"HTTP {self.status_code}")
        if self.error_code:
            details.append(self.error_code)
        if self.request_id:
            details.append(f"requestId {self.request_id}")
        return f"{self.message} ({', '.join(details)})" if details else self.message


class ConfigurationError(QualtricsError, ValueError):
    """The client was configured with settings that cannot work."""


class ClientClosed(QualtricsError, RuntimeError):
    """The client was used after ``close()`` / ``aclose()`` or the end of its ``with`` block.

    A RuntimeError too: what httpx raised here before, so code catching that still does."""


class APIError(QualtricsError):
    """Qualtrics answered with an HTTP error status and (usually) an error envelope."""


class BadRequest(APIError):
    """The request was rejected as invalid (HTTP 400 and unclassified 4xx)."""


class PayloadTooLarge(BadRequest):
    """The request body was too large (HTTP 413)."""


class AuthError(APIError):
    """Credentials are missing, unknown or expired (HTTP 401, or 400 ``ATP_2``)."""


class PermissionDenied(APIError):
    """The credentials are valid but not allowed to do this (HTTP 403)."""


class NotFound(APIError):
    """The addressed object does not exist (HTTP 404)."""


class RateLimited(APIError):
    """Too many requests (HTTP 429). ``retry_after`` is the server's hint in seconds, if any."""

    _retriable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            error_code=error_code,
            error_message=error_message,
            request_id=request_id,
        )
        self.retry_after = retry_after


class ServerError(APIError):
    """Qualtrics failed to process the request (HTTP 5xx)."""

    #: 500 is retried too: Qualtrics returns it for transient faults (qualtRics retries it as well).
    _RETRIABLE_STATUSES = frozenset({500, 502, 503, 504})

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            error_code=error_code,
            error_message=error_message,
            request_id=request_id,
        )
        self.retry_after = retry_after

    @property
    def retriable(self) -> bool:
        return self.status_code in self._RETRIABLE_STATUSES


class TransportError(QualtricsError):
    """No usable HTTP answer: the connection failed, was cut, or timed out.

    ``request_sent`` is False when the failure happened before any byte of the request could
    have reached Qualtrics (connect errors), which makes even a non-idempotent request safe
    to repeat.
    """

    _retriable = True

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class RateLimiterBusy(QualtricsError):
    """The client-side rate limiter would hold this request longer than the caller allows.

    Raised before anything is sent, when the client was made with ``max_rate_limit_wait`` (an
    interactive caller would rather answer "try again in N s" than hang). ``retry_after`` is
    how many seconds the limiter would have held the request. The client's retry loop does not
    wait it out: that wait is exactly what the caller declined.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnexpectedResponse(QualtricsError):
    """Qualtrics (or whatever answered) sent something that is not the documented shape."""


class ForeignNextPage(QualtricsError):
    """A ``nextPage`` link points at a different host; following it would leak credentials."""

    def __init__(self, next_page: str, expected_origin: str) -> None:
        super().__init__(
            f"refusing to follow nextPage {next_page!r}: it is not on {expected_origin}; "
            "if that host is right for your account, configure it as base_url"
        )
        self.next_page = next_page
        self.expected_origin = expected_origin


class NotYetAvailable(QualtricsError):
    """Qualtrics accepted the response but cannot serve it yet (HTTP 202); try again shortly."""

    _retriable = True


class ExportFailed(QualtricsError):
    """A response export ended with status ``failed``."""

    def __init__(
        self, message: str, *, progress_id: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.progress_id = progress_id


class ExportTimeout(QualtricsError):
    """A response export was still running when the caller's deadline passed."""

    _retriable = True

    def __init__(self, message: str, *, progress_id: str | None = None) -> None:
        super().__init__(message)
        self.progress_id = progress_id


class QualtricsWarning(UserWarning):
    """Base class of the warnings the client emits."""


class DatacenterNotice(QualtricsWarning):
    """Qualtrics served the request through another datacenter and says which host to use.

    ``host`` and ``datacenter`` are what to configure instead (``datacenter`` is ``None`` when
    the suggested host is not a known datacenter host); ``notice`` is Qualtrics' own text.
    """

    def __init__(self, notice: str, *, host: str | None, datacenter: str | None) -> None:
        if datacenter:
            advice = f"configure datacenter={datacenter!r} (host {host}) for faster responses"
        elif host:
            advice = f"configure base_url='https://{host}' for faster responses"
        else:
            advice = "check the datacenter this client is configured with"
        super().__init__(f"Qualtrics: {notice.strip()} — {advice}")
        self.notice = notice
        self.host = host
        self.datacenter = datacenter

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args), self.__dict__)


def error_for_status(
    status_code: int,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> APIError:
    """Build the error matching an HTTP error status and Qualtrics ``errorCode``."""
    message = error_message or f"Qualtrics answered HTTP {status_code}"
    if status_code == 429:
        return RateLimited(
            message,
            retry_after=retry_after,
            status_code=status_code,
            error_code=error_code,
            error_message=error_message,
            request_id=request_id,
        )
    if status_code >= 500:
        return ServerError(
            message,
            retry_after=retry_after,
            status_code=status_code,
            error_code=error_code,
            error_message=error_message,
            request_id=request_id,
        )
    cls: type[APIError]
    # ATP_2 arrives as a 400 but means "no credentials": callers handle it like a 401.
    if status_code == 401 or error_code == "ATP_2":
        cls = AuthError
    elif status_code == 403:
        cls = PermissionDenied
    elif status_code == 404:
        cls = NotFound
    elif status_code == 413:
        cls = PayloadTooLarge
    else:
        cls = BadRequest
    return cls(
        message,
        status_code=status_code,
        error_code=error_code,
        error_message=error_message,
        request_id=request_id,
    )
