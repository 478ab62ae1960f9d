"""Check credentials against Qualtrics (``whoami``) and say who they resolved to."""

from __future__ import annotations

from dataclasses import dataclass

from qualflow.connections.clients import Credentials, client_for_credentials
from qualflow.connections.errors import (
    CredentialsRejected,
    InvalidConnection,
    QualtricsBusy,
    QualtricsUnavailable,
)
from qualflow.qualtrics import (
    AuthError,
    ConfigurationError,
    PermissionDenied,
    QualtricsError,
    RateLimited,
    RateLimiter,
    RateLimiterBusy,
    RetryPolicy,
    ServerError,
    TransportError,
    WhoAmI,
)
from qualflow.qualtrics.errors import APIError

__all__ = ["VALIDATION_RETRY", "Identity", "check_credentials", "translate_error"]

#: A person is waiting for the answer: one quick retry at most.
VALIDATION_RETRY = RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1.0, max_elapsed=10.0)


@dataclass(frozen=True)
class Identity:
    """What ``whoami`` said about the credentials."""

    user_id: str
    brand_id: str | None
    user_name: str | None
    email: str | None
    first_name: str | None
    last_name: str | None
    datacenter: str | None
    account_type: str | None

    @classmethod
    def of(cls, me: WhoAmI) -> Identity:
        return cls(
            user_id=me.user_id,
            brand_id=me.brand_id,
            user_name=me.user_name,
            email=me.email,
            first_name=me.first_name,
            last_name=me.last_name,
            datacenter=me.datacenter,
            account_type=me.account_type,
        )


def translate_error(error: QualtricsError, *, doing: str) -> Exception:
    """Map a client error to what the hub reports (rejected vs. unavailable vs. invalid)."""
    detail = getattr(error, "error_message", None) or str(error)
    if isinstance(error, ConfigurationError):
        return InvalidConnection(str(error))
    if isinstance(error, RateLimiterBusy):
        return QualtricsBusy(
            f"the connection's rate limit is spent while {doing}: {error}", error.retry_after
        )
    if isinstance(error, AuthError | PermissionDenied):
        return CredentialsRejected(f"Qualtrics rejected the credentials while {doing}: {detail}")
    if isinstance(error, TransportError | ServerError | RateLimited):
        return QualtricsUnavailable(f"Qualtrics is unavailable while {doing}: {detail}")
    if isinstance(error, APIError) and error.status_code is not None and error.status_code < 500:
        return CredentialsRejected(f"Qualtrics refused the request while {doing}: {detail}")
    return QualtricsUnavailable(f"unexpected answer from Qualtrics while {doing}: {detail}")


async def check_credentials(
    credentials: Credentials,
    *,
    rate_limiter: RateLimiter | None = None,
    max_rate_limit_wait: float | None = None,
) -> Identity:
    """Call ``whoami`` with the credentials; raise a connections error if that fails."""
    try:
        async with client_for_credentials(
            credentials,
            rate_limiter=rate_limiter,
            retry=VALIDATION_RETRY,
            max_rate_limit_wait=max_rate_limit_wait,
        ) as qualtrics:
            me = await qualtrics.whoami()
    except QualtricsError as error:
        raise translate_error(error, doing="checking who the credentials belong to") from None
    return Identity.of(me)
