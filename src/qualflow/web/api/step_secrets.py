"""Secrets in step configs: sealed before a definition is saved, masked in every answer.

A step config field typed ``SecretStr`` in its action's model (e.g. ``http.request``'s
``signing_secret``) is a secret, and so is an entry of a mapping field the model lists in its
``secret_entries`` when its key says so (e.g. ``http.request``'s ``Authorization`` header).
Saving seals it (:mod:`qualflow.store.sealed`); answers show ``••••`` and its last 4 characters.
Sending that masked form back (an edit that did not re-enter the secret) keeps the saved secret.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Connection, select, update

from qualflow.engine.actions import get_action
from qualflow.engine.automations import AutomationOut, VersionOut
from qualflow.engine.errors import DefinitionError
from qualflow.engine.models import AutomationVersion
from qualflow.store.sealed import is_masked, is_sealed, mask_value, reseal, seal, unseal
from qualflow.store.secrets import SecretBox, SecretDecryptionError

__all__ = [
    "mask_automation",
    "mask_definition",
    "mask_steps",
    "mask_version",
    "reseal_definitions",
    "seal_definition",
    "secret_fields",
    "secret_paths",
]


def _is_secret_annotation(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_is_secret_annotation(arg) for arg in typing.get_args(annotation))
    return False


def secret_fields(action: str) -> set[str]:
    """The config keys of ``action`` that hold secrets (by field name and by alias)."""
    try:
        model = get_action(action).config_model
    except DefinitionError:
        return set()
    names: set[str] = set()
    for name, info in model.model_fields.items():
        if _is_secret_annotation(info.annotation):
            names.add(name)
            if info.alias:
                names.add(info.alias)
    return names


#: Where a secret sits in a step's config: a field name, or a mapping field and its entry's key.
SecretPath = tuple[str, ...]


def _secret_entry_rules(action: str) -> dict[str, Callable[[str], bool]]:
    """Mapping fields of ``action`` whose entries are secrets when their key says so."""
    try:
        model = get_action(action).config_model
    except DefinitionError:
        return {}
    rules: dict[str, Callable[[str], bool]] = getattr(model, "secret_entries", {})
    return rules


def secret_paths(action: str, config: Mapping[str, Any]) -> list[SecretPath]:
    """The places in ``config`` that hold secrets (present and non-empty or not)."""
    paths: list[SecretPath] = [(name,) for name in secret_fields(action) if name in config]
    for field, is_secret in _secret_entry_rules(action).items():
        entries = config.get(field)
        if isinstance(entries, Mapping):
            paths.extend((field, str(key)) for key in entries if is_secret(str(key)))
    return paths


def _value_at(config: Mapping[str, Any], path: SecretPath) -> Any:
    value: Any = config
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _with_value(config: Mapping[str, Any], path: SecretPath, value: Any) -> dict[str, Any]:
    """A copy of ``config`` with ``value`` at ``path`` (mappings on the way copied, not shared)."""
    head, *rest = path
    if not rest:
        return {**config, head: value}
    inner = config.get(head)
    return {
        **config,
        head: _with_value(inner if isinstance(inner, Mapping) else {}, tuple(rest), value),
    }


def mask_steps(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    masked = []
    for step in steps:
        config = step.get("config")
        if not isinstance(config, Mapping):
            masked.append(dict(step))
            continue
        paths = secret_paths(str(step.get("action", "")), config)
        for path in paths:
            config = _with_value(config, path, mask_value(_value_at(config, path)))
        masked.append({**step, "config": dict(config)} if paths else dict(step))
    return masked


def mask_definition(definition: Mapping[str, Any]) -> dict[str, Any]:
    steps = definition.get("steps")
    if not isinstance(steps, list):
        return dict(definition)
    return {**definition, "steps": mask_steps(steps)}


def mask_automation(automation: AutomationOut) -> AutomationOut:
    return automation.model_copy(update={"steps": mask_steps(automation.steps)})


def mask_version(version: VersionOut) -> VersionOut:
    return version.model_copy(update={"definition": mask_definition(version.definition)})


def _saved_secrets(
    steps: Sequence[Mapping[str, Any]] | None,
) -> list[tuple[int, str, SecretPath, str]]:
    """(position, action, path, value) of every secret of the saved steps.

    Values saved in clear (before a field or header was a secret) count too: the masked form
    sent back for them keeps them, and saving seals them.
    """
    found = []
    for position, step in enumerate(steps or []):
        config = step.get("config")
        if not isinstance(config, Mapping):
            continue
        action = str(step.get("action", ""))
        for path in secret_paths(action, config):
            value = _value_at(config, path)
            if isinstance(value, str) and value and not is_masked(value):
                found.append((position, action, path, value))
    return found


def seal_definition(
    definition: Mapping[str, Any],
    box: SecretBox,
    saved_steps: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The definition to save: plain secrets sealed, masked ones replaced by the saved secret.

    ``saved_steps`` are the steps of the version being edited. A masked value is matched with
    the saved secret of the same action and place that it masks (the same position first, so
    reordered steps keep theirs). Raises :class:`DefinitionError` for a masked value that masks
    nothing saved, or a sealed value these keys cannot open.
    """
    steps = definition.get("steps")
    if not isinstance(steps, list):
        return dict(definition)
    saved = _saved_secrets(saved_steps)
    errors: list[dict[str, Any]] = []
    out_steps: list[Any] = []
    for position, step in enumerate(steps):
        config = step.get("config") if isinstance(step, Mapping) else None
        action = str(step.get("action", "")) if isinstance(step, Mapping) else ""
        paths = secret_paths(action, config) if isinstance(config, Mapping) else []
        if not paths or not isinstance(config, Mapping):
            out_steps.append(step)
            continue
        resolved: dict[str, Any] = dict(config)
        for path in paths:
            value = _value_at(config, path)
            loc = ["steps", str(position), "config", *path]
            if not isinstance(value, str) or not value:
                continue
            if is_masked(value):
                candidates = sorted(
                    (item for item in saved if item[1] == action and item[2] == path),
                    key=lambda item: item[0] != position,
                )
                match = next((item[3] for item in candidates if mask_value(item[3]) == value), None)
                if match is None:
                    errors.append(
                        {
                            "loc": loc,
                            "msg": "this is the masked form of a secret that is not saved here; "
                            "enter the secret itself",
                        }
                    )
                    continue
                resolved = _with_value(resolved, path, match)
            elif is_sealed(value):
                try:
                    unseal(box, value)
                except SecretDecryptionError:
                    errors.append({"loc": loc, "msg": "this sealed secret cannot be decrypted"})
        # Checked with the saved secrets in place of their masked forms; an invalid config is
        # left as it is: saving reports its problems, storing nothing.
        if _config_valid(action, resolved):
            for path in paths:
                value = _value_at(resolved, path)
                if isinstance(value, str) and value and not is_masked(value):
                    resolved = _with_value(resolved, path, seal(box, value))
        out_steps.append({**step, "config": resolved})
    if errors:
        raise DefinitionError("invalid automation definition", errors)
    return {**definition, "steps": out_steps}


def _config_valid(action: str, config: Mapping[str, Any]) -> bool:
    try:
        get_action(action).validate_config(config)
    except DefinitionError:
        return False
    return True


def reseal_definitions(connection: Connection, box: SecretBox) -> int:
    """Re-encrypt every sealed secret of every saved automation version with the newest key.

    Runs inside the caller's transaction (``qualflow secrets rotate``); returns how many
    secrets were re-encrypted.
    """
    table = AutomationVersion.__table__
    count = 0
    rows = connection.execute(
        select(table.c.automation_id, table.c.version, table.c.definition)
    ).all()
    for automation_id, version, definition in rows:
        changed = False
        for step in (definition or {}).get("steps") or []:
            config = step.get("config") if isinstance(step, dict) else None
            if not isinstance(config, dict):
                continue
            resealed = _reseal_within(config, box)
            changed = changed or resealed > 0
            count += resealed
        if changed:
            connection.execute(
                update(AutomationVersion)
                .where(table.c.automation_id == automation_id, table.c.version == version)
                .values(definition=definition)
            )
    return count


def _reseal_within(mapping: dict[str, Any], box: SecretBox) -> int:
    """Re-encrypt, in place, the sealed values of a config and of its mapping fields."""
    count = 0
    for name, value in list(mapping.items()):
        if is_sealed(value):
            mapping[name] = reseal(box, value)
            count += 1
        elif isinstance(value, dict):
            count += _reseal_within(value, box)
    return count
