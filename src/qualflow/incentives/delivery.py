"""The reward email: the incentive's template rendered for one respondent, sent via the outbox.

The outbox row is keyed by the reward (``reward:RW-…``), so a retried or recovered send finds
the message it already queued and never mails the respondent twice once it was accepted.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from qualflow.engine.errors import FatalError
from qualflow.incentives.money import format_money, from_minor
from qualflow.incentives.providers.base import Delivery
from qualflow.notify.email import (
    Email,
    SmtpSettings,
    queue_email,
    send_queued,
)
from qualflow.notify.models import OutboxEmail
from qualflow.store.db import session_scope


class TemplateRenderError(FatalError):
    """An incentive's email template failed while rendering one reward's email (its syntax is
    checked when it is saved, but an expression can still fail: ``{{ 1 // 0 }}``)."""


@dataclass(frozen=True)
class EmailTemplate:
    subject: str
    body: str
    redemption_instructions: str
    incentive_name: str
    incentive_reference: str
    reward_name: str


def template_namespace(
    template: EmailTemplate,
    *,
    reward_reference: str,
    email: str,
    first_name: str | None,
    amount_minor: int,
    currency: str,
    delivery: Delivery,
) -> dict[str, Any]:
    """The names an incentive's email template can use (see ``TEMPLATE_VARIABLES``)."""
    reward_name = template.reward_name or delivery.reward_name
    value = format_money(amount_minor, currency)
    credentials = [c.as_dict() for c in delivery.credentials]
    # The incentive's own instructions win over the provider's generic ones.
    instructions = template.redemption_instructions or delivery.redemption_instructions
    return {
        "first_name": (first_name or "").strip(),
        "email": email,
        "reward": f"{value} {reward_name}".strip() if reward_name else value,
        "reward_name": reward_name,
        "amount": str(from_minor(amount_minor, currency)),
        "currency": currency,
        "credentials": credentials,
        "code": credentials[0]["value"] if credentials else "",
        "redemption_instructions": instructions,
        "incentive_name": template.incentive_name,
        "incentive_reference": template.incentive_reference,
        "reward_reference": reward_reference,
    }


# The same sandbox rules as the engine's templates; compiled once per source, since every
# reward renders the same few templates.
_env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return _env.from_string(source)


def _render(source: str, namespace: dict[str, Any]) -> str:
    if "{{" not in source and "{%" not in source:
        return source
    try:
        return _compiled(source).render(**namespace)
    except Exception as exc:  # an expression may raise anything Python can (1 // 0)
        raise TemplateRenderError(f"template error: {exc}") from None


def render_email(template: EmailTemplate, to: str, namespace: dict[str, Any]) -> Email:
    subject = " ".join(_render(template.subject, namespace).split())[:998]
    instructions = namespace.get("redemption_instructions") or ""
    if instructions:
        namespace = {**namespace, "redemption_instructions": _render(instructions, namespace)}
    return Email(to=[to], subject=subject, text=_render(template.body, namespace))


async def send_email(
    factory: sessionmaker[Session], smtp: SmtpSettings, key: str, email: Email
) -> OutboxEmail:
    """Queue (idempotently, under ``key``) and send; raises ``EmailError`` when sending fails."""
    row = await asyncio.to_thread(queue_email, factory, key, email, sender=smtp.sender)
    return await send_queued(factory, smtp, row.id)


def record_outbox_failure(
    factory: sessionmaker[Session], email_id: int, *, error: str, retriable: bool
) -> None:
    """Count a failed send of a queued message (blocking); a retriable one stays pending."""
    with session_scope(factory) as session:
        session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == email_id)
            .values(
                attempts=OutboxEmail.attempts + 1,
                status="pending" if retriable else "failed",
                last_error=error[:2000],
            )
            .execution_options(synchronize_session=False)
        )
