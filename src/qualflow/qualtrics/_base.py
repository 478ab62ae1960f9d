"""Configuration and request building shared by ``Client`` and ``AsyncClient``."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

import httpx

from qualflow.qualtrics._core import ApiCall, query_params
from qualflow.qualtrics.auth import AccessToken, OAuthCredentials, OAuthSession
from qualflow.qualtrics.datacenters import ApiLocation, resolve_location
from qualflow.qualtrics.errors import (
    ClientClosed,
    ConfigurationError,
    QualtricsError,
    RateLimited,
)
from qualflow.qualtrics.ratelimit import Limiter, Unlimited, brand_limiter
from qualflow.qualtrics.retry import RetryEvent, RetryPolicy

__all__ = ["ClientBase", "env_settings", "env_settings_with", "http_settings"]

log = logging.getLogger("qualflow.qualtrics")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def env_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Client keyword arguments from ``QUALTRICS_*`` environment variables.

    ``QUALTRICS_API_TOKEN``, ``QUALTRICS_DATACENTER``, ``QUALTRICS_BASE_URL``,
    ``QUALTRICS_CLIENT_ID`` + ``QUALTRICS_CLIENT_SECRET`` (+ ``QUALTRICS_SCOPE``).
    """
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    if env.get("QUALTRICS_DATACENTER"):
        settings["datacenter"] = env["QUALTRICS_DATACENTER"]
    if env.get("QUALTRICS_BASE_URL"):
        settings["base_url"] = env["QUALTRICS_BASE_URL"]
    if env.get("QUALTRICS_API_TOKEN"):
        settings["api_token"] = env["QUALTRICS_API_TOKEN"]
    if env.get("QUALTRICS_CLIENT_ID") or env.get("QUALTRICS_CLIENT_SECRET"):
        settings["oauth"] = OAuthCredentials(
            env.get("QUALTRICS_CLIENT_ID", ""),
            env.get("QUALTRICS_CLIENT_SECRET", ""),
            scope=env.get("QUALTRICS_SCOPE") or None,
        )
    return settings


#: Keyword arguments that name the same thing in two ways: giving one in code replaces both
#: as read from the environment (else a base_url in code would clash with the environment's
#: datacenter instead of taking precedence over it).
_ALTERNATIVES = (("datacenter", "base_url"), ("api_token", "oauth"))


def env_settings_with(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`env_settings` with ``overrides`` taking precedence. ``None`` for a setting the
    environment gives (credentials, location) leaves the environment's; ``None`` for any other
    (``timeout``, ``requests_per_minute``…) means what it means to the client: none."""
    settings = env_settings()
    from_env = {name for group in _ALTERNATIVES for name in group}
    given = {
        name: value
        for name, value in overrides.items()
        if value is not None or name not in from_env
    }
    for group in _ALTERNATIVES:
        if any(name in given for name in group):
            for name in group:
                settings.pop(name, None)
    settings.update(given)
    return settings


#: A proxy for the client's requests, as httpx takes it (``"http://proxy.example:3128"``).
ProxyTypes = str | httpx.URL | httpx.Proxy


class SharedClientSettings(TypedDict, total=False):
    """The keyword arguments both clients take alike (each adds its transport and retry hook)."""

    datacenter: str | None
    base_url: str | None
    api_token: str | None
    oauth: OAuthCredentials | None
    timeout: float | httpx.Timeout | None
    retry: RetryPolicy | None
    rate_limiter: Limiter | None
    requests_per_minute: float | None
    max_rate_limit_wait: float | None
    proxy: ProxyTypes | None
    user_agent: str | None


def http_settings(
    timeout: float | httpx.Timeout | None, proxy: ProxyTypes | None, transport: object | None
) -> dict[str, Any]:
    """The checked ``timeout`` and ``proxy`` keywords for the httpx client: a bad value raises
    :class:`ConfigurationError` when the client is made, not on its first request."""
    parts = (
        [timeout.connect, timeout.read, timeout.write, timeout.pool]
        if isinstance(timeout, httpx.Timeout)
        else [timeout]
    )
    for part in parts:
        if part is None:
            continue
        if isinstance(part, bool) or not isinstance(part, int | float):
            raise ConfigurationError(
                f"timeout must be seconds (a number), an httpx.Timeout or None, got {part!r}"
            )
        if math.isnan(part) or part <= 0:
            raise ConfigurationError(
                f"timeout must be a number of seconds > 0 (or None for no timeout), got {part!r}"
            )
    if proxy is not None and transport is not None:
        # httpx would silently ignore the proxy: a transport carries its own.
        raise ConfigurationError(
            "give either proxy or transport, not both (configure the proxy on the transport)"
        )
    settings: dict[str, Any] = {"timeout": timeout}
    if proxy is not None:
        try:
            settings["proxy"] = proxy if isinstance(proxy, httpx.Proxy) else httpx.Proxy(proxy)
        except (ValueError, httpx.InvalidURL) as exc:
            raise ConfigurationError(f"invalid proxy: {exc}") from None
    return settings


def _brand_of(location: ApiLocation, api_token: str | None, oauth: OAuthCredentials | None) -> str:
    """What identifies the brand whose quota a client spends. A brand host
    (``acme.qualtrics.com``, a sandbox) is the brand; a bare datacenter host
    (``iad1.qualtrics.com``) serves many brands, so there the credentials tell them apart
    (two tokens of one brand then count apart: give them one limiter to share)."""
    host = httpx.URL(location.origin).host
    if location.datacenter is None or host != f"{location.datacenter}.qualtrics.com":
        return location.origin
    credential = api_token if api_token is not None else oauth.client_id if oauth else ""
    return f"{location.origin}#{hashlib.sha256(credential.encode()).hexdigest()[:16]}"


class ClientBase:
    """Everything about a client that is not I/O."""

    def __init__(
        self,
        *,
        datacenter: str | None,
        base_url: str | None,
        api_token: str | None,
        oauth: OAuthCredentials | None,
        retry: RetryPolicy | None,
        rate_limiter: Limiter | None,
        requests_per_minute: float | None,
        max_rate_limit_wait: float | None,
        user_agent: str | None,
        on_retry: Callable[[RetryEvent], object] | None,
    ) -> None:
        self.location: ApiLocation = resolve_location(datacenter=datacenter, base_url=base_url)
        if api_token is not None and oauth is not None:
            raise ConfigurationError("give either api_token or oauth credentials, not both")
        if api_token is None and oauth is None:
            raise ConfigurationError(
                "no Qualtrics credentials: pass api_token (Account settings → Qualtrics IDs) "
                "or oauth=OAuthCredentials(client_id, client_secret)"
            )
        if api_token is not None:
            api_token = api_token.strip()
            if not api_token or any(c.isspace() for c in api_token):
                raise ConfigurationError("api_token is empty or contains whitespace")
            if not (api_token.isascii() and api_token.isprintable()):
                # It travels in an HTTP header, which carries ASCII only.
                raise ConfigurationError(
                    "api_token has characters no Qualtrics API token has (printable ASCII only)"
                )
        self._api_token = api_token
        self._oauth = OAuthSession(oauth, self.location.token_url) if oauth else None
        self.retry_policy = retry or RetryPolicy()
        if rate_limiter is not None:
            self.rate_limiter: Limiter = rate_limiter
        elif requests_per_minute is None or requests_per_minute == float("inf"):
            self.rate_limiter = Unlimited()
        else:
            if not requests_per_minute > 0:
                raise ConfigurationError(
                    f"requests_per_minute must be a number > 0 (or None for no limit), "
                    f"got {requests_per_minute!r}"
                )
            brand = _brand_of(self.location, api_token, oauth)
            self.rate_limiter = brand_limiter(brand, requests_per_minute)
        if max_rate_limit_wait is not None and not max_rate_limit_wait >= 0:
            raise ConfigurationError("max_rate_limit_wait must be a number of seconds >= 0")
        self.max_rate_limit_wait = max_rate_limit_wait
        #: What each request passes to the limiter (nothing: a custom limiter need not know it).
        self._limiter_wait: dict[str, float] = (
            {} if max_rate_limit_wait is None else {"max_wait": max_rate_limit_wait}
        )
        if user_agent and not (user_agent.isascii() and user_agent.isprintable()):
            # A header carries printable ASCII only; a line break would end it.
            raise ConfigurationError(
                f"user_agent must be printable ASCII on one line, got {user_agent!r}"
            )
        self._user_agent = user_agent or f"qualflow/{_package_version()} (+httpx)"
        #: Called with a :class:`~qualflow.qualtrics.retry.RetryEvent` before each wait for a
        #: retry (the ``qualflow.qualtrics`` logger also gets a warning for each).
        self.on_retry = on_retry

    def __repr__(self) -> str:
        auth = "oauth" if self._oauth else "api_token"
        return f"{type(self).__name__}(base_url={self.location.root!r}, auth={auth})"

    @property
    def api_base(self) -> str:
        """``https://{host}/API/v3``."""
        return self.location.api_base

    @property
    def datacenter(self) -> str | None:
        return self.location.datacenter

    def _default_headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": self._user_agent}

    def _auth_headers(self, token: AccessToken | None) -> dict[str, str]:
        if token is not None:
            return {"Authorization": f"Bearer {token.value}"}
        assert self._api_token is not None
        return {"X-API-TOKEN": self._api_token}

    def _url(self, call: ApiCall[Any]) -> str:
        return call.path if call.absolute else self.location.api_base + call.path

    def _refuse_if_closed(self, closed: bool) -> None:
        if closed:
            ending = "aclose()" if type(self).__name__.startswith("Async") else "close()"
            raise ClientClosed(
                f"this {type(self).__name__} was closed ({ending}, or the end of its with "
                "block); make a new one to send more requests"
            )

    def _request_kwargs(self, call: ApiCall[Any], token: AccessToken | None) -> dict[str, Any]:
        headers = dict(call.headers)
        if call.authenticated:
            headers.update(self._auth_headers(token))
        kwargs: dict[str, Any] = {
            "method": call.method,
            "url": self._url(call),
            "params": query_params(call.params) if call.params else None,
            "headers": headers,
        }
        if call.json is not None:
            kwargs["json"] = call.json
        if call.form is not None:
            kwargs["data"] = dict(call.form)
        if call.files is not None:
            kwargs["files"] = dict(call.files)
        return kwargs

    def _before_retry(
        self, call: ApiCall[Any], error: QualtricsError, delay: float, attempt: int
    ) -> object:
        """Log the retry, hold back the limiter's other users on a 429, and tell ``on_retry``;
        returns what ``on_retry`` returned (an ``AsyncClient`` awaits an awaitable)."""
        if isinstance(error, RateLimited) and error.retry_after:
            # Everyone sharing the limiter backs off, not only this request.
            self.rate_limiter.pause(error.retry_after)
        log.warning(
            "qualtrics %s failed (%s); retry %d in %.2fs",
            call.describe(),
            error,
            attempt,
            delay,
        )
        if self.on_retry is None:
            return None
        return self.on_retry(
            RetryEvent(
                attempt=attempt,
                delay=delay,
                method=call.method.upper(),
                path=httpx.URL(self._url(call)).path,
                status_code=error.status_code,
                error=error,
            )
        )


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("qualflow")
    except Exception:  # pragma: no cover - only when run from an uninstalled tree
        return "0"
