"""The synchronous Qualtrics client."""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Self, TypeVar, Unpack

import httpx

from qualflow.qualtrics._base import (
    DEFAULT_TIMEOUT,
    ClientBase,
    ProxyTypes,
    SharedClientSettings,
    env_settings_with,
    http_settings,
)
from qualflow.qualtrics._core import (
    ApiCall,
    content_length,
    decode_response,
    error_from_response,
    result_as,
    transport_error,
)
from qualflow.qualtrics.auth import AccessToken, OAuthCredentials
from qualflow.qualtrics.errors import (
    AuthError,
    ConfigurationError,
    QualtricsError,
    TransportError,
    UnexpectedResponse,
)
from qualflow.qualtrics.models import ExportFormat, ExportOptions, WhoAmI
from qualflow.qualtrics.ratelimit import DEFAULT_REQUESTS_PER_MINUTE, Limiter
from qualflow.qualtrics.resources.definitions import SurveyDefinitions
from qualflow.qualtrics.resources.directory import Contacts, Directories, MailingLists
from qualflow.qualtrics.resources.distributions import Distributions
from qualflow.qualtrics.resources.exports import DEFAULT_TIMEOUT as EXPORT_TIMEOUT
from qualflow.qualtrics.resources.exports import (
    ExportOptionFields,
    Exports,
    ProgressCallback,
    build_options,
)
from qualflow.qualtrics.resources.responses import Responses
from qualflow.qualtrics.resources.subscriptions import EventSubscriptions
from qualflow.qualtrics.resources.surveys import Surveys
from qualflow.qualtrics.resources.users import Groups, Users
from qualflow.qualtrics.retry import RetryCallback, RetryPolicy, RetryState
from qualflow.tls import verified_context

if TYPE_CHECKING:
    from qualflow.qualtrics.export_result import ExportResult

__all__ = ["Client", "ClientSettings"]

T = TypeVar("T")


class ClientSettings(SharedClientSettings, total=False):
    """The keyword arguments of :class:`Client` (for :meth:`Client.from_env`)."""

    transport: httpx.BaseTransport | None
    on_retry: RetryCallback | None


class Client(ClientBase):
    """A typed client for the Qualtrics REST API v3.

    >>> with Client(datacenter="iad1", api_token=token) as qualtrics:
    ...     for survey in qualtrics.surveys.iter():
    ...         print(survey.id, survey.name)

    Say where the account lives with ``datacenter`` (``"iad1"``, ``"fra1"``…) or ``base_url``
    (a brand host like ``https://acme.qualtrics.com``, or the qualflow sandbox), and how to
    authenticate with ``api_token`` or ``oauth=OAuthCredentials(...)``.

    Failed requests are retried per ``retry`` (429/5xx/timeouts, honouring ``Retry-After``);
    requests wait for ``rate_limiter`` (by default a bucket of ``requests_per_minute`` that
    every client of the same brand in this process shares, so together they stay under its
    limit; on a bare datacenter host the brand is told by the credentials). With
    ``max_rate_limit_wait`` a request that the limiter would hold longer than that many
    seconds raises
    :class:`~qualflow.qualtrics.errors.RateLimiterBusy` instead of waiting (for callers
    someone is waiting on). ``transport`` is any httpx transport (tests use
    :class:`~qualflow.qualtrics.transports.SyncASGITransport` around the sandbox).
    ``proxy`` (``"http://proxy.example:3128"`` or an ``httpx.Proxy``) routes requests through
    a proxy (not with ``transport``, which carries its own). ``timeout`` is seconds, an
    ``httpx.Timeout`` or ``None`` for none (default: 10 s to connect, 30 s for the rest).
    Every request sends ``User-Agent: qualflow/<version> (+httpx)`` unless ``user_agent``
    says otherwise. Bad settings raise
    :class:`~qualflow.qualtrics.errors.ConfigurationError` here, not on the first request.

    Before each wait for a retry, ``on_retry`` (if given) is called with a
    :class:`~qualflow.qualtrics.RetryEvent` (attempt, delay, method, path, status), e.g. to
    show it; each retry is also logged as a warning on the ``qualflow.qualtrics`` logger.

    Thread-safe: one client may be used from many threads.
    """

    def __init__(
        self,
        *,
        datacenter: str | None = None,
        base_url: str | None = None,
        api_token: str | None = None,
        oauth: OAuthCredentials | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        rate_limiter: Limiter | None = None,
        requests_per_minute: float | None = DEFAULT_REQUESTS_PER_MINUTE,
        max_rate_limit_wait: float | None = None,
        transport: httpx.BaseTransport | None = None,
        proxy: ProxyTypes | None = None,
        user_agent: str | None = None,
        on_retry: RetryCallback | None = None,
    ) -> None:
        http = http_settings(timeout, proxy, transport)
        super().__init__(
            datacenter=datacenter,
            base_url=base_url,
            api_token=api_token,
            oauth=oauth,
            retry=retry,
            rate_limiter=rate_limiter,
            requests_per_minute=requests_per_minute,
            max_rate_limit_wait=max_rate_limit_wait,
            user_agent=user_agent,
            on_retry=on_retry,
        )
        self._http = httpx.Client(
            transport=transport,
            **http,
            verify=verified_context(),
            headers=self._default_headers(),
            follow_redirects=False,
        )
        #: How the client waits (retries, polls); replaceable, e.g. to record waits in tests.
        self._sleep: Callable[[float], None] = time.sleep
        self.surveys = Surveys(self)
        self.survey_definitions = SurveyDefinitions(self)
        self.responses = Responses(self)
        self.exports = Exports(self)
        self.event_subscriptions = EventSubscriptions(self)
        self.directories = Directories(self)
        self.contacts = Contacts(self)
        self.mailing_lists = MailingLists(self)
        self.users = Users(self)
        self.groups = Groups(self)
        self.distributions = Distributions(self)

    @classmethod
    def from_env(cls, **overrides: Unpack[ClientSettings]) -> Self:
        """A client configured from ``QUALTRICS_*`` environment variables (see
        :func:`~qualflow.qualtrics._base.env_settings`); keyword arguments take precedence."""
        return cls(**env_settings_with(overrides))

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- API ---------------------------------------------------------------------------------

    def whoami(self) -> WhoAmI:
        """The user, brand and datacenter behind the credentials."""
        return self._execute(ApiCall("GET", "/whoami", result_as(WhoAmI)))

    def export_responses(
        self,
        survey_id: str,
        *,
        format: ExportFormat | None = None,
        options: ExportOptions | None = None,
        dest: str | os.PathLike[str] | None = None,
        poll_interval: float = 1.0,
        timeout: float | None = EXPORT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        labels: bool = False,
        **fields: Unpack[ExportOptionFields],
    ) -> ExportResult:
        """Export a survey's responses: start, poll, stream the file to disk, and return it as
        an :class:`~qualflow.qualtrics.export_file.ExportFile` (an :class:`ExportResult`, which
        also carries ``continuation_token``) to read as typed rows or write as Parquet.

        ``format`` (csv, tsv, json, ndjson) defaults to the format of ``options``, else ``csv``.
        Options are an :class:`ExportOptions` and/or its fields as keywords (keywords win), e.g.
        ``start_date=…, end_date=…`` for a recordedDate window, or ``allow_continuation=True``
        then ``continuation_token=previous.continuation_token`` for incremental exports.

        ``labels=True`` also fetches the survey's choice texts so that
        ``iter_rows(labels=True)`` / ``write(…, labels=True)`` put labels beside the codes of
        CSV/TSV exports (JSON exports carry their own labels). The file lands at ``dest`` (a
        path or a directory) or in a temporary file the caller then owns. For SPSS/XML, which
        cannot be read as rows, use ``client.exports.run(...)`` to download the raw file.
        """
        from qualflow.qualtrics.export_result import READABLE_FORMATS, ExportResult

        opts = build_options(options, format, fields)
        if opts.format not in READABLE_FORMATS:
            raise ValueError(
                f"export_responses reads {', '.join(READABLE_FORMATS)} exports; "
                f"download {opts.format} with client.exports.run(...) instead"
            )
        label_map = None
        if (
            labels
            and opts.format in ("csv", "tsv")
            and not (opts.use_labels or opts.include_label_columns)
        ):
            label_map = self.surveys.label_map(survey_id)
        completed = self.exports.run(
            survey_id,
            opts,
            dest=dest,
            poll_interval=poll_interval,
            timeout=timeout,
            on_progress=on_progress,
        )
        return ExportResult(
            completed,
            label_map=label_map,
            time_zone=opts.time_zone or "UTC",
            decimal_comma=bool(opts.format_decimal_as_comma),
            survey_metadata_ids=opts.survey_metadata_ids,
            sort_by_last_modified_date=bool(opts.sort_by_last_modified_date),
        )

    # -- I/O ---------------------------------------------------------------------------------

    def _bearer(self) -> AccessToken:
        session = self._oauth
        assert session is not None
        # Read before the lock: a fetch that ends while we wait serves us too (see below).
        generation = session.generation
        token = session.current()
        if token is not None:
            return token
        with session.thread_lock:
            # Another caller may have fetched while we waited: use its token, even a
            # single-use one (expires_in 0), rather than fetch one more for each waiter.
            token = session.current() or session.fetched_since(generation)
            if token is None:
                try:
                    token = self._execute(session.token_call())
                except TransportError as error:
                    raise session.unreachable(error) from error
                session.store(token)
            return token

    def _attempts(self, call: ApiCall[Any], attempt: Callable[[AccessToken | None], T]) -> T:
        """Run ``attempt`` until it succeeds or the retry policy gives up."""
        self._refuse_if_closed(self._http.is_closed)
        state = RetryState(self.retry_policy, idempotent=call.idempotent)
        renewed = False
        while True:
            state.start_attempt()
            token: AccessToken | None = None
            if call.authenticated and self._oauth is not None:
                # The token request has its own retries, under the same policy: its failure is
                # final here, or every attempt of this call would repeat all of them.
                token = self._bearer()
            try:
                return attempt(token)
            except AuthError:
                if token is None or renewed or self._oauth is None:
                    raise
                # The token was revoked or expired early: get a new one, once.
                self._oauth.invalidate(token)
                renewed = True
            except QualtricsError as error:
                delay = state.next_delay(error)
                if delay is None:
                    raise
                outcome = self._before_retry(call, error, delay, state.attempts)
                if inspect.isawaitable(outcome):
                    if inspect.iscoroutine(outcome):
                        outcome.close()  # never to run: no "never awaited" warning either
                    raise ConfigurationError(
                        "on_retry returned an awaitable, which a Client cannot await: give it "
                        "a plain function (an AsyncClient takes an async one)"
                    ) from error
                self._sleep(delay)

    def _execute(self, call: ApiCall[T]) -> T:
        def attempt(token: AccessToken | None) -> T:
            request = self._http.build_request(**self._request_kwargs(call, token))
            if call.authenticated:
                self.rate_limiter.acquire(**self._limiter_wait)
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                raise transport_error(exc, call) from exc
            except httpx.DecodingError as exc:
                raise UnexpectedResponse(f"{call.describe()}: {exc}") from exc
            return call.parse(decode_response(response, call))

        return self._attempts(call, attempt)

    def _download(
        self,
        call: ApiCall[None],
        sink: BinaryIO,
        on_chunk: Callable[[int, int | None], None] | None = None,
    ) -> int:
        """Stream the answer of ``call`` into ``sink`` (rewound on each retry); returns bytes."""

        def attempt(token: AccessToken | None) -> int:
            request = self._http.build_request(**self._request_kwargs(call, token))
            self.rate_limiter.acquire(**self._limiter_wait)
            try:
                response = self._http.send(request, stream=True)
                try:
                    if response.status_code >= 400:
                        response.read()
                        raise error_from_response(response)
                    if response.status_code != 200:
                        response.read()
                        decode_response(response, call)
                        raise UnexpectedResponse(
                            f"{call.describe()}: HTTP {response.status_code} instead of the file"
                        )
                    sink.seek(0)
                    sink.truncate()
                    total = content_length(response.headers)
                    written = 0
                    for chunk in response.iter_bytes(chunk_size=1 << 20):
                        written += sink.write(chunk)
                        if on_chunk is not None:
                            # Compare wire bytes with Content-Length (also wire bytes).
                            on_chunk(response.num_bytes_downloaded, total)
                    sink.flush()
                    return written
                finally:
                    response.close()
            except httpx.TransportError as exc:
                raise transport_error(exc, call) from exc
            except httpx.DecodingError as exc:
                raise UnexpectedResponse(f"{call.describe()}: {exc}") from exc

        return self._attempts(call, attempt)
