"""Which automations pay an incentive (its page and its review): the database narrows the
automations to those whose current definition mentions the incentive, so a hub with hundreds
of automations does not read every definition to show one incentive; and the answer is the
one the exact check over every automation gave."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from qualflow.engine.models import Automation, AutomationVersion
from qualflow.incentives.review import ACTION, automations_using
from tests.incentives.support import Db

PAID = "INC-7F3K2Q"
OTHER = "INC-9XW4ZM"


def _step(incentive: Any, action: str = ACTION, **config: Any) -> dict[str, Any]:
    return {"key": "pay", "action": action, "config": {"incentive": incentive, **config}}


def _definition(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"trigger": {"type": "webhook", "survey_id": "SV_1"}, "steps": list(steps), **extra}


#: name → (enabled, current definition, an older definition or None)
_AUTOMATIONS: dict[str, tuple[bool, dict[str, Any], dict[str, Any] | None]] = {
    "pays": (True, _definition(_step(PAID, email_field="QID1")), None),
    "pays, disabled": (False, _definition(_step(PAID, email_source="embedded")), None),
    "pays, as typed": (True, _definition(_step(" inc-7f3k2q ", first_name_field="Q2")), None),
    "pays twice": (True, _definition(_step(PAID), _step(PAID.lower())), None),
    "pays another": (True, _definition(_step(OTHER)), None),
    "mentions it only": (
        True,
        _definition(_step(PAID, action="notify.email"), _step(f"{PAID}X")),
        None,
    ),
    "paid it once": (True, _definition(_step(OTHER)), _definition(_step(PAID))),
    "no steps": (True, {"trigger": {}}, None),
    "pays, own connection": (True, _definition(_step(PAID), connection_id=7), None),
}
#: In name order (the function promises none): one per step paying the incentive.
FOUND = sorted(
    ["pays", "pays, disabled", "pays, as typed", "pays twice", "pays twice", "pays, own connection"]
)
NOT_MENTIONING = {"pays another", "no steps", "paid it once"}


@pytest.fixture
def automations(db: Db) -> Db:
    with db.sessionmaker() as session:
        for name, (enabled, current, older) in _AUTOMATIONS.items():
            automation = Automation(
                name=name,
                trigger_type="webhook",
                enabled=enabled,
                version=2 if older else 1,
            )
            session.add(automation)
            session.flush()
            if older:
                session.add(
                    AutomationVersion(automation_id=automation.id, version=1, definition=older)
                )
            session.add(
                AutomationVersion(
                    automation_id=automation.id, version=automation.version, definition=current
                )
            )
        session.commit()
    return db


def test_the_automations_paying_the_incentive_are_found_as_before(automations: Db) -> None:
    found = automations_using(automations.sessionmaker, PAID)
    assert sorted(review.name for review in found) == FOUND
    by_name = {review.name: review for review in found}
    assert by_name["pays"].email_field == "QID1"
    assert by_name["pays"].survey_id == "SV_1"
    assert by_name["pays, disabled"].enabled is False
    assert by_name["pays, disabled"].email_source == "embedded"
    assert by_name["pays, as typed"].first_name_field == "Q2"
    assert by_name["pays, own connection"].connection_id == 7
    other = automations_using(automations.sessionmaker, OTHER)
    assert sorted(review.name for review in other) == ["paid it once", "pays another"]
    assert automations_using(automations.sessionmaker, "INC-222222") == []


def test_automations_not_mentioning_the_incentive_are_not_loaded(automations: Db) -> None:
    loaded: list[str] = []

    def record(target: Automation, _context: Any) -> None:
        loaded.append(target.name)

    event.listen(Automation, "load", record)
    try:
        found = automations_using(automations.sessionmaker, PAID)
    finally:
        event.remove(Automation, "load", record)
    assert sorted(review.name for review in found) == FOUND
    assert loaded, "the query loads the automations it checks"
    assert not NOT_MENTIONING & set(loaded), loaded
