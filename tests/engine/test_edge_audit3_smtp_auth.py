"""An SMTP server that answers AUTH with a 4xx (454 "temporary authentication failure", the
answer of busy or throttling providers) is a temporary failure: the email stays pending and is
retried, like any other 4xx; a 535 (wrong credentials) still fails it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from sqlalchemy import select

from qualflow.engine.runtime import Engine
from qualflow.notify.email import Email, EmailError, SmtpSettings, queue_email, send_now
from qualflow.notify.models import OutboxEmail


class AuthAnswering:
    """An aiosmtpd handler answering every AUTH with ``answer``."""

    def __init__(self, answer: str) -> None:
        self.answer = answer

    async def handle_AUTH(self, server: Any, session: Any, envelope: Any, args: Any) -> str:
        return self.answer


class AuthController(Controller):
    def factory(self) -> SMTP:
        return SMTP(self.handler, auth_require_tls=False)


@pytest.fixture(params=["454 4.7.0 Temporary authentication failure", "535 5.7.8 Bad creds"])
def smtp_auth(request: pytest.FixtureRequest) -> Iterator[tuple[int, str]]:
    with socket.socket() as probe:  # a free port (Controller cannot start on port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = AuthController(AuthAnswering(request.param), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, request.param
    finally:
        controller.stop()


def test_a_temporary_auth_refusal_keeps_the_email_pending(
    engine: Engine, smtp_auth: tuple[int, str]
) -> None:
    port, answer = smtp_auth
    settings = SmtpSettings(
        host="127.0.0.1", port=port, username="hub", password="secret", sender="hub@example.org"
    )
    factory = engine.services.sessionmaker
    row = queue_email(
        factory,
        f"audit3-auth-{port}",
        Email(to=["cx@example.org"], subject="s", text="t"),
        sender=settings.sender,
    )

    with pytest.raises(EmailError) as failure:
        send_now(factory, settings, row)

    temporary = answer.startswith("4")
    assert failure.value.retriable is temporary
    with factory() as session:
        stored = session.scalars(select(OutboxEmail).where(OutboxEmail.id == row.id)).one()
    assert stored.status == ("pending" if temporary else "failed")
    assert stored.last_error is not None
    assert answer[:3] in stored.last_error
