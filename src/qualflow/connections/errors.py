"""Errors of the connections package, each with a stable ``code`` the API reports."""

from __future__ import annotations


class ConnectionsError(Exception):
    """Base class: a request about Qualtrics connections cannot be done as asked."""

    code = "connection_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidConnection(ConnectionsError):
    """The settings are incomplete or contradictory (no credentials, unknown datacenter…)."""

    code = "invalid_connection"


class ConnectionNotFound(ConnectionsError):
    code = "not_found"


class DuplicateConnectionName(ConnectionsError):
    code = "name_taken"


class ConnectionInUse(ConnectionsError):
    """Something (an automation…) still uses the connection."""

    code = "connection_in_use"

    def __init__(self, message: str, users: list[str]) -> None:
        super().__init__(message)
        self.users = users


class ConnectionForbidden(ConnectionsError):
    """A private connection of someone else."""

    code = "forbidden"


class CredentialsRejected(ConnectionsError):
    """Qualtrics answered, and said no (wrong token, revoked OAuth client, missing scope)."""

    code = "credentials_rejected"


class QualtricsUnavailable(ConnectionsError):
    """Qualtrics could not be reached or failed (timeouts, 5xx, rate limit)."""

    code = "qualtrics_unavailable"


class QualtricsBusy(QualtricsUnavailable):
    """The connection's rate limit would hold the request longer than a person should wait.

    Nothing was sent; ``retry_after`` says in how many seconds it could be.
    """

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProvisioningFailed(ConnectionsError):
    """Creating the service user, or getting its token, did not work."""

    code = "provisioning_failed"
