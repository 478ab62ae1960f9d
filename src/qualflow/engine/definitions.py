"""Automation definitions: a trigger and ordered steps, validated with pydantic.

A definition is what a user writes (REST body, CLI file, UI form). It is stored as JSON on each
automation version, so a run always knows exactly what it executed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as parse_jsonpath
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qualflow.engine.errors import DefinitionError

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: A JSON event's field names may be spelled as Qualtrics spells its own (Q_RecaptchaScore,
#: firstName): the steps read them under those names, e.g. the reward's fraud rules.
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SurveyResponseTrigger(_Strict):
    """Runs once per response to a survey (completed, and partial ones if asked)."""

    type: Literal["survey_response"] = "survey_response"
    survey_id: str = Field(pattern=r"^SV_[A-Za-z0-9]{4,40}$", examples=["SV_1ZHgwYzcQXcUTHg"])
    include_partial: bool = False
    reconcile_every_minutes: int = Field(
        default=5, ge=1, le=1440, description="How often missed webhooks are looked for."
    )


class JsonEventTrigger(_Strict):
    """Runs once per JSON document POSTed to the automation's inbound URL."""

    type: Literal["json_event"] = "json_event"
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Field name → JSONPath expression evaluated against the posted document.",
        examples=[{"email": "$.customer.email"}],
    )
    auth: Literal["any", "token", "basic"] = Field(
        default="any",
        description="Accept the X-API-TOKEN header, HTTP Basic (username:token), or either.",
    )

    @field_validator("fields")
    @classmethod
    def _check_paths(cls, fields: dict[str, str]) -> dict[str, str]:
        for name, path in fields.items():
            if not _FIELD_NAME.match(name):
                raise ValueError(f"field name {name!r} must match {_FIELD_NAME.pattern}")
            try:
                parse_jsonpath(path)
            except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
                raise ValueError(f"field {name!r}: invalid JSONPath {path!r}: {exc}") from None
        return fields


class ScheduleTrigger(_Strict):
    """Runs on a cron schedule (5 fields, or 6 with seconds first)."""

    type: Literal["schedule"] = "schedule"
    cron: str = Field(examples=["0 8 * * MON-FRI"])
    timezone: str | None = Field(default=None, examples=["Europe/Berlin"])

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, cron: str) -> str:
        cron = " ".join(cron.split())
        with_seconds = len(cron.split()) == 6
        if len(cron.split()) not in (5, 6) or not croniter.is_valid(
            cron, second_at_beginning=with_seconds
        ):
            raise ValueError(f"invalid cron expression {cron!r}")
        try:
            # Valid fields can still name a date no month has (30 February): the scheduler
            # would fail on it at enable time, so it is refused here.
            croniter(cron, datetime.now(UTC), second_at_beginning=with_seconds).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"cron expression {cron!r} never fires: no date matches it") from None
        return cron

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, tz: str | None) -> str | None:
        if tz is not None:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {tz!r}") from None
        return tz

    @property
    def cron_with_seconds(self) -> str:
        """The expression in DBOS's 6-field form (seconds first)."""
        return self.cron if len(self.cron.split()) == 6 else f"0 {self.cron}"


Trigger = Annotated[
    SurveyResponseTrigger | JsonEventTrigger | ScheduleTrigger, Field(discriminator="type")
]


class StepSpec(_Strict):
    """One step: an action and its configuration."""

    key: str | None = Field(
        default=None,
        description="Name later steps and templates use for this step's output "
        "(default: derived from the action).",
    )
    action: str = Field(examples=["qualtrics.get_response"])
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("key")
    @classmethod
    def _check_key(cls, key: str | None) -> str | None:
        if key is not None and not _KEY.match(key):
            raise ValueError(f"step key {key!r} must match {_KEY.pattern}")
        return key


class AutomationDefinition(_Strict):
    """What an automation does: its trigger and ordered steps."""

    name: str = Field(min_length=1, max_length=200)
    connection_id: int | None = Field(
        default=None, description="Qualtrics connection the steps and trigger use."
    )
    trigger: Trigger
    steps: list[StepSpec] = Field(min_length=1, max_length=50)
    description: str = Field(default="", max_length=2000)


def step_keys(steps: list[StepSpec]) -> list[str]:
    """The effective key of each step: its own, or the action's last segment (deduplicated)."""
    keys: list[str] = []
    for step in steps:
        if step.key:
            keys.append(step.key)
            continue
        base = re.sub(r"[^a-z0-9_]", "_", step.action.rsplit(".", 1)[-1].lower()) or "step"
        if not base[0].isalpha():
            base = f"s_{base}"
        key, n = base, 2
        while key in keys:
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return keys


def parse_definition(data: Any) -> AutomationDefinition:
    """Validate a definition and every step's config; all problems are reported at once."""
    try:
        definition = AutomationDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(
            "invalid automation definition",
            [{"loc": [str(p) for p in err["loc"]], "msg": err["msg"]} for err in exc.errors()],
        ) from None
    from qualflow.engine.actions import get_action

    errors: list[dict[str, Any]] = []
    keys = step_keys(definition.steps)
    seen: set[str] = set()
    for position, (step, key) in enumerate(zip(definition.steps, keys, strict=True)):
        if key in seen:
            errors.append({"loc": ["steps", str(position), "key"], "msg": f"duplicate key {key!r}"})
        seen.add(key)
        try:
            spec = get_action(step.action)
        except DefinitionError as exc:
            errors.extend(
                {"loc": ["steps", str(position), *err["loc"]], "msg": err["msg"]}
                for err in exc.errors
            )
            continue
        # Checked when saving only: a saved definition keeps running as it did.
        errors.extend(
            {
                "loc": ["steps", str(position), "config", key],
                "msg": f"unknown setting of {spec.name}; it takes: "
                + ", ".join(spec.config_keys()),
            }
            for key in spec.unknown_config_keys(step.config)
        )
        try:
            spec.validate_config(step.config)
        except DefinitionError as exc:
            errors.extend(
                {"loc": ["steps", str(position), *err["loc"]], "msg": err["msg"]}
                for err in exc.errors
            )
    if errors:
        raise DefinitionError("invalid automation definition", errors)
    return definition
