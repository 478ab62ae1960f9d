"""Errors of the accounts package; each carries a stable machine-readable ``code``."""

from __future__ import annotations


class AccountError(Exception):
    """Base class: a request about people, tokens or sessions cannot be done as asked."""

    code = "account_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidAccountInput(AccountError):
    code = "invalid_input"


class EmailTaken(AccountError):
    code = "email_taken"


class LastAdmin(AccountError):
    """The change would leave the workspace without an active admin."""

    code = "last_admin"


class NotFound(AccountError):
    code = "not_found"
