"""Credentials: an API token, or OAuth 2.0 client credentials exchanged for bearer tokens.

OAuth tokens come from ``{host}/oauth2/token`` (not under ``/API/v3``), are cached, and are
renewed shortly before they expire. Renewal happens once even when many threads (``Client``)
or tasks (``AsyncClient``) need a token at the same moment. A token the server says expires
at once (``expires_in`` of 0 or less) is not cached: it serves the request that fetched it
(and the requests that waited for that fetch), and the next request fetches another.
"""

from __future__ import annotations

import base64
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio

from qualflow.qualtrics._core import ApiCall, Envelope
from qualflow.qualtrics.errors import (
    AuthError,
    ConfigurationError,
    TransportError,
    UnexpectedResponse,
)

__all__ = ["AccessToken", "OAuthCredentials", "OAuthSession"]


@dataclass(frozen=True)
class OAuthCredentials:
    """An OAuth client of the brand (Account settings → Qualtrics IDs → OAuth clients).

    ``scope`` is space-separated (``"read:surveys read:survey_responses"``) or a sequence of
    scopes; leave it ``None`` to get the client's default scopes.
    """

    client_id: str
    client_secret: str = field(repr=False)
    scope: str | Sequence[str] | None = None

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ConfigurationError("OAuth credentials need both a client_id and a client_secret")

    @property
    def scope_string(self) -> str | None:
        if self.scope is None:
            return None
        if isinstance(self.scope, str):
            return self.scope.strip() or None
        return " ".join(s.strip() for s in self.scope if s.strip()) or None


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and the monotonic-clock instant it stops being usable.

    A ``lifetime`` of 0 marks a token issued with ``expires_in`` of 0 or less: good for the
    request it was fetched for, never cached for the next one (:attr:`single_use`).
    """

    value: str = field(repr=False)
    expires_at: float
    lifetime: float
    token_type: str = "Bearer"
    scope: str | None = None

    @property
    def single_use(self) -> bool:
        return self.lifetime <= 0

    def usable(self, now: float) -> bool:
        """Still good, with a safety margin so a request never leaves with a dying token."""
        if self.single_use:
            return False
        margin = min(60.0, self.lifetime * 0.1)
        return now < self.expires_at - margin


#: ``expires_in`` sent as a string ("3600"): ASCII digits, an optional sign and fraction.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _seconds(value: Any) -> float | None:
    """``expires_in`` as seconds, or ``None`` when it is absent or not a finite number."""
    if isinstance(value, bool):  # JSON true is not a number of seconds
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and _NUMBER.fullmatch(text)):
            return None
        value = float(text)
    if not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # a JSON integer too large for a float is no lifetime either
        return None
    return seconds if math.isfinite(seconds) else None


class OAuthSession:
    """The cached token of one client and the logic to renew it (I/O done by the client)."""

    #: Used when the server omits ``expires_in`` or sends something that is not a number;
    #: Qualtrics tokens last an hour.
    DEFAULT_LIFETIME = 3600.0

    def __init__(
        self,
        credentials: OAuthCredentials,
        token_url: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self.token_url = token_url
        self._clock = clock
        self._token: AccessToken | None = None
        #: How many tokens were stored: a caller that read it before waiting for the lock
        #: can tell that a fetch completed meanwhile (see :meth:`fetched_since`).
        self.generation = 0
        self.thread_lock = threading.Lock()
        self._async_lock: anyio.Lock | None = None

    @property
    def async_lock(self) -> anyio.Lock:
        if self._async_lock is None:
            self._async_lock = anyio.Lock()
        return self._async_lock

    def current(self) -> AccessToken | None:
        """The cached token, if a new request may still use it."""
        token = self._token
        if token is not None and token.usable(self._clock()):
            return token
        return None

    def fetched_since(self, generation: int) -> AccessToken | None:
        """The token another caller fetched after :attr:`generation` was ``generation`` (even
        a single-use or short-lived one): callers that waited for that fetch share its token
        instead of each fetching one more."""
        token = self._token
        return token if token is not None and self.generation != generation else None

    def store(self, token: AccessToken) -> None:
        self._token = token
        self.generation += 1

    def invalidate(self, token: AccessToken) -> None:
        """Forget ``token`` (the API refused it) unless another caller already replaced it."""
        if self._token is token:
            self._token = None

    def token_call(self) -> ApiCall[AccessToken]:
        # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
        client_id = quote(self.credentials.client_id, safe="")
        secret = f"{client_id}:{quote(self.credentials.client_secret, safe='')}"
        basic = base64.b64encode(secret.encode("utf-8")).decode("ascii")
        form = {"grant_type": "client_credentials"}
        if self.credentials.scope_string:
            form["scope"] = self.credentials.scope_string
        return ApiCall(
            method="POST",
            path=self.token_url,
            absolute=True,
            authenticated=False,
            enveloped=False,
            # Asking for a token twice is harmless: each grant is independent.
            safe_to_repeat=True,
            form=form,
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            parse=self._parse_token,
        )

    def unreachable(self, error: TransportError) -> TransportError:
        """The error for a token request that got no answer even after the client's retries
        (the token call is retried by the client's policy itself, never again by the call
        that needed the token)."""
        return TransportError(
            f"the OAuth token endpoint {self.token_url} could not be reached: {error}",
            request_sent=error.request_sent,
        )

    def _parse_token(self, envelope: Envelope) -> AccessToken:
        body: Any = envelope.body
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise UnexpectedResponse(
                f"the OAuth token endpoint {self.token_url} answered without an access_token",
                status_code=envelope.status_code,
            )
        token_type = str(body.get("token_type") or "Bearer")
        if token_type.lower() != "bearer":
            raise AuthError(f"the OAuth token endpoint issued a {token_type!r} token, not Bearer")
        lifetime = _seconds(body.get("expires_in"))
        if lifetime is None:
            lifetime = self.DEFAULT_LIFETIME
        # 0 or less: the server says it expires now; it serves one request, never cached.
        lifetime = max(0.0, lifetime)
        scope = body.get("scope")
        return AccessToken(
            value=body["access_token"],
            expires_at=self._clock() + lifetime,
            lifetime=lifetime,
            token_type="Bearer",
            scope=scope if isinstance(scope, str) else None,
        )
