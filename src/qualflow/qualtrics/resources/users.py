"""Users and groups of the brand (brand-administrator calls)."""

from __future__ import annotations

from pydantic import SecretStr

from qualflow.qualtrics._core import ApiCall, nothing, page_of, path_segment, result_as
from qualflow.qualtrics.models import (
    ApiToken,
    CreatedId,
    Group,
    GroupCreate,
    GroupUpdate,
    Page,
    User,
    UserCreate,
    UserUpdate,
)
from qualflow.qualtrics.paging import AsyncPager, SyncPager
from qualflow.qualtrics.resources._resource import AsyncResource, SyncResource

__all__ = ["AsyncGroups", "AsyncUsers", "Groups", "Users"]


def _created(path: str, body: dict[str, object]) -> ApiCall[str]:
    return ApiCall("POST", path, lambda envelope: result_as(CreatedId)(envelope).id, json=body)


def _non_empty(body: dict[str, object], what: str) -> dict[str, object]:
    if not body:
        raise ValueError(f"nothing to update: give at least one {what} field")
    return body


class _UserCalls:
    @staticmethod
    def one(user_id: str) -> str:
        return f"/users/{path_segment(user_id, 'user_id')}"

    @staticmethod
    def list() -> ApiCall[Page[User]]:
        return ApiCall("GET", "/users", page_of(User))

    @staticmethod
    def get(user_id: str) -> ApiCall[User]:
        return ApiCall("GET", _UserCalls.one(user_id), result_as(User))

    @staticmethod
    def update(user_id: str, update: UserUpdate) -> ApiCall[None]:
        body = _non_empty(update.to_body(), "user")
        return ApiCall("PUT", _UserCalls.one(user_id), nothing, json=body)

    @staticmethod
    def delete(user_id: str) -> ApiCall[None]:
        return ApiCall("DELETE", _UserCalls.one(user_id), nothing)

    @staticmethod
    def get_token(user_id: str) -> ApiCall[SecretStr]:
        return ApiCall(
            "GET",
            f"{_UserCalls.one(user_id)}/apitoken",
            lambda envelope: result_as(ApiToken)(envelope).api_token,
        )

    @staticmethod
    def create_token(user_id: str) -> ApiCall[SecretStr]:
        return ApiCall(
            "POST",
            f"{_UserCalls.one(user_id)}/apitoken",
            lambda envelope: result_as(ApiToken)(envelope).api_token,
        )


class _GroupCalls:
    @staticmethod
    def one(group_id: str) -> str:
        return f"/groups/{path_segment(group_id, 'group_id')}"

    @staticmethod
    def list() -> ApiCall[Page[Group]]:
        return ApiCall("GET", "/groups", page_of(Group))

    @staticmethod
    def get(group_id: str) -> ApiCall[Group]:
        return ApiCall("GET", _GroupCalls.one(group_id), result_as(Group))

    @staticmethod
    def update(group_id: str, update: GroupUpdate) -> ApiCall[None]:
        body = _non_empty(update.to_body(), "group")
        return ApiCall("PUT", _GroupCalls.one(group_id), nothing, json=body)

    @staticmethod
    def delete(group_id: str) -> ApiCall[None]:
        return ApiCall("DELETE", _GroupCalls.one(group_id), nothing)

    @staticmethod
    def members(group_id: str) -> ApiCall[Page[User]]:
        return ApiCall("GET", f"{_GroupCalls.one(group_id)}/members", page_of(User))

    @staticmethod
    def add_member(group_id: str, user_id: str) -> ApiCall[None]:
        path_segment(user_id, "user_id")
        return ApiCall(
            "POST",
            f"{_GroupCalls.one(group_id)}/members",
            nothing,
            json={"userId": user_id},
            # Adding a member who is already in the group leaves the group unchanged.
            safe_to_repeat=True,
        )

    @staticmethod
    def remove_member(group_id: str, user_id: str) -> ApiCall[None]:
        uid = path_segment(user_id, "user_id")
        return ApiCall("DELETE", f"{_GroupCalls.one(group_id)}/members/{uid}", nothing)


class Users(SyncResource):
    """Users of the brand: ``client.users``."""

    def iter(self) -> SyncPager[User]:
        return self._pager(_UserCalls.list())

    def list(self, *, limit: int | None = None) -> list[User]:
        return self.iter().take(limit)

    def get(self, user_id: str) -> User:
        return self._run(_UserCalls.get(user_id))

    def create(self, user: UserCreate) -> str:
        """Create a user; returns the ``UR_…`` id."""
        return self._run(_created("/users", user.to_body()))

    def update(self, user_id: str, update: UserUpdate) -> None:
        self._run(_UserCalls.update(user_id, update))

    def delete(self, user_id: str) -> None:
        self._run(_UserCalls.delete(user_id))

    def get_api_token(self, user_id: str) -> SecretStr:
        """The user's current API token (``.get_secret_value()`` to use it)."""
        return self._run(_UserCalls.get_token(user_id))

    def create_api_token(self, user_id: str) -> SecretStr:
        """Issue a new API token for the user; the previous one stops working."""
        return self._run(_UserCalls.create_token(user_id))


class AsyncUsers(AsyncResource):
    def iter(self) -> AsyncPager[User]:
        return self._pager(_UserCalls.list())

    async def list(self, *, limit: int | None = None) -> list[User]:
        return await self.iter().take(limit)

    async def get(self, user_id: str) -> User:
        return await self._run(_UserCalls.get(user_id))

    async def create(self, user: UserCreate) -> str:
        return await self._run(_created("/users", user.to_body()))

    async def update(self, user_id: str, update: UserUpdate) -> None:
        await self._run(_UserCalls.update(user_id, update))

    async def delete(self, user_id: str) -> None:
        await self._run(_UserCalls.delete(user_id))

    async def get_api_token(self, user_id: str) -> SecretStr:
        return await self._run(_UserCalls.get_token(user_id))

    async def create_api_token(self, user_id: str) -> SecretStr:
        return await self._run(_UserCalls.create_token(user_id))


class Groups(SyncResource):
    """Groups (``GR_…``) and their members: ``client.groups``."""

    def iter(self) -> SyncPager[Group]:
        return self._pager(_GroupCalls.list())

    def list(self, *, limit: int | None = None) -> list[Group]:
        return self.iter().take(limit)

    def get(self, group_id: str) -> Group:
        return self._run(_GroupCalls.get(group_id))

    def create(self, group: GroupCreate) -> str:
        """Create a group (``type`` is a ``GT_…`` group type); returns its ``GR_…`` id."""
        return self._run(_created("/groups", group.to_body()))

    def update(self, group_id: str, update: GroupUpdate) -> None:
        self._run(_GroupCalls.update(group_id, update))

    def delete(self, group_id: str) -> None:
        self._run(_GroupCalls.delete(group_id))

    def iter_members(self, group_id: str) -> SyncPager[User]:
        """The group's members (not in Qualtrics' published docs; the sandbox serves it)."""
        return self._pager(_GroupCalls.members(group_id))

    def add_member(self, group_id: str, user_id: str) -> None:
        self._run(_GroupCalls.add_member(group_id, user_id))

    def remove_member(self, group_id: str, user_id: str) -> None:
        self._run(_GroupCalls.remove_member(group_id, user_id))


class AsyncGroups(AsyncResource):
    def iter(self) -> AsyncPager[Group]:
        return self._pager(_GroupCalls.list())

    async def list(self, *, limit: int | None = None) -> list[Group]:
        return await self.iter().take(limit)

    async def get(self, group_id: str) -> Group:
        return await self._run(_GroupCalls.get(group_id))

    async def create(self, group: GroupCreate) -> str:
        return await self._run(_created("/groups", group.to_body()))

    async def update(self, group_id: str, update: GroupUpdate) -> None:
        await self._run(_GroupCalls.update(group_id, update))

    async def delete(self, group_id: str) -> None:
        await self._run(_GroupCalls.delete(group_id))

    def iter_members(self, group_id: str) -> AsyncPager[User]:
        return self._pager(_GroupCalls.members(group_id))

    async def add_member(self, group_id: str, user_id: str) -> None:
        await self._run(_GroupCalls.add_member(group_id, user_id))

    async def remove_member(self, group_id: str, user_id: str) -> None:
        await self._run(_GroupCalls.remove_member(group_id, user_id))
