"""``incentives.send_reward``: the automation step that rewards the respondent of a response.

Where the email comes from is part of the step's config: a question (its QID), an embedded-data
field, or the recipient email of a personal distribution link. The response is the one an
earlier ``qualtrics.get_response`` step fetched, else this step fetches it itself.

Outcomes, as the run history shows them:

* no (valid) email → the step fails: "this response has no respondent email: …";
* the email or response was rewarded already → the step is skipped: "already rewarded as RW-…";
* a fraud rule, the review mode or a limit holds the reward → the step succeeds with status
  ``held`` and the reasons (the reward waits in the review queue, never dropped);
* otherwise the reward is paid and emailed (status ``sent``), or ``ordered`` when it is paid by
  hand or its email waits (for email settings, or for the mail server to take it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from qualflow.engine.actions import ActionContext, action
from qualflow.engine.errors import FatalError, RetriableError, SkipStep
from qualflow.engine.services import EngineServices
from qualflow.incentives.emails import NO_EMAIL_MESSAGE
from qualflow.incentives.ids import INCENTIVE_ID_PATTERN, normalize_reference
from qualflow.incentives.lifecycle import describe
from qualflow.incentives.models import Reward
from qualflow.incentives.providers import ProviderContext
from qualflow.incentives.schemas import FraudRules
from qualflow.incentives.service import (
    IncentiveNotFound,
    RewardFailed,
    RewardRequestIn,
    RewardRetry,
    RewardService,
    in_db_thread,
)
from qualflow.notify.email import SmtpSettings

EmailSource = Literal["question", "embedded_data", "recipient_email"]


class SendRewardConfig(BaseModel):
    """Which incentive pays, and where the respondent's email and first name are found."""

    incentive: str = Field(
        description="The incentive's reference id, as shown on its page.",
        examples=["INC-7F3K2Q"],
        json_schema_extra={"x-suggest": "incentives"},
    )
    email_source: EmailSource = Field(
        default="question",
        description="question: the answer to a question (give its QID); embedded_data: an "
        "embedded-data field (give its name); recipient_email: the contact's email of a "
        "personal distribution link.",
    )
    email_field: str | None = Field(
        default=None,
        max_length=200,
        description="The email question's QID (e.g. QID7) or the embedded-data field name.",
        examples=["QID7"],
    )
    first_name_field: str | None = Field(
        default=None,
        max_length=200,
        description="QID or embedded-data field with the first name (default: the recipient's "
        "first name, when the link was personal).",
    )

    @field_validator("incentive")
    @classmethod
    def _check_incentive(cls, value: str) -> str:
        reference = normalize_reference(value)
        if not INCENTIVE_ID_PATTERN.match(reference):
            raise ValueError(f"{value!r} is not an incentive reference id (like INC-7F3K2Q)")
        return reference

    @model_validator(mode="after")
    def _check_field(self) -> SendRewardConfig:
        if self.email_source != "recipient_email" and not (self.email_field or "").strip():
            raise ValueError(f"email_field is required when email_source is {self.email_source}")
        return self


def field_value(values: dict[str, Any], name: str) -> Any:
    """A question's answer or an embedded-data field by name (``QID7`` finds ``QID7_TEXT``)."""
    name = name.strip()
    for key in (name, f"{name}_TEXT"):
        value = values.get(key)
        if value not in (None, ""):
            return value
    return None


def extract_email(values: dict[str, Any], config: SendRewardConfig) -> Any:
    if config.email_source == "recipient_email":
        return values.get("recipientEmail")
    return field_value(values, config.email_field or "")


def extract_first_name(values: dict[str, Any], config: SendRewardConfig) -> str | None:
    value = (
        field_value(values, config.first_name_field)
        if config.first_name_field
        else values.get("recipientFirstName")
    )
    return str(value).strip() or None if value not in (None, "") else None


def ip_address_of(values: dict[str, Any]) -> str | None:
    """The respondent's IP address among a response's values (``ipAddress``), if recorded."""
    value = values.get("ipAddress")
    return str(value) if value else None


def participant_id(
    values: dict[str, Any], rules: FraudRules, trigger: dict[str, Any]
) -> str | None:
    if rules.participant_id_field:
        value = field_value(values, rules.participant_id_field)
        if value not in (None, ""):
            return str(value)
    for value in (values.get("externalDataReference"), trigger.get("recipient_id")):
        if value not in (None, ""):
            return str(value)
    return None


def service_for(services: EngineServices) -> RewardService:
    """The reward service of a running engine (SMTP and transports come from its extras)."""
    cached = services.extras.get("incentives.service")
    if isinstance(cached, RewardService):
        return cached
    smtp = services.extras.get("smtp")
    service = RewardService(
        services.sessionmaker,
        providers=ProviderContext(
            sessionmaker=services.sessionmaker,
            tango_transport=services.extras.get("tango_transport"),
            tango_interval=float(services.extras.get("tango_interval", 1.1)),
            tango_backoff=float(services.extras.get("tango_backoff", 1.0)),
        ),
        smtp=smtp if isinstance(smtp, SmtpSettings) else None,
    )
    services.extras["incentives.service"] = service
    return service


async def _response(ctx: ActionContext) -> dict[str, Any] | None:
    """The response of the run: fetched by an earlier step, or fetched now."""
    if ctx.response is not None:
        return ctx.response
    survey_id, response_id = ctx.trigger.get("survey_id"), ctx.trigger.get("response_id")
    if not survey_id or not response_id or ctx.connection_id is None:
        return None
    # Imported here: the response fetcher brings in the workflow runtime.
    from qualflow.engine.responses import parse_recorded

    client = await ctx.qualtrics()
    payload: dict[str, Any] = await ctx.services.response_fetcher.get(
        client,
        ctx.connection_id,
        str(survey_id),
        str(response_id),
        parse_recorded(ctx.trigger.get("recorded_at")),
    )
    return payload


def _output(reward: Reward, outcome: str) -> dict[str, Any]:
    return {
        # The run page shows it on the step: "held for review: …" should not hide behind a
        # "succeeded" step.
        "summary": f"{reward.reference_id} {describe(reward)}",
        "reward": reward.reference_id,
        "status": reward.status,
        "outcome": outcome,
        "reasons": list(reward.reasons or []),
        "warnings": list(reward.warnings or []),
        "provider": reward.provider,
        "delivery": reward.delivery_hint,
    }


@action("incentives.send_reward", config=SendRewardConfig)
async def send_reward(ctx: ActionContext, config: SendRewardConfig) -> dict[str, Any]:
    """Reward the respondent: one reward per email and response, fraud held for review."""
    response = await _response(ctx)
    values: dict[str, Any] = dict((response or {}).get("values") or {})
    if response is None:
        # Not a survey-response run (e.g. a JSON event): its fields stand in for the values.
        values = dict(ctx.trigger.get("fields") or ctx.trigger.get("data") or {})
    service = service_for(ctx.services)

    try:
        fraud_rules = service.cached_fraud_rules(config.incentive)
        if fraud_rules is None:
            fraud_rules = await in_db_thread(service.fraud_rules, config.incentive)
    except IncentiveNotFound as exc:
        raise FatalError(str(exc)) from None
    request = RewardRequestIn(
        incentive_reference=config.incentive,
        email=extract_email(values, config),
        first_name=extract_first_name(values, config),
        source="automation",
        requested_by=f"automation {ctx.automation_name!r} (run {ctx.run_id})",
        request_key=f"run:{ctx.idempotency_key}",
        response_id=(response or {}).get("responseId") or ctx.trigger.get("response_id"),
        survey_id=ctx.trigger.get("survey_id") or (response or {}).get("surveyId"),
        participant_id=participant_id(values, fraud_rules, ctx.trigger),
        ip_address=ip_address_of(values),
        run_id=ctx.run_id,
        response_values=values,
        values_origin="response" if response is not None else "event",
    )
    try:
        submission = await in_db_thread(service.submit, request, lease_owner=ctx.idempotency_key)
    except IncentiveNotFound as exc:
        raise FatalError(str(exc)) from None
    if submission.outcome == "rejected":
        raise FatalError(NO_EMAIL_MESSAGE)
    if submission.outcome == "duplicate":
        raise SkipStep(submission.message)
    reward = submission.reward
    assert reward is not None
    if reward.status in ("approved", "ordered"):
        try:
            fulfilled = await service.fulfil(
                reward.id, owner=ctx.idempotency_key, submitted=submission
            )
        except RewardRetry as exc:
            raise RetriableError(exc.reason, retry_after=exc.retry_after) from None
        except RewardFailed as exc:
            raise FatalError(exc.reason) from None
        if fulfilled is None:
            # Another process holds it (e.g. a reviewer's release); it finishes it.
            return _output(reward, submission.outcome) | {"note": "being paid by another worker"}
        reward = fulfilled
    return _output(reward, submission.outcome)
