"""An SMTP server that accepts every message and keeps it: the mailbox of offline demos and tests.

It is a real SMTP server (aiosmtpd) on a loopback port, so qualflow's email path runs exactly as
in production — outbox, SMTP conversation, retries — with the messages landing here instead of
in someone's inbox::

    with SmtpSink() as sink:           # 127.0.0.1, a free port
        settings = ...(smtp_host=sink.host, smtp_port=sink.port)
        ...
        [message] = sink.wait_for(1)
        message.subject, message.text

Messages are kept in memory (the newest ``max_messages``) and, when ``directory`` is given,
also written there as ``.eml`` files a mail client can open.
"""

from __future__ import annotations

import asyncio
import email.policy
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["ReceivedMessage", "SmtpSink"]


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the sink received it."""

    number: int
    received_at: datetime
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes = field(repr=False)

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=email.policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def to(self) -> str:
        return str(self.message.get("To", ", ".join(self.rcpt_tos)))

    @property
    def text(self) -> str:
        """The plain-text body (the first text/plain part)."""
        body = self.message.get_body(preferencelist=("plain",))
        return body.get_content() if body is not None else ""

    def summary(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "receivedAt": self.received_at.isoformat(),
            "from": self.mail_from,
            "to": list(self.rcpt_tos),
            "subject": self.subject,
        }


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode("utf-8")
        self.sink._keep(str(envelope.mail_from or ""), tuple(envelope.rcpt_tos), raw)
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on ``host:port`` (port 0: a free one) in a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        directory: str | Path | None = None,
        max_messages: int = 10_000,
    ) -> None:
        self.host = host
        self.port = port
        self.directory = Path(directory) if directory else None
        self._messages: deque[ReceivedMessage] = deque(maxlen=max_messages)
        self._count = 0
        self._lock = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> SmtpSink:
        if self._thread is not None:
            raise RuntimeError("the SMTP sink is already started")
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="qualflow-smtp-sink", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the SMTP sink did not start in time")
        if self._failure is not None:
            raise RuntimeError(f"the SMTP sink could not start: {self._failure}") from self._failure
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        handler = _Handler(self)
        try:
            server = loop.run_until_complete(
                loop.create_server(lambda: SMTP(handler), self.host, self.port)
            )
        except OSError as exc:
            self._failure = exc
            self._ready.set()
            loop.close()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.run_until_complete(server.wait_closed())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- messages ------------------------------------------------------------------------------

    def _keep(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> None:
        with self._lock:
            # Written before it is counted: whoever sees the count finds the file.
            number = self._count + 1
            if self.directory is not None:
                (self.directory / f"{number:06d}.eml").write_bytes(raw)
            self._count = number
            self._messages.append(
                ReceivedMessage(number, datetime.now(UTC), mail_from, rcpt_tos, raw)
            )
            self._lock.notify_all()

    @property
    def count(self) -> int:
        """Messages received since start (including ones dropped from memory)."""
        with self._lock:
            return self._count

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedMessage]:
        """Block until ``count`` messages arrived; returns them (raises on timeout)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._count < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self._count} of {count} messages arrived in {timeout} s")
                self._lock.wait(left)
            return list(self._messages)
