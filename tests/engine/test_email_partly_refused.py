"""An SMTP server that takes a message for some recipients and refuses others: the email is
sent, and its outbox row says who did not get it (instead of a clean "sent")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from qualflow.engine.automations import Automations
from qualflow.engine.runs import RunDetail
from qualflow.engine.runtime import Engine
from qualflow.notify.email import SmtpSettings
from qualflow.notify.models import OutboxEmail
from tests.engine.engine_support import SmtpSink
from tests.engine.test_email import email_automation

Wait = Callable[..., RunDetail]


class RefusingSomeRecipients(SmtpSink):
    """Refuses RCPT TO for addresses at unknown.example.org, as a real server refuses a
    mailbox that does not exist."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.endswith("@unknown.example.org"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = RefusingSomeRecipients().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def engine_extras(smtp_sink: SmtpSink) -> dict[str, object]:
    return {"smtp": SmtpSettings(host="127.0.0.1", port=smtp_sink.port, sender="hub@example.org")}


def test_recipients_the_server_refused_are_named_on_the_sent_row(
    engine: Engine, wait_run: Wait, smtp_sink: SmtpSink
) -> None:
    automations = Automations(engine.services)
    created = automations.create(email_automation())

    run = wait_run(
        automations.run_now(
            created.id, {"email": "gone@unknown.example.org", "name": "Ada", "score": 9}
        )
    )

    assert run.status == "succeeded", run.error
    [message] = smtp_sink.messages
    assert message["to"] == ["cx@example.org"]
    with engine.services.sessionmaker() as session:
        row = session.scalar(select(OutboxEmail))
    assert row is not None
    assert row.status == "sent"
    assert row.last_error is not None
    assert "refused these recipients: gone@unknown.example.org (550" in row.last_error
    assert "No such user here" in row.last_error


def test_every_recipient_accepted_leaves_no_note(
    engine: Engine, wait_run: Wait, smtp_sink: SmtpSink
) -> None:
    automations = Automations(engine.services)
    created = automations.create(email_automation())
    run = wait_run(
        automations.run_now(created.id, {"email": "ada@example.org", "name": "Ada", "score": 9})
    )
    assert run.status == "succeeded", run.error
    with engine.services.sessionmaker() as session:
        row = session.scalar(select(OutboxEmail))
    assert row is not None
    assert (row.status, row.last_error) == ("sent", None)


def test_a_garbled_reply_keeps_the_email_pending(smtp_sink: SmtpSink) -> None:
    """A reply line without a readable code (smtplib reads it as -1) is no proof the message
    can never go: it is retried, as a 4xx would be, not failed for good."""
    from qualflow.notify.email import EmailError, pool_for, send_blocking

    smtp_sink.refuse_next.append("garbled reply without a code")
    row = OutboxEmail(
        id=1, idempotency_key="k", sender="hub@example.org", recipients=["a@example.org"],
        subject="s", body_text="b", status="pending", attempts=0,
    )  # fmt: skip
    settings = SmtpSettings(host="127.0.0.1", port=smtp_sink.port, sender="hub@example.org")
    try:
        with pytest.raises(EmailError) as caught:
            send_blocking(settings, row)
    finally:
        pool_for(settings).close()
    assert caught.value.retriable
    assert "-1" in str(caught.value)
