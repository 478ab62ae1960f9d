"""Roles, areas and levels: who may do what.

Permissions are an area (connections, automations, …) at a level. ``MANAGE`` includes ``VIEW``.
A role gives default levels; an admin can override any area per person (up or down).

Default grants (also in the README):

============  =======  =======  ======  =======
area          admin    manager  member  viewer
============  =======  =======  ======  =======
connections   manage   manage   view    view
automations   manage   manage   manage  view
runs          manage   manage   manage  view
incentives    manage   manage   view    view
panel         manage   manage   view    view
watch         manage   manage   view    view
audiences     manage   manage   view    view
api_keys      manage   view     —       —
============  =======  =======  ======  =======

``api_keys`` View reveals platform API keys in clear (each reveal audited), so members and
viewers get no access by default. Managing people (users, roles, overrides) is for admins only.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, StrEnum

__all__ = [
    "MANAGE",
    "NONE",
    "ROLE_GRANTS",
    "VIEW",
    "Area",
    "Level",
    "Role",
    "effective_grants",
]


class Area(StrEnum):
    CONNECTIONS = "connections"
    AUTOMATIONS = "automations"
    RUNS = "runs"
    INCENTIVES = "incentives"
    PANEL = "panel"
    WATCH = "watch"
    AUDIENCES = "audiences"
    API_KEYS = "api_keys"

    @property
    def label(self) -> str:
        return "API keys" if self is Area.API_KEYS else self.value


class Level(IntEnum):
    NONE = 0
    VIEW = 1
    MANAGE = 2

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def api_name(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | Level) -> Level:
        if isinstance(value, cls):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown permission level {value!r} (none, view, manage)") from None


NONE = Level.NONE
VIEW = Level.VIEW
MANAGE = Level.MANAGE


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    MEMBER = "member"
    VIEWER = "viewer"


def _grants(default: Level, **levels: Level) -> dict[Area, Level]:
    return {area: levels.get(area.value, default) for area in Area}


ROLE_GRANTS: Mapping[Role, Mapping[Area, Level]] = {
    Role.ADMIN: _grants(MANAGE),
    Role.MANAGER: _grants(MANAGE, api_keys=VIEW),
    Role.MEMBER: _grants(VIEW, automations=MANAGE, runs=MANAGE, api_keys=NONE),
    Role.VIEWER: _grants(VIEW, api_keys=NONE),
}


def effective_grants(
    role: Role, overrides: Mapping[Area, Level] | None = None
) -> dict[Area, Level]:
    """The level per area for a role with per-person overrides applied on top."""
    grants = dict(ROLE_GRANTS[role])
    grants.update(overrides or {})
    return grants
