"""Email: an outbox table every message is written to first, and an SMTP sender.

Writing first makes sending idempotent: the row is keyed by the caller's idempotency key (for a
run step: run id + step), so a retried or recovered step finds the message it already queued and
does not send it twice once it is marked sent. The stable ``Message-ID`` derived from that key
lets receivers drop the rare duplicate of a crash between "sent" and "marked sent".
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import smtplib
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from typing import Any, TypeVar

from sqlalchemy import Engine, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from qualflow.notify.models import OutboxEmail
from qualflow.store.base import utcnow
from qualflow.store.db import autocommit

T = TypeVar("T")

log = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


class EmailError(Exception):
    """Sending failed. ``retriable`` says whether trying again later may succeed."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class SmtpSettingsMismatch(smtplib.SMTPNotSupportedError):
    """The server lacks what ``QUALFLOW_SMTP_*`` asks for (STARTTLS, a login)."""


def check_address(address: str) -> str:
    """Return the bare address, or raise ``ValueError`` naming what is wrong with it."""
    _, bare = parseaddr(address.strip())
    if not bare or not _ADDRESS.match(bare):
        raise ValueError(f"{address!r} is not an email address")
    return bare


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send (from ``QUALFLOW_SMTP_*``)."""

    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    sender: str = "qualflow@localhost"
    timeout: float = 30.0


@dataclass(frozen=True)
class Email:
    to: list[str]
    subject: str
    text: str
    html: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str | None = None


def message_id_for(key: str, sender: str) -> str:
    # The sender may carry a display name ("Research <research@example.org>").
    domain = parseaddr(sender)[1].rpartition("@")[2] or "qualflow.local"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def outbox_values(key: str, email: Email, *, sender: str, run_id: str | None) -> dict[str, Any]:
    """The column values of a pending outbox row for ``email`` under ``key`` (addresses
    checked); for callers that insert the row in their own transaction."""
    recipients = [check_address(a) for a in (*email.to, *email.cc, *email.bcc)]
    if not email.to:
        raise ValueError("an email needs at least one recipient")
    now = utcnow()
    return {
        "idempotency_key": key,
        "run_id": run_id,
        "sender": sender,
        "recipients": recipients,
        "subject": email.subject,
        "body_text": email.text,
        "body_html": email.html,
        "status": "pending",
        "attempts": 0,
        "last_error": None,
        "message_id": message_id_for(key, sender),
        "headers": {"to": list(email.to), "cc": list(email.cc), "reply_to": email.reply_to},
        "created_at": now,
        "next_attempt_at": now,
        "sent_at": None,
    }


_TABLE: Table = OutboxEmail.__table__  # type: ignore[assignment]
# Built once per dialect: building a statement per message costs more CPU than running it.
# A fresh message comes back from its INSERT; only a retried step's needs the SELECT.
_INSERT_IGNORE = {
    "postgresql": postgresql.insert(_TABLE).on_conflict_do_nothing().returning(*_TABLE.c),
    "sqlite": sqlite.insert(_TABLE).on_conflict_do_nothing().returning(*_TABLE.c),
}
_SELECT_BY_KEY = select(_TABLE).where(_TABLE.c.idempotency_key == bindparam("key"))
#: What smtplib's send_message returns: the refused recipients, with the server's reply.
Refused = dict[str, tuple[int, bytes]]

_SELECT_BY_ID = select(_TABLE).where(_TABLE.c.id == bindparam("email_id"))
#: What a successful send changes on its row.
_SENT_VALUES = {
    "attempts": _TABLE.c.attempts + 1,
    "status": "sent",
    "sent_at": bindparam("now"),
    # Sent, but some recipients refused (see send_blocking); None when all accepted it.
    "last_error": bindparam("note"),
}
_MARK_SENT = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("email_id"))
    .values(**_SENT_VALUES)
    .returning(*_TABLE.c)
)
#: The success of a send, for a caller that records it in its own transaction.
RECORD_SENT = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("email_id"), _TABLE.c.status != "sent")
    .values(**_SENT_VALUES)
)
_MARK_FAILED = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("email_id"))
    .values(
        attempts=_TABLE.c.attempts + 1,
        status=bindparam("new_status"),
        last_error=bindparam("error"),
        next_attempt_at=bindparam("retry_at"),
    )
    .returning(*_TABLE.c)
)


def _bind(factory: sessionmaker[Session]) -> Engine:
    bind = factory.kw.get("bind")
    if not isinstance(bind, Engine):
        raise TypeError("the session factory must be bound to an Engine")
    return bind


def _detached(row: Any) -> OutboxEmail:
    return OutboxEmail(**dict(row._mapping))


def queue_email(
    factory: sessionmaker[Session],
    key: str,
    email: Email,
    *,
    sender: str,
    run_id: str | None = None,
) -> OutboxEmail:
    """Write the message to the outbox (or return the one already there under ``key``)."""
    values = outbox_values(key, email, sender=sender, run_id=run_id)
    bind = _bind(factory)
    with autocommit(bind) as conn:
        row = conn.execute(_INSERT_IGNORE[bind.dialect.name], values).first()
        if row is None:
            row = conn.execute(_SELECT_BY_KEY, {"key": key}).one()
    return _detached(row)


def build_message(row: OutboxEmail) -> Message:
    """The MIME message of an outbox row, encoded as ``EmailMessage`` would (7bit, 8bit or
    quoted-printable; RFC 2047 headers) but built with the compat32 classes, ten times cheaper."""
    headers = row.headers or {}
    text = _text_part(row.body_text, "plain")
    message: Message
    if row.body_html:
        message = MIMEMultipart("alternative")
        message.attach(text)
        message.attach(_text_part(row.body_html, "html"))
    else:
        message = text
    message["From"] = _addresses(row.sender)
    message["To"] = _addresses(", ".join(headers.get("to") or row.recipients))
    if headers.get("cc"):
        message["Cc"] = _addresses(", ".join(headers["cc"]))
    if headers.get("reply_to"):
        message["Reply-To"] = _addresses(headers["reply_to"])
    message["Subject"] = _header(row.subject)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = row.message_id or message_id_for(row.idempotency_key, row.sender)
    return message


_UTF8_8BIT = Charset("utf-8")
_UTF8_8BIT.body_encoding = None  # type: ignore[assignment]
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
#: Longest line sent unencoded (EmailMessage's default policy).
_MAX_LINE = 78


def _text_part(body: str, subtype: str) -> MIMEText:
    if not body.endswith("\n"):
        body += "\n"
    short = max((len(line) for line in body.splitlines()), default=0) <= _MAX_LINE
    if short and body.isascii():
        return MIMEText(body, subtype, "us-ascii")
    return MIMEText(body, subtype, _UTF8_8BIT if short else _UTF8_QP)  # type: ignore[arg-type]


def _header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


def _addresses(value: str) -> str:
    """An address header: only the display names are RFC 2047-encoded, never the addresses
    (an encoded ``<addr>`` is no address to a mail client)."""
    if value.isascii():
        return value
    return ", ".join(formataddr(pair, charset="utf-8") for pair in getaddresses([value]))


#: SMTP connections open at once per server (and process).
SMTP_CONNECTIONS = 8

# SMTP conversations get threads of their own, as many as the pool has connections: a slow
# mail server then delays mail only, never the engine's database work, whose threads are few.
_SMTP_EXECUTOR = ThreadPoolExecutor(
    max_workers=SMTP_CONNECTIONS, thread_name_prefix="qualflow-smtp"
)


async def in_smtp_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work that talks SMTP (and records the outcome) on the SMTP threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_SMTP_EXECUTOR, functools.partial(function, *args, **kwargs))


class SmtpPool:
    """Open SMTP connections reused across messages (connect + EHLO + login cost more than a
    message). A connection that fails is discarded; the message is retried on a fresh one.

    At most ``size`` connections are open at once: a sender beyond that waits for one to be
    free instead of opening (and closing) a connection of its own, which under a burst of
    concurrent runs made about one message in four pay for a new connection; SMTP servers also
    limit the connections of one client."""

    def __init__(self, settings: SmtpSettings, *, size: int = SMTP_CONNECTIONS) -> None:
        self.settings = settings
        self.size = size
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)

    def _open(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.settings.host, self.settings.port, timeout=self.settings.timeout)
        try:
            if self.settings.starttls:
                try:
                    smtp.starttls(context=ssl.create_default_context())
                except smtplib.SMTPNotSupportedError:
                    raise SmtpSettingsMismatch(
                        f"the SMTP server {self.settings.host}:{self.settings.port} does not "
                        "offer STARTTLS: turn QUALFLOW_SMTP_STARTTLS off, or use its "
                        "submission port"
                    ) from None
            if self.settings.username:
                try:
                    smtp.login(self.settings.username, self.settings.password or "")
                except smtplib.SMTPNotSupportedError:
                    raise SmtpSettingsMismatch(
                        f"the SMTP server {self.settings.host}:{self.settings.port} does not "
                        "offer a login: unset QUALFLOW_SMTP_USERNAME and QUALFLOW_SMTP_PASSWORD, "
                        "or turn QUALFLOW_SMTP_STARTTLS on (many servers offer it only then)"
                    ) from None
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: Message, sender: str, recipients: list[str]) -> Refused:
        """Send; returns the recipients the server refused while accepting the others."""
        # A stuck conversation ends at its socket timeout, so a slot frees up within about one.
        if not self._slots.acquire(timeout=2 * self.settings.timeout):
            raise TimeoutError(f"all {self.size} SMTP connections stayed busy")
        try:
            return self._send(message, sender, recipients)
        finally:
            self._slots.release()

    def _send(self, message: Message, sender: str, recipients: list[str]) -> Refused:
        with self._lock:
            smtp = self._idle.pop() if self._idle else None
        fresh = smtp is None
        if smtp is None:
            smtp = self._open()
        try:
            refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            smtp.close()
            if fresh:
                raise
            # The server closed an idle connection: one more try on a new one.
            log.debug("pooled SMTP connection was dropped (%s); reconnecting", exc)
            smtp = self._open()
            try:
                refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPResponseException:
            # The transaction failed but the connection is usable once reset.
            try:
                smtp.rset()
            except (smtplib.SMTPException, OSError):
                smtp.close()
                raise
            self._release(smtp)
            raise
        except BaseException:
            smtp.close()
            raise
        self._release(smtp)
        return refused

    def _release(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append(smtp)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


_pools: dict[SmtpSettings, SmtpPool] = {}
_pools_lock = threading.Lock()


def pool_for(settings: SmtpSettings) -> SmtpPool:
    with _pools_lock:
        pool = _pools.get(settings)
        if pool is None:
            pool = _pools[settings] = SmtpPool(settings)
        return pool


def send_blocking(settings: SmtpSettings, row: OutboxEmail) -> str | None:
    """Send a queued row on a pooled SMTP connection without touching the database (the caller
    records the outcome); raises ``EmailError``. Returns, when the server accepted the message
    for some recipients only, a note naming the others (kept as the sent row's last error)."""
    message = build_message(row)
    try:
        refused = pool_for(settings).send(message, row.sender, list(row.recipients))
    except smtplib.SMTPRecipientsRefused as exc:
        raise EmailError(
            f"every recipient was refused: {exc.recipients}", retriable=False
        ) from None
    except SmtpSettingsMismatch as exc:
        # Kept pending: once the settings are corrected the message still goes out.
        raise EmailError(str(exc), retriable=True) from None
    except smtplib.SMTPAuthenticationError as exc:
        # A 4xx (454 "temporary authentication failure": a busy or throttling provider) passes.
        raise EmailError(
            f"SMTP authentication failed ({exc.smtp_code})",
            retriable=400 <= exc.smtp_code < 500,
        ) from None
    except smtplib.SMTPResponseException as exc:
        # 5xx replies are permanent by definition; 4xx are transient, and so is a reply whose
        # code cannot be read (smtplib's -1: a garbled line, most likely a passing fault).
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        raise EmailError(
            f"SMTP server answered {exc.smtp_code} {text}".strip(),
            retriable=not 500 <= exc.smtp_code < 600,
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise EmailError(
            f"SMTP delivery failed: {type(exc).__name__}: {exc}", retriable=True
        ) from None
    return _refused_note(refused)


def _refused_note(refused: Refused) -> str | None:
    if not refused:
        return None
    each = "; ".join(
        f"{address} ({code} {reply.decode(errors='replace')})"
        for address, (code, reply) in refused.items()
    )
    return f"sent, but the SMTP server refused these recipients: {each}"[:2000]


def _load(factory: sessionmaker[Session], email_id: int) -> OutboxEmail:
    with _bind(factory).connect() as conn:
        row = conn.execute(_SELECT_BY_ID, {"email_id": email_id}).first()
    if row is None:
        raise EmailError(f"outbox email {email_id} does not exist", retriable=False)
    return _detached(row)


def send_now(
    factory: sessionmaker[Session], settings: SmtpSettings, email: OutboxEmail | int
) -> OutboxEmail:
    """Blocking :func:`send_queued` (call it from a worker thread)."""
    row = _load(factory, email) if isinstance(email, int) else email
    if row.status == "sent":
        return row
    note = _send_recording_failure(factory, settings, row)
    return _record_attempt(factory, row, error=None, retriable=False, note=note)


def _send_recording_failure(
    factory: sessionmaker[Session], settings: SmtpSettings, row: OutboxEmail
) -> str | None:
    try:
        return send_blocking(settings, row)
    except EmailError as exc:
        _record_attempt(factory, row, error=str(exc), retriable=exc.retriable)
        raise


async def send_queued(
    factory: sessionmaker[Session], settings: SmtpSettings, email: OutboxEmail | int
) -> OutboxEmail:
    """Send one outbox message unless it was sent already; records the attempt either way."""
    return await in_smtp_thread(send_now, factory, settings, email)


def deliver_unrecorded(
    factory: sessionmaker[Session],
    settings: SmtpSettings,
    key: str,
    email: Email,
    *,
    run_id: str | None = None,
) -> tuple[OutboxEmail, dict[str, Any] | None]:
    """Queue under ``key`` (or find the message queued there) and send it unless it was sent;
    blocking, call it from a worker thread. A failed attempt is recorded here; a success is
    left for the caller to record with its own writes: returns the row and the parameters of
    :data:`RECORD_SENT` (None when the row had been sent before)."""
    row = queue_email(factory, key, email, sender=settings.sender, run_id=run_id)
    if row.status == "sent":
        return row, None
    note = _send_recording_failure(factory, settings, row)
    return row, {"email_id": row.id, "now": utcnow(), "note": note}


def _record_attempt(
    factory: sessionmaker[Session],
    row: OutboxEmail,
    *,
    error: str | None,
    retriable: bool,
    note: str | None = None,
) -> OutboxEmail:
    """Count the attempt on the row (one UPDATE) and return the row as it now is."""
    now = utcnow()
    attempts = (row.attempts or 0) + 1
    with _bind(factory).begin() as conn:
        if error is None:
            fresh = conn.execute(_MARK_SENT, {"email_id": row.id, "now": now, "note": note}).one()
        else:
            fresh = conn.execute(
                _MARK_FAILED,
                {
                    "email_id": row.id,
                    "new_status": "pending" if retriable else "failed",
                    "error": error[:2000],
                    "retry_at": now + timedelta(seconds=min(30 * 2**attempts, 3600)),
                },
            ).one()
    return _detached(fresh)


async def drain_outbox(
    factory: sessionmaker[Session],
    settings: SmtpSettings,
    *,
    limit: int = 100,
    key_prefix: str | None = None,
) -> int:
    """Send due pending messages (e.g. queued outside a run), only those whose idempotency key
    starts with ``key_prefix`` when given; returns how many were sent. A failed one stays
    pending, retried after the outbox's backoff."""
    due_now = select(OutboxEmail.id).where(
        OutboxEmail.status == "pending", OutboxEmail.next_attempt_at <= utcnow()
    )
    if key_prefix is not None:
        due_now = due_now.where(OutboxEmail.idempotency_key.startswith(key_prefix))
    with factory() as session:
        due = list(session.scalars(due_now.order_by(OutboxEmail.id).limit(limit)))
    sent = 0
    for email_id in due:
        try:
            await send_queued(factory, settings, email_id)
            sent += 1
        except EmailError as exc:
            log.warning("outbox message %s not sent yet: %s", email_id, exc)
    return sent


def close_pools() -> None:
    """Close every pooled SMTP connection (at engine shutdown)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()
