"""The configuration review of an incentive: is everything in place to pay the right people?

It gathers, per automation that rewards with this incentive: the survey, where the email comes
from (and whether a respondent can finish without giving one), whether Qualtrics' fraud
detection feeds the enabled rules, and whether the survey is distributed by anonymous link.
Then the provider's health (balance, stock, key), the limits and the fraud rules. Problems
are ``warnings`` in plain words; nothing here changes anything.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qualflow.engine.models import Automation, AutomationVersion
from qualflow.incentives.models import Incentive
from qualflow.incentives.money import format_money
from qualflow.incentives.providers import ProviderHealth
from qualflow.incentives.schemas import FraudRules

ACTION = "incentives.send_reward"
ANONYMOUS_WARNING = (
    "the survey is distributed by anonymous link: anyone with the link can answer and claim a "
    "reward; send incentive surveys to known people only (personal links, panels)"
)


@dataclass
class AutomationReview:
    automation_id: int
    name: str
    enabled: bool
    survey_id: str | None
    connection_id: int | None
    email_source: str
    email_field: str | None
    first_name_field: str | None = None
    survey_name: str | None = None
    email_question: str | None = None
    email_required: bool | None = None
    fraud_detection: dict[str, bool] = field(default_factory=dict)
    anonymous_link: bool | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Review:
    incentive: Incentive
    provider: ProviderHealth
    automations: list[AutomationReview]
    limits: dict[str, Any]
    fraud_rules: list[str]
    warnings: list[str]


def automations_using(factory: sessionmaker[Session], reference: str) -> list[AutomationReview]:
    """Automations whose current version pays ``reference`` with an ``incentives.send_reward``."""
    found: list[AutomationReview] = []
    with factory() as session:
        rows = session.execute(
            select(Automation, AutomationVersion.definition).join(
                AutomationVersion,
                (AutomationVersion.automation_id == Automation.id)
                & (AutomationVersion.version == Automation.version),
            )
        ).all()
    for automation, definition in rows:
        trigger = definition.get("trigger") or {}
        for step in definition.get("steps") or []:
            config = step.get("config") or {}
            if step.get("action") != ACTION:
                continue
            if str(config.get("incentive", "")).strip().upper() != reference:
                continue
            found.append(
                AutomationReview(
                    automation_id=automation.id,
                    name=automation.name,
                    enabled=automation.enabled,
                    survey_id=trigger.get("survey_id"),
                    connection_id=definition.get("connection_id") or automation.connection_id,
                    email_source=str(config.get("email_source") or "question"),
                    email_field=config.get("email_field"),
                    first_name_field=config.get("first_name_field"),
                )
            )
    return found


def _validation_settings(question: Any) -> dict[str, Any]:
    validation = question.validation or {}
    settings = validation.get("Settings") if isinstance(validation, dict) else None
    return settings if isinstance(settings, dict) else {}


def _declared_embedded_fields(flow: Any) -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("Type") == "EmbeddedData":
                for item in node.get("EmbeddedData") or []:
                    if isinstance(item, dict) and item.get("Field"):
                        names.add(str(item["Field"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(flow)
    return names


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


async def inspect_survey(review: AutomationReview, client: Any, rules: FraudRules) -> None:
    """Fill ``review`` from the survey's definition and distributions (read-only calls)."""
    survey_id = review.survey_id
    if not survey_id:
        review.warnings.append(
            "the automation is not triggered by survey responses, so no survey can be checked"
        )
        return
    try:
        definition = await client.survey_definitions.get(survey_id)
    except Exception as exc:  # any Qualtrics failure is reported, not raised
        review.warnings.append(f"could not read survey {survey_id}: {exc}")
        return
    review.survey_name = definition.survey_name
    options = definition.survey_options or {}
    review.fraud_detection = {
        "recaptcha": _truthy(options.get("RecaptchaV3")),
        "relevant_id": _truthy(options.get("RelevantID")),
        "ballot_box_stuffing": _truthy(options.get("BallotBoxStuffingPrevention")),
    }
    if review.email_source == "question":
        qid = (review.email_field or "").strip()
        question = definition.questions.get(qid)
        if question is None:
            review.warnings.append(f"{qid or 'the email question'} is not a question of the survey")
        else:
            settings = _validation_settings(question)
            review.email_question = question.question_text
            # "REQUEST" only asks; "ON" forces an answer.
            review.email_required = str(settings.get("ForceResponse", "")).upper() == "ON"
            if not review.email_required:
                review.warnings.append(
                    f"the email question {qid} is optional: respondents can finish the survey "
                    "without an email, and their responses cannot be rewarded (make it required)"
                )
            if question.question_type != "TE":
                review.warnings.append(f"{qid} is not a text-entry question")
            elif settings.get("ContentType") != "ValidEmail":
                review.warnings.append(
                    f"{qid} does not validate email addresses (set its content type to Email)"
                )
    elif review.email_source == "embedded_data":
        name = (review.email_field or "").strip()
        review.email_required = False
        if name not in _declared_embedded_fields(definition.survey_flow):
            review.warnings.append(
                f"embedded-data field {name!r} is not set in the survey flow: responses will "
                "have no email unless the link carries it"
            )
        else:
            review.warnings.append(
                f"the email comes from the embedded-data field {name!r}: a respondent whose "
                "link lacks it can finish without an email and cannot be rewarded"
            )
    else:
        review.email_required = False
        review.warnings.append(
            "the email is the recipient's of a personal distribution link: respondents who "
            "answer by anonymous link have none and cannot be rewarded"
        )
    missing_fields = rules.hold_when_fields_missing
    if rules.recaptcha.enabled and not review.fraud_detection["recaptcha"] and missing_fields:
        review.warnings.append(
            "bot detection (reCAPTCHA) is off in the survey but its rule is on: every reward "
            "will be held for the missing Q_RecaptchaScore"
        )
    relevant_rules = rules.relevant_id_duplicate.enabled or rules.relevant_id_fraud.enabled
    if relevant_rules and not review.fraud_detection["relevant_id"] and missing_fields:
        review.warnings.append(
            "RelevantID is off in the survey but its rules are on: every reward will be held "
            "for the missing RelevantID fields"
        )
    try:
        distributions = await client.distributions.list(survey_id, limit=200)
    except Exception as exc:
        review.warnings.append(f"could not list the survey's distributions: {exc}")
        return
    review.anonymous_link = any(
        (getattr(d.survey_link, "link_type", None) or "").lower() == "anonymous"
        for d in distributions
    )
    if review.anonymous_link:
        review.warnings.append(ANONYMOUS_WARNING)


def describe_rules(rules: FraudRules, approval_mode: str) -> list[str]:
    lines = []
    if rules.recaptcha.enabled:
        lines.append(f"hold when Q_RecaptchaScore < {rules.recaptcha.threshold:g}")
    if rules.relevant_id_duplicate.enabled:
        lines.append(
            "hold when Q_RelevantIDDuplicate is true or Q_RelevantIDDuplicateScore >= "
            f"{rules.relevant_id_duplicate.threshold:g}"
        )
    if rules.relevant_id_fraud.enabled:
        lines.append(f"hold when Q_RelevantIDFraudScore >= {rules.relevant_id_fraud.threshold:g}")
    if rules.ballot_box_stuffing.enabled:
        lines.append("hold when Q_BallotBoxStuffing is set")
    lines.append(
        "hold when a fraud field is missing"
        if rules.hold_when_fields_missing
        else "missing fraud fields are ignored"
    )
    verb = "note" if approval_mode == "automatic" else "hold"
    if rules.shared_email.enabled:
        lines.append(
            f"{verb} when one email was used with more than {rules.shared_email.threshold} "
            "participant ids"
        )
    if rules.shared_ip.enabled:
        lines.append(f"{verb} when more than {rules.shared_ip.threshold} emails came from one IP")
    return lines


def limits_of(incentive: Incentive) -> dict[str, Any]:
    limits: dict[str, Any] = {
        "max_rewards": incentive.max_rewards,
        "committed_rewards": incentive.committed_count,
        "remaining_rewards": (
            max(incentive.max_rewards - incentive.committed_count, 0)
            if incentive.max_rewards is not None
            else None
        ),
        "budget": (
            format_money(incentive.budget_minor, incentive.currency)
            if incentive.budget_minor is not None
            else None
        ),
        "committed_amount": format_money(incentive.committed_minor, incentive.currency),
        "remaining_budget": (
            format_money(
                max(incentive.budget_minor - incentive.committed_minor, 0), incentive.currency
            )
            if incentive.budget_minor is not None
            else None
        ),
        "opens_at": incentive.opens_at,
        "closes_at": incentive.closes_at,
    }
    limits["summary"] = limits_summary(limits)
    return limits


def limits_summary(limits: dict[str, Any]) -> str:
    """E.g. ``3 of 100 rewards committed · 30.00 USD of the 500.00 USD budget · closes …``."""
    count = limits["max_rewards"]
    parts = [
        f"{limits['committed_rewards']} of {count} rewards committed"
        if count is not None
        else f"{limits['committed_rewards']} rewards committed (no limit)",
        f"{limits['committed_amount']} of the {limits['budget']} budget"
        if limits["budget"]
        else f"{limits['committed_amount']} (no budget limit)",
    ]
    for key, verb in (("opens_at", "opens"), ("closes_at", "closes")):
        if limits[key] is not None:
            parts.append(f"{verb} {limits[key]:%Y-%m-%d %H:%M} UTC")
    return " · ".join(parts)


async def review_incentive(
    incentive: Incentive,
    *,
    factory: sessionmaker[Session],
    health: ProviderHealth,
    client_for_connection: Any,
) -> Review:
    """Assemble the review; ``client_for_connection(connection_id)`` returns an async context
    manager yielding a Qualtrics ``AsyncClient`` (or raises)."""
    rules = FraudRules.model_validate(incentive.fraud_rules or {})
    automations = await asyncio.to_thread(automations_using, factory, incentive.reference_id)
    for review in automations:
        if review.connection_id is None:
            review.warnings.append("the automation has no Qualtrics connection")
            continue
        try:
            async with client_for_connection(review.connection_id) as client:
                await inspect_survey(review, client, rules)
        except Exception as exc:
            review.warnings.append(f"could not reach Qualtrics through the connection: {exc}")
        if not review.enabled:
            review.warnings.append("the automation is disabled")
    warnings: list[str] = []
    if not automations:
        warnings.append(
            "no automation rewards with this incentive yet: add an incentives.send_reward step "
            f"with incentive {incentive.reference_id} (or call the platform API)"
        )
    warnings.extend(health.warnings)
    if not health.ok and not health.warnings:
        warnings.append(health.summary)
    limits = limits_of(incentive)
    if limits["remaining_rewards"] == 0:
        warnings.append("the maximum number of rewards is reached: new rewards will be held")
    for review in automations:
        warnings.extend(f"{review.name}: {w}" for w in review.warnings)
    return Review(
        incentive=incentive,
        provider=health,
        automations=automations,
        limits=limits,
        fraud_rules=describe_rules(rules, incentive.approval_mode),
        warnings=warnings,
    )
