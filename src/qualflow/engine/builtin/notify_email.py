"""``notify.email``: send a templated email through the outbox."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from qualflow.engine.actions import ActionContext, action
from qualflow.engine.errors import FatalError, RetriableError
from qualflow.engine.templates import check_template, render
from qualflow.notify.email import (
    RECORD_SENT,
    Email,
    EmailError,
    SmtpSettings,
    check_address,
    deliver_unrecorded,
    in_smtp_thread,
)


class EmailConfig(BaseModel):
    to: list[str] = Field(
        min_length=1,
        description="Recipients; each may be a template, e.g. '{{ values.QID5_TEXT }}'.",
        examples=[["cx-team@example.org"]],
    )
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    reply_to: str | None = None
    subject: str = Field(
        min_length=1, max_length=998, examples=["New response {{ response.responseId }}"]
    )
    body: str = Field(min_length=1, description="Plain-text body template.")
    html: str | None = Field(default=None, description="Optional HTML body template (escaped).")

    @field_validator("to", "cc", "bcc")
    @classmethod
    def _check_recipients(cls, values: list[str]) -> list[str]:
        for value in values:
            check_template(value)
            if "{{" not in value and "{%" not in value:
                check_address(value)
        return values

    @field_validator("subject", "body", "html", "reply_to")
    @classmethod
    def _check_templates(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)


def smtp_settings(ctx: ActionContext) -> SmtpSettings:
    settings = ctx.services.extras.get("smtp")
    if not isinstance(settings, SmtpSettings):
        raise FatalError("email is not configured: set QUALFLOW_SMTP_HOST")
    return settings


def _recipients(templates: list[str], ns: dict[str, Any]) -> list[str]:
    addresses: list[str] = []
    for template in templates:
        for part in render(template, ns).replace(";", ",").split(","):
            if part.strip():
                try:
                    addresses.append(check_address(part))
                except ValueError as exc:
                    raise FatalError(f"recipient {template!r}: {exc}") from None
    return addresses


@action("notify.email", config=EmailConfig)
async def notify_email(ctx: ActionContext, config: EmailConfig) -> dict[str, Any]:
    """Send an email; SMTP 4xx and connection problems are retried, 5xx fail the run."""
    settings = smtp_settings(ctx)
    ns = ctx.namespace()
    to = _recipients(config.to, ns)
    if not to:
        raise FatalError("the email has no recipient after rendering the templates")
    email = Email(
        to=to,
        cc=tuple(_recipients(config.cc, ns)),
        bcc=tuple(_recipients(config.bcc, ns)),
        reply_to=render(config.reply_to, ns) if config.reply_to else None,
        subject=" ".join(render(config.subject, ns).split())[:998],
        text=render(config.body, ns),
        html=render(config.html, ns, html=True) if config.html else None,
    )
    try:
        # Queue (or find) it in the outbox, send it unless it was sent: one worker thread.
        row, sent = await in_smtp_thread(
            deliver_unrecorded,
            ctx.services.sessionmaker,
            settings,
            ctx.idempotency_key,
            email,
            run_id=ctx.run_id,
        )
    except EmailError as exc:
        if exc.retriable:
            raise RetriableError(str(exc)) from None
        raise FatalError(str(exc)) from None
    if sent is not None:
        # Marked sent with the step's own row: one commit fewer per email.
        ctx.write_with_step(RECORD_SENT, sent)
    return {"outbox_id": row.id, "to": to, "subject": email.subject, "message_id": row.message_id}
