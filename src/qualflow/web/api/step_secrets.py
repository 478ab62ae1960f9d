"""Secrets in step configs: sealed before a definition is saved, masked in every answer.

A step config field typed ``SecretStr`` in its action's model (e.g. ``http.request``'s
``signing_secret``) is a secret. Saving seals it (:mod:`qualflow.store.sealed`); answers show
``••••`` and its last 4 characters. Sending that masked form back (an edit that did not re-enter
the secret) keeps the saved secret.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
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


def mask_steps(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    masked = []
    for step in steps:
        config = step.get("config")
        names = secret_fields(str(step.get("action", "")))
        if isinstance(config, Mapping) and names & config.keys():
            config = {k: mask_value(v) if k in names else v for k, v in config.items()}
            masked.append({**step, "config": config})
        else:
            masked.append(dict(step))
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


def _saved_secrets(steps: Sequence[Mapping[str, Any]] | None) -> list[tuple[int, str, str, str]]:
    """(position, action, field, sealed value) of every sealed secret of the saved steps."""
    found = []
    for position, step in enumerate(steps or []):
        config = step.get("config")
        if not isinstance(config, Mapping):
            continue
        action = str(step.get("action", ""))
        for name in secret_fields(action):
            value = config.get(name)
            if isinstance(value, str) and is_sealed(value):
                found.append((position, action, name, value))
    return found


def seal_definition(
    definition: Mapping[str, Any],
    box: SecretBox,
    saved_steps: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The definition to save: plain secrets sealed, masked ones replaced by the saved secret.

    ``saved_steps`` are the steps of the version being edited. A masked value is matched with
    the saved secret of the same action and field that it masks (the same position first, so
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
        names = secret_fields(action) & (config.keys() if isinstance(config, Mapping) else set())
        if not names or not isinstance(config, Mapping):
            out_steps.append(step)
            continue
        new_config = dict(config)
        for name in names:
            value = config[name]
            loc = ["steps", str(position), "config", name]
            if not isinstance(value, str) or not value:
                continue
            if is_masked(value):
                candidates = sorted(
                    (item for item in saved if item[1] == action and item[2] == name),
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
                new_config[name] = match
            elif is_sealed(value):
                try:
                    unseal(box, value)
                except SecretDecryptionError:
                    errors.append({"loc": loc, "msg": "this sealed secret cannot be decrypted"})
            elif _config_valid(action, config):
                new_config[name] = seal(box, value)
            # An invalid config is left as it is: saving reports its problems, storing nothing.
        out_steps.append({**step, "config": new_config})
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
            for name, value in list(config.items()):
                if is_sealed(value):
                    config[name] = reseal(box, value)
                    changed = True
                    count += 1
        if changed:
            connection.execute(
                update(AutomationVersion)
                .where(table.c.automation_id == automation_id, table.c.version == version)
                .values(definition=definition)
            )
    return count
