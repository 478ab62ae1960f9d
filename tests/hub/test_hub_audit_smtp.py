"""An SMTP server that lacks what the settings ask for (STARTTLS, a login) is named as a
settings mismatch, on a real SMTP server (the sandbox's sink, which offers neither)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qualflow.notify.email import EmailError, SmtpSettings, close_pools, send_blocking
from qualflow.notify.models import OutboxEmail
from qualflow.sandbox.smtp_sink import SmtpSink


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    started = SmtpSink().start()
    try:
        yield started
    finally:
        close_pools()  # the pooled connection, before the server it is open to
        started.stop()


def _row() -> OutboxEmail:
    return OutboxEmail(
        id=1,
        idempotency_key="audit",
        sender="qualflow@example.org",
        recipients=["ada@example.org"],
        subject="hello",
        body_text="hello",
        body_html=None,
        status="pending",
        attempts=0,
    )


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"starttls": True}, "QUALFLOW_SMTP_STARTTLS"),
        ({"username": "mailer", "password": "hunter2-secret"}, "QUALFLOW_SMTP_USERNAME"),
    ],
)
def test_a_feature_the_server_lacks_names_the_setting_that_asks_for_it(
    sink: SmtpSink, options: dict[str, object], named: str
) -> None:
    settings = SmtpSettings(host=sink.host, port=sink.port, **options)  # type: ignore[arg-type]
    with pytest.raises(EmailError) as failure:
        send_blocking(settings, _row())
    assert named in str(failure.value)
    assert "hunter2-secret" not in str(failure.value)
    # Kept pending: once the settings are corrected, the message still goes out.
    assert failure.value.retriable
    assert sink.messages == []


def test_the_same_server_sends_when_the_settings_match_it(sink: SmtpSink) -> None:
    send_blocking(SmtpSettings(host=sink.host, port=sink.port), _row())
    assert [message.rcpt_tos for message in sink.wait_for(1)] == [("ada@example.org",)]
