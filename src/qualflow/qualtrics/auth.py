"""Credentials: an API token, or OAuth 2.0 client credentials exchanged for bearer tokens.

OAuth tokens come from ``{host}/oauth2/token`` (not under ``/API/v3``), are cached, and are
renewed shortly before they expire. Renewal happens once even when many threads (``Client``)
or tasks (``AsyncClient``) need a token at the same moment.
"""

from __future__ import annotations

import base64
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
    """A bearer token and the monotonic-clock instant it stops being usable."""

    value: str = field(repr=False)
    expires_at: float
    lifetime: float
    token_type: str = "Bearer"
    scope: str | None = None

    def usable(self, now: float) -> bool:
        """Still good, with a safety margin so a request never leaves with a dying token."""
        margin = min(60.0, self.lifetime * 0.1)
        return now < self.expires_at - margin


class OAuthSession:
    """The cached token of one client and the logic to renew it (I/O done by the client)."""

    #: Used when the server omits ``expires_in``; Qualtrics tokens last an hour.
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
        self.thread_lock = threading.Lock()
        self._async_lock: anyio.Lock | None = None

    @property
    def async_lock(self) -> anyio.Lock:
        if self._async_lock is None:
            self._async_lock = anyio.Lock()
        return self._async_lock

    def current(self) -> AccessToken | None:
        token = self._token
        if token is not None and token.usable(self._clock()):
            return token
        return None

    def store(self, token: AccessToken) -> None:
        self._token = token

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
        try:
            lifetime = float(body.get("expires_in") or self.DEFAULT_LIFETIME)
        except (TypeError, ValueError):
            lifetime = self.DEFAULT_LIFETIME
        scope = body.get("scope")
        return AccessToken(
            value=body["access_token"],
            expires_at=self._clock() + lifetime,
            lifetime=lifetime,
            token_type="Bearer",
            scope=scope if isinstance(scope, str) else None,
        )
