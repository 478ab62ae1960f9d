"""Listing automations loads each one's current version only, not every past version."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from qualflow.engine.automations import Automations
from qualflow.engine.models import AutomationVersion
from qualflow.engine.runtime import Engine


def definition(name: str, label: str) -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {"type": "schedule", "cron": "0 3 * * *"},
        "steps": [{"action": "test.record", "key": "r", "config": {"label": label}}],
    }


@pytest.fixture
def loaded_versions() -> Iterator[list[tuple[int, int]]]:
    """(automation_id, version) of every AutomationVersion the ORM builds from a row."""
    loaded: list[tuple[int, int]] = []

    def on_load(target: AutomationVersion, _context: object) -> None:
        loaded.append((target.automation_id, target.version))

    event.listen(AutomationVersion, "load", on_load)
    try:
        yield loaded
    finally:
        event.remove(AutomationVersion, "load", on_load)


def test_the_list_loads_only_current_versions_and_shows_what_get_shows(
    engine: Engine, loaded_versions: list[tuple[int, int]]
) -> None:
    automations = Automations(engine.services)
    ids = []
    for name in ("first", "second"):
        created = automations.create(definition(name, "v1"))
        for n in range(2, 7):
            automations.update(created.id, definition(name, f"v{n}"))
        ids.append(created.id)
    automations.create(definition("third", "only"))  # one version: current is its first
    expected = [automations.get(automation_id) for automation_id in (*ids, ids[-1] + 1)]

    loaded_versions.clear()
    listed = automations.query()

    assert sorted(loaded_versions) == [(ids[0], 6), (ids[1], 6), (ids[1] + 1, 1)]
    assert listed == expected
    assert automations.query(limit=1, offset=1) == [expected[1]]
