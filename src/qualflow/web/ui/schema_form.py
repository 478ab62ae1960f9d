"""Form fields generated from an action's pydantic JSON schema, and the way back.

Each property of a config model becomes one field of a fitting kind (text, textarea, number,
checkbox, select, one-per-line list, secret, or JSON for anything structured). Parsing turns the
submitted strings back into JSON values; whatever is still wrong is left for the action's
pydantic model to report, so the rules live in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from qualflow.web.ui.suggestions import SCHEMA_KEY as SUGGEST_KEY

__all__ = ["MISSING", "FormField", "fields_for", "form_value", "parse_field"]

Kind = Literal[
    "text", "textarea", "integer", "number", "checkbox", "select", "lines", "json", "secret"
]

#: Properties whose strings are long templates rather than one-liners.
_LONG_TEXT = frozenset({"body", "html", "expression", "template", "message", "text"})


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: Kind
    required: bool
    help: str | None = None
    placeholder: str = ""
    choices: list[str] = field(default_factory=list)
    default: Any = None
    #: A kind of value to offer as the person types (see :mod:`qualflow.web.ui.suggestions`).
    suggest: str | None = None


def _unwrap_optional(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    options = schema.get("anyOf")
    if isinstance(options, list):
        non_null = [o for o in options if o.get("type") != "null"]
        if len(non_null) == 1:
            merged = {**non_null[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
            return merged, True
    return schema, False


def _kind(name: str, schema: dict[str, Any]) -> Kind:
    kind = schema.get("type")
    if kind == "string":
        if schema.get("writeOnly") or schema.get("format") == "password":
            return "secret"
        if "enum" in schema:
            return "select"
        long_text = name in _LONG_TEXT or (schema.get("maxLength") or 0) > 1000
        return "textarea" if long_text else "text"
    if kind == "integer":
        return "integer"
    if kind == "number":
        return "number"
    if kind == "boolean":
        return "checkbox"
    if kind == "array" and (schema.get("items") or {}).get("type") == "string":
        return "lines"
    if "enum" in schema:
        return "select"
    return "json"


def _placeholder(schema: dict[str, Any], kind: Kind) -> str:
    examples = schema.get("examples")
    if not examples:
        return ""
    example = examples[0]
    if kind == "lines" and isinstance(example, list):
        return "\n".join(str(item) for item in example)
    if kind == "json":
        return json.dumps(example)
    return str(example)


def fields_for(schema: dict[str, Any]) -> list[FormField]:
    """The form fields of a config model's JSON schema, in declaration order."""
    required = set(schema.get("required") or [])
    out: list[FormField] = []
    for name, raw in (schema.get("properties") or {}).items():
        prop, _optional = _unwrap_optional(raw)
        kind = _kind(name, prop)
        out.append(
            FormField(
                name=name,
                label=str(prop.get("title") or name.replace("_", " ").capitalize()),
                kind=kind,
                required=name in required,
                help=prop.get("description"),
                placeholder=_placeholder(prop, kind),
                choices=[str(c) for c in prop.get("enum") or []],
                default=prop.get("default"),
                suggest=prop.get(SUGGEST_KEY),
            )
        )
    return out


def form_value(spec: FormField, value: Any) -> str:
    """How a stored config value is shown in its field (secrets are never shown)."""
    if spec.kind == "secret" or value is None or value is MISSING:
        return ""
    if spec.kind == "lines":
        return "\n".join(str(item) for item in value) if isinstance(value, list) else str(value)
    if spec.kind == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    if spec.kind == "checkbox":
        return "on" if value else ""
    return str(value)


def parse_field(
    spec: FormField, raw: str | None, previous: Any = MISSING
) -> tuple[Any, str | None]:
    """The JSON value of a submitted field, or ``MISSING`` to leave it out; plus an error.

    ``previous`` is the saved value: an empty secret field keeps it (secrets are never sent
    back to the browser, so "empty" means "unchanged").
    """
    text = (raw or "").strip() if spec.kind not in ("textarea",) else (raw or "")
    if spec.kind == "checkbox":
        return raw is not None and raw != "", None
    if spec.kind == "secret":
        if not text:
            return previous, None
        return text, None
    if not text.strip():
        return MISSING, None
    if spec.kind == "integer":
        try:
            return int(text), None
        except ValueError:
            return MISSING, "Enter a whole number."
    if spec.kind == "number":
        try:
            return float(text), None
        except ValueError:
            return MISSING, "Enter a number."
    if spec.kind == "lines":
        items = [line.strip() for line in text.splitlines() if line.strip()]
        return items, None
    if spec.kind == "json":
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            return MISSING, f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
    return text, None
