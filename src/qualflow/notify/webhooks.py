"""Signed outbound webhooks (Standard Webhooks: webhook-id / -timestamp / -signature headers)."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook


def generate_secret() -> str:
    """A new signing secret in the Standard Webhooks format (``whsec_`` + base64 of 32 bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_headers(
    secret: str, *, message_id: str, body: str, timestamp: datetime | None = None
) -> dict[str, str]:
    """The three headers a receiver verifies; ``message_id`` must be stable across retries."""
    when = (timestamp or datetime.now(UTC)).astimezone(UTC)
    signature = Webhook(secret).sign(msg_id=message_id, timestamp=when, data=body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }
