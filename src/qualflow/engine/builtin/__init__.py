"""The built-in actions; importing this package registers them."""

from qualflow.engine.builtin import condition, http_request, notify_email, qualtrics_get_response

__all__ = ["condition", "http_request", "notify_email", "qualtrics_get_response"]
