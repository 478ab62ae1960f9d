"""Saved response filters: ``GET /surveys/{id}/filters`` and the ``filterId`` of an export.

Qualtrics filters are built in its web UI only, so the API lists them
(``{filterId, filterName, creationDate}``) and an export applies one by id. The sandbox keeps
each filter's conditions in a small language of its own (set through ``/_sandbox``): every
condition must hold, each one compares a ``values`` key of the response (metadata, ``QID…``
column, embedded data) with a value.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from qualflow.sandbox import errors

OPERATORS = ("eq", "ne", "in", "notIn", "gt", "gte", "lt", "lte", "exists", "missing")
_NO_VALUE = ("exists", "missing")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str
    value: Any = None

    def holds(self, values: dict[str, Any]) -> bool:
        actual = values.get(self.field)
        op = self.operator
        if op == "exists":
            return not _empty(actual)
        if op == "missing":
            return _empty(actual)
        if op in ("gt", "gte", "lt", "lte"):
            left, right = _number(actual), _number(self.value)
            if left is None or right is None:
                return False
            if op == "gt":
                return left > right
            if op == "gte":
                return left >= right
            return left < right if op == "lt" else left <= right
        # Codes arrive as ints or strings ("1" and 1 are the same answer); a multi-select
        # answer matches when one of its choices does.
        wanted = {str(v) for v in self.value} if op in ("in", "notIn") else {str(self.value)}
        got = {str(v) for v in actual} if isinstance(actual, list) else {str(actual)}
        hit = not _empty(actual) and bool(wanted & got)
        return hit if op in ("eq", "in") else not hit

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "operator": self.operator}
        if self.operator not in _NO_VALUE:
            out["value"] = self.value
        return out

    @classmethod
    def parse(cls, raw: Any) -> Condition:
        if not isinstance(raw, dict):
            raise errors.invalid_param("conditions", "each condition must be an object")
        name, op = raw.get("field"), raw.get("operator", "eq")
        if not isinstance(name, str) or not name:
            raise errors.invalid_param("conditions", "a condition needs a field (a values key)")
        if op not in OPERATORS:
            raise errors.invalid_param(
                "conditions", f"operator {op!r} is not one of {', '.join(OPERATORS)}"
            )
        value = raw.get("value")
        if op in ("in", "notIn"):
            if not isinstance(value, list) or not value:
                raise errors.invalid_param("conditions", f"{op} needs a non-empty array value")
        elif op in ("gt", "gte", "lt", "lte"):
            if _number(value) is None:
                raise errors.invalid_param("conditions", f"{op} needs a number value")
        elif op not in _NO_VALUE and (value is None or isinstance(value, dict | list)):
            raise errors.invalid_param("conditions", f"{op} needs a text or number value")
        return cls(name, op, None if op in _NO_VALUE else value)


@dataclass
class ResponseFilter:
    filter_id: str
    name: str
    creation_date: str
    conditions: list[Condition] = field(default_factory=list)

    def matches(self, values: dict[str, Any]) -> bool:
        return all(c.holds(values) for c in self.conditions)

    def to_api(self) -> dict[str, Any]:
        return {
            "filterId": self.filter_id,
            "filterName": self.name,
            "creationDate": self.creation_date,
        }

    def to_record(self) -> dict[str, Any]:
        return {**self.to_api(), "conditions": [c.to_json() for c in self.conditions]}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> ResponseFilter:
        return cls(
            filter_id=data["filterId"],
            name=data["filterName"],
            creation_date=data["creationDate"],
            conditions=[Condition.parse(c) for c in data.get("conditions") or []],
        )

    @classmethod
    def parse(cls, body: dict[str, Any], now: str) -> ResponseFilter:
        """A new filter from ``{"filterName", "conditions": [{field, operator, value}]}``."""
        name = body.get("filterName")
        if not isinstance(name, str) or not name.strip():
            raise errors.invalid_param("filterName", "expected a non-empty string")
        raw = body.get("conditions", [])
        if not isinstance(raw, list):
            raise errors.invalid_param("conditions", "expected an array of conditions")
        # Real filter ids are UUIDs (the spec's example: 9b67fbb7-ef89-430d-8ddf-f17f44de9254).
        return cls(str(uuid.uuid4()), name.strip(), now, [Condition.parse(c) for c in raw])


def finished_responses(now: str) -> ResponseFilter:
    """The filter the seeded surveys come with: responses that reached the end."""
    return ResponseFilter(
        str(uuid.uuid4()), "Finished responses", now, [Condition("finished", "eq", 1)]
    )
