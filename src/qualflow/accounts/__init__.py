"""People, roles, permissions (area × Manage/View), personal API tokens and UI sessions."""

from qualflow.accounts.permissions import MANAGE, NONE, VIEW, Area, Level, Role
from qualflow.accounts.principal import Principal

__all__ = ["MANAGE", "NONE", "VIEW", "Area", "Level", "Principal", "Role"]
