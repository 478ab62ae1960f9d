"""Who is calling: the authenticated person with their effective permissions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from qualflow.accounts.permissions import Area, Level, Role

__all__ = ["Principal"]


@dataclass(frozen=True)
class Principal:
    """An authenticated, active person, as seen by one request."""

    user_id: int
    email: str
    name: str
    role: Role
    grants: Mapping[Area, Level]
    #: How the request authenticated: a personal API token or a UI session cookie.
    via: Literal["token", "session"]
    token_id: int | None = None
    session_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def level(self, area: Area | str) -> Level:
        return self.grants.get(Area(area), Level.NONE)

    def can(self, area: Area | str, level: Level = Level.VIEW) -> bool:
        """Whether the person holds ``level`` (or more) on ``area``."""
        return self.level(area) >= level
