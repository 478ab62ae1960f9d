"""The automation editor's form: definition ⇄ form fields, and engine errors ⇄ inline messages.

Field names are flat so a plain HTML form (and htmx) can post them:
``name``, ``description``, ``connection_id``, ``trigger_type``, ``trigger-<field>``, and per
step ``step`` (its uid, once per step, in order), ``step-<uid>-action``, ``step-<uid>-key``,
``step-<uid>-config-<property>``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qualflow.engine.actions import ActionSpec, get_action, registered_actions
from qualflow.engine.errors import DefinitionError
from qualflow.web.api.step_secrets import mask_definition
from qualflow.web.ui.numbers import whole_number
from qualflow.web.ui.schema_form import MISSING, FormField, fields_for, form_value, parse_field

__all__ = [
    "TRIGGER_TYPES",
    "EditorState",
    "StepState",
    "blank_step",
    "definition_json",
    "errors_from_definition_error",
    "new_step_uid",
    "parse_editor_form",
    "readable_message",
    "redact_definition",
    "saved_position",
    "saved_step_uid",
    "state_from_definition",
    "step_config_errors",
    "without_model_prefix",
]

TRIGGER_TYPES = {
    "survey_response": "Survey response",
    "json_event": "JSON event",
    "schedule": "Schedule",
}


def new_step_uid() -> str:
    return "s" + secrets.token_hex(4)


#: The uid of a step loaded from the saved version names its position there, so the step's
#: saved secrets follow it when steps are reordered or removed in the browser.
_SAVED_UID = re.compile(r"saved(\d{1,4})")


def saved_step_uid(position: int) -> str:
    return f"saved{position}"


def saved_position(uid: str) -> int | None:
    """The position in the saved version of the step the editor showed under ``uid``."""
    match = _SAVED_UID.fullmatch(uid)
    return int(match.group(1)) if match else None


@dataclass
class StepState:
    """One step as the editor shows it: action, key, config fields and their current text."""

    uid: str
    action: str
    key: str = ""
    values: dict[str, str] = field(default_factory=dict)
    #: Saved config (for secrets left empty on edit, which keep their saved value).
    saved_config: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> ActionSpec | None:
        try:
            return get_action(self.action)
        except DefinitionError:
            return None

    @property
    def fields(self) -> list[FormField]:
        spec = self.spec
        return fields_for(spec.config_schema()) if spec else []

    def field_name(self, prop: str) -> str:
        return f"step-{self.uid}-config-{prop}"

    def has_saved_secret(self, prop: str) -> bool:
        return bool(self.saved_config.get(prop))

    def optional_touched(self, errors: Mapping[str, str]) -> bool:
        """Whether an optional field has a value (other than its default) or an error."""
        for spec in self.fields:
            if spec.required:
                continue
            if errors.get(self.field_name(spec.name)):
                return True
            value = self.values.get(spec.name, "")
            if value and value != form_value(spec, spec.default):
                return True
        return False


@dataclass
class EditorState:
    """Everything the editor template needs to redraw the form, with the user's input kept."""

    name: str = ""
    description: str = ""
    connection_id: str = ""
    trigger_type: str = "survey_response"
    trigger: dict[str, str] = field(default_factory=dict)
    steps: list[StepState] = field(default_factory=list)

    @property
    def actions(self) -> list[ActionSpec]:
        return registered_actions()


def _step_from_config(uid: str, action: str, key: str, config: Mapping[str, Any]) -> StepState:
    step = StepState(uid=uid, action=action, key=key, saved_config=dict(config))
    for spec in step.fields:
        if spec.name in config:
            step.values[spec.name] = form_value(spec, config[spec.name])
        elif spec.kind == "checkbox" and spec.default:
            step.values[spec.name] = "on"
    return step


def blank_step(action: str) -> StepState:
    """A new step of ``action`` with the config model's defaults filled in."""
    step = StepState(uid=new_step_uid(), action=action)
    for spec in step.fields:
        if spec.default not in (None, [], {}) and spec.kind != "secret":
            step.values[spec.name] = form_value(spec, spec.default)
    return step


def _trigger_text(trigger: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in trigger.items():
        if name == "type":
            continue
        if name == "fields" and isinstance(value, dict):
            out[name] = "\n".join(f"{k} = {v}" for k, v in value.items())
        elif isinstance(value, bool):
            out[name] = "on" if value else ""
        elif value is not None:
            out[name] = str(value)
    return out


def state_from_definition(definition: Mapping[str, Any]) -> EditorState:
    """The editor state of a stored definition (an automation version)."""
    trigger = dict(definition.get("trigger") or {})
    steps = [
        _step_from_config(
            saved_step_uid(position),
            str(s.get("action", "")),
            str(s.get("key") or ""),
            s.get("config") or {},
        )
        for position, s in enumerate(definition.get("steps") or [])
    ]
    connection = definition.get("connection_id")
    return EditorState(
        name=str(definition.get("name", "")),
        description=str(definition.get("description", "")),
        connection_id="" if connection is None else str(connection),
        trigger_type=str(trigger.get("type", "survey_response")),
        trigger=_trigger_text(trigger),
        steps=steps,
    )


def _parse_json_fields(text: str) -> tuple[dict[str, str], str | None]:
    fields: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, path = line.partition("=")
        if not sep or not name.strip() or not path.strip():
            return fields, f"Line {number}: write one field per line as 'name = $.json.path'."
        fields[name.strip()] = path.strip()
    return fields, None


def _parse_trigger(
    kind: str, form: Mapping[str, str], errors: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    text = {
        key.removeprefix("trigger-"): value
        for key, value in form.items()
        if key.startswith("trigger-")
    }
    trigger: dict[str, Any] = {"type": kind}
    if kind == "survey_response":
        trigger["survey_id"] = text.get("survey_id", "").strip()
        trigger["include_partial"] = bool(text.get("include_partial"))
        minutes = text.get("reconcile_every_minutes", "").strip()
        if minutes:
            every = whole_number(minutes)
            if every is None:
                errors["trigger-reconcile_every_minutes"] = "Enter a whole number of minutes."
            else:
                trigger["reconcile_every_minutes"] = every
    elif kind == "json_event":
        fields, problem = _parse_json_fields(text.get("fields", ""))
        if problem:
            errors["trigger-fields"] = problem
        trigger["fields"] = fields
        trigger["auth"] = text.get("auth", "any") or "any"
    elif kind == "schedule":
        trigger["cron"] = text.get("cron", "").strip()
        timezone = text.get("timezone", "").strip()
        if timezone:
            trigger["timezone"] = timezone
    else:
        errors["trigger_type"] = "Choose a trigger."
    return trigger, text


def parse_editor_form(
    form: Mapping[str, str],
    step_uids: Sequence[str],
    saved_steps: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, Any], EditorState, dict[str, str]]:
    """The definition a submitted form describes, the state to redraw it, and field errors.

    ``saved_steps`` maps a step uid to its saved config (keeps secrets left empty).
    """
    errors: dict[str, str] = {}
    kind = form.get("trigger_type", "")
    trigger, trigger_text = _parse_trigger(kind, form, errors)
    connection_text = form.get("connection_id", "").strip()
    connection_id: int | None = None
    if connection_text:
        connection_id = whole_number(connection_text)
        if connection_id is None:
            errors["connection_id"] = "Choose a connection."
    state = EditorState(
        name=form.get("name", ""),
        description=form.get("description", ""),
        connection_id=connection_text,
        trigger_type=kind or "survey_response",
        trigger=trigger_text,
    )
    steps: list[dict[str, Any]] = []
    for uid in step_uids:
        action = form.get(f"step-{uid}-action", "")
        saved = dict((saved_steps or {}).get(uid) or {})
        step = StepState(
            uid=uid, action=action, key=form.get(f"step-{uid}-key", "").strip(), saved_config=saved
        )
        config: dict[str, Any] = {}
        for spec in step.fields:
            raw = form.get(step.field_name(spec.name))
            step.values[spec.name] = raw or ""
            value, problem = parse_field(spec, raw, saved.get(spec.name, MISSING))
            if problem:
                errors[step.field_name(spec.name)] = problem
            elif value is not MISSING:
                config[spec.name] = value
        state.steps.append(step)
        entry: dict[str, Any] = {"action": action, "config": config}
        if step.key:
            entry["key"] = step.key
        steps.append(entry)
    definition = {
        "name": state.name.strip(),
        "description": state.description.strip(),
        "connection_id": connection_id,
        "trigger": trigger,
        "steps": steps,
    }
    return definition, state, errors


#: Pydantic's prefixes on messages raised by a model's own checks (they mean nothing to people).
_MODEL_PREFIXES = ("Value error, ", "Assertion failed, ")

#: Fields whose model rule is a regular expression: what to say instead of the pattern.
_PATTERN_MESSAGES = {
    "trigger-survey_id": "Enter the survey's ID: SV_ followed by letters and digits "
    "(e.g. SV_1ZHgwYzcQXcUTHg).",
}


def without_model_prefix(message: str) -> str:
    """A validation message without pydantic's "Value error, " (as after ``loc: `` in a list)."""
    for prefix in _MODEL_PREFIXES:
        message = message.removeprefix(prefix)
    return message


def readable_message(message: str, field_name: str | None = None) -> str:
    """A validation message as a sentence for the editor, shown next to ``field_name``."""
    if field_name in _PATTERN_MESSAGES and message.startswith("String should match pattern"):
        return _PATTERN_MESSAGES[field_name]
    message = without_model_prefix(message)
    return message[:1].upper() + message[1:]


def errors_from_definition_error(exc: DefinitionError, state: EditorState) -> dict[str, str]:
    """Map the engine's ``loc`` paths onto the editor's field names."""
    errors: dict[str, str] = {}
    general: list[str] = []
    for error in exc.errors:
        loc = [str(part) for part in error.get("loc", [])]
        message = str(error.get("msg") or "invalid value")
        target: str | None = None
        if loc and loc[0] in ("name", "description", "connection_id"):
            target = loc[0]
        elif loc and loc[0] == "trigger":
            rest = [p for p in loc[1:] if p not in TRIGGER_TYPES]
            target = f"trigger-{rest[0]}" if rest else "trigger_type"
        elif loc and loc[0] == "steps":
            if len(loc) == 1:
                target = "steps"
            elif loc[1].isdigit() and int(loc[1]) < len(state.steps):
                step = state.steps[int(loc[1])]
                rest = loc[2:]
                if rest[:1] == ["config"] and len(rest) > 1:
                    names = {f.name for f in step.fields}
                    target = step.field_name(rest[1]) if rest[1] in names else f"step-{step.uid}"
                elif rest[:1] in (["action"], ["key"]):
                    target = f"step-{step.uid}-{rest[0]}"
                else:
                    target = f"step-{step.uid}"
        if target is None:
            where = ".".join(loc)
            message = readable_message(message)
            general.append(f"{where}: {message}" if where else message)
        else:
            errors.setdefault(target, readable_message(message, target))
    if general:
        errors["__all__"] = "; ".join(general)
    return errors


def step_config_errors(state: EditorState, definition: Mapping[str, Any]) -> dict[str, str]:
    """Each step's config checked against its action's model, field by field.

    The engine stops at the first broken level (a bad trigger hides the step problems); the
    editor shows every problem at once.
    """
    errors: dict[str, str] = {}
    for step, entry in zip(state.steps, definition.get("steps") or [], strict=False):
        spec = step.spec
        if spec is None:
            continue
        try:
            spec.validate_config(entry.get("config") or {})
        except DefinitionError as exc:
            for error in exc.errors:
                loc = [str(part) for part in error.get("loc", [])]
                names = {f.name for f in step.fields}
                if len(loc) > 1 and loc[0] == "config" and loc[1] in names:
                    target = step.field_name(loc[1])
                else:
                    target = f"step-{step.uid}"
                message = str(error.get("msg") or "invalid value")
                errors.setdefault(target, readable_message(message, target))
    return errors


def redact_definition(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to show: secret config values become "••••" plus their last 4 characters."""
    return mask_definition(definition)


def definition_json(definition: Mapping[str, Any]) -> str:
    return json.dumps(definition, indent=2, ensure_ascii=False)
