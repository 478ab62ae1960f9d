"""The configuration review of an incentive: is everything in place to pay the right people?

It gathers, per automation that rewards with this incentive: the survey, where the email comes
from (and whether a respondent can finish without giving one), whether Qualtrics' fraud
detection feeds the enabled rules, and whether the survey is answered by anonymous link.
Then the provider's health (balance, stock, key), the limits and the fraud rules. Problems
are ``warnings`` in plain words; nothing here changes anything.

A survey's own anonymous link is not a distribution: Qualtrics only shows it in the
responses, whose ``distributionChannel`` is ``anonymous``. So the review reads the channel
of a small sample of recent responses besides the distributions, and says "unknown"
(``anonymous_link`` None) when neither can tell.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session, sessionmaker

from qualflow.engine.models import Automation, AutomationVersion
from qualflow.incentives.models import Incentive
from qualflow.incentives.money import format_money
from qualflow.incentives.providers import ProviderHealth
from qualflow.incentives.schemas import FraudRules
from qualflow.incentives.service import incentive_reference
from qualflow.qualtrics.models import ExportOptions

if TYPE_CHECKING:
    from qualflow.incentives.runtime import IncentivesRuntime

ACTION = "incentives.send_reward"
ANONYMOUS_WARNING = (
    "the survey is distributed by anonymous link: anyone with the link can answer and claim a "
    "reward; send incentive surveys to known people only (personal links, panels)"
)
#: The response sample: a window recent enough to reflect how the survey is fielded now, and
#: a size that answers in seconds whatever the survey's size.
SAMPLE_DAYS = 90
SAMPLE_SIZE = 200
SAMPLE_TIMEOUT = 30.0
#: Channels of the survey's owners trying it out: they say nothing about how respondents come.
_OWNER_CHANNELS = frozenset({"preview", "test"})


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
    anonymous_link_basis: str | None = None
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
    """Automations whose current version pays ``reference`` with an ``incentives.send_reward``.

    The database keeps only the current definitions whose text mentions the reference id in
    any case (as a step may hold it as typed, ``inc-7f3k2q``), on SQLite and PostgreSQL alike;
    the exact check below then decides, so the answer is the one every definition would give."""
    found: list[AutomationReview] = []
    mentions = func.lower(cast(AutomationVersion.definition, Text)).contains(
        reference.lower(), autoescape=True
    )
    with factory() as session:
        rows = session.execute(
            select(Automation, AutomationVersion.definition)
            .join(
                AutomationVersion,
                (AutomationVersion.automation_id == Automation.id)
                & (AutomationVersion.version == Automation.version),
            )
            .where(mentions)
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
    """Fill ``review`` from the survey's definition, distributions and a sample of recent
    responses (read-only calls)."""
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
    await _inspect_anonymous_link(review, client, survey_id)


async def recent_channels(client: Any, survey_id: str) -> list[str]:
    """The ``distributionChannel`` of up to :data:`SAMPLE_SIZE` responses recorded in the last
    :data:`SAMPLE_DAYS` days (an export of that one column, never of the whole survey)."""
    options = ExportOptions(
        format="json",
        compress=False,
        start_date=datetime.now(UTC) - timedelta(days=SAMPLE_DAYS),
        limit=SAMPLE_SIZE,
        survey_metadata_ids=["distributionChannel"],
        question_ids=[],
        embedded_data_ids=[],
    )
    with tempfile.TemporaryDirectory(prefix="qualflow-review-") as folder:
        done = await client.exports.run(
            survey_id,
            options,
            dest=Path(folder) / "sample.json",
            poll_interval=0.5,
            max_poll_interval=2.0,
            timeout=SAMPLE_TIMEOUT,
        )
        text = await asyncio.to_thread(done.path.read_text, encoding="utf-8")
    responses = json.loads(text).get("responses") or []
    return [
        str((r.get("values") or {}).get("distributionChannel") or "").strip().lower()
        for r in responses
        if isinstance(r, dict)
    ]


async def _inspect_anonymous_link(review: AutomationReview, client: Any, survey_id: str) -> None:
    by_distribution: bool | None
    try:
        distributions = await client.distributions.list(survey_id, limit=200)
    except Exception as exc:
        review.warnings.append(f"could not list the survey's distributions: {exc}")
        by_distribution = None
    else:
        by_distribution = any(
            (getattr(d.survey_link, "link_type", None) or "").lower() == "anonymous"
            for d in distributions
        )
    by_response: bool | None = None
    try:
        channels = await recent_channels(client, survey_id)
    except Exception as exc:  # e.g. no permission to download responses
        review.warnings.append(
            f"could not read the survey's recent responses to tell whether it is answered by "
            f"anonymous link: {exc}"
        )
        response_basis = f"recent responses could not be read ({exc})"
    else:
        respondents = [c for c in channels if c and c not in _OWNER_CHANNELS]
        anonymous = sum(c == "anonymous" for c in respondents)
        if anonymous:
            by_response = True
            response_basis = (
                f"{anonymous} of the {len(respondents)} responses sampled from the last "
                f"{SAMPLE_DAYS} days came by the anonymous link"
            )
        elif respondents:
            by_response = False
            response_basis = (
                f"none of the {len(respondents)} responses sampled from the last {SAMPLE_DAYS} "
                "days came by the anonymous link"
            )
        else:
            response_basis = f"no responses in the last {SAMPLE_DAYS} days to tell from"
    if by_response or by_distribution:
        review.anonymous_link = True
        review.anonymous_link_basis = (
            response_basis if by_response else "a distribution of the survey is an anonymous link"
        )
        review.warnings.append(ANONYMOUS_WARNING)
    elif by_response is False and by_distribution is False:
        review.anonymous_link = False
        review.anonymous_link_basis = response_basis
    else:
        review.anonymous_link = None
        review.anonymous_link_basis = response_basis + (
            "; the distributions could not be listed" if by_distribution is None else ""
        )


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


async def load_review(runtime: IncentivesRuntime, reference_id: str) -> Review:
    """The configuration review of the incentive ``reference_id``, or
    :class:`~qualflow.incentives.service.IncentiveNotFound` when there is none (REST answers it
    as a 404, the command line as one line)."""
    incentive = await asyncio.to_thread(runtime.manager.get, incentive_reference(reference_id))
    health = await runtime.manager.health(incentive)
    return await review_incentive(
        incentive, factory=runtime.factory, health=health, client_for_connection=runtime.open_client
    )


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
