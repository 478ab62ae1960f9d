"""XM Directory: directories, their contacts and mailing lists (``skipToken`` paging)."""

from __future__ import annotations

import builtins
from typing import Any, Unpack

from qualflow.qualtrics._core import (
    ApiCall,
    QueryValue,
    nothing,
    page_of,
    path_segment,
    result_as,
)
from qualflow.qualtrics.models import (
    Contact,
    ContactCreated,
    ContactInput,
    ContactUpdate,
    CreatedId,
    Directory,
    MailingList,
    Page,
)
from qualflow.qualtrics.models.directory import ContactFields
from qualflow.qualtrics.paging import AsyncPager, SyncPager
from qualflow.qualtrics.resources._resource import AsyncResource, SyncResource

__all__ = [
    "AsyncContacts",
    "AsyncDirectories",
    "AsyncMailingLists",
    "Contacts",
    "Directories",
    "MailingLists",
]


def _paged(page_size: int | None) -> dict[str, QueryValue]:
    if page_size is not None and page_size < 1:
        raise ValueError("page_size must be at least 1")
    return {"pageSize": page_size}


def _directory(directory_id: str) -> str:
    return f"/directories/{path_segment(directory_id, 'directory_id')}"


def _contact_body(
    contact: ContactInput | None, fields: ContactFields, model: type[ContactInput]
) -> dict[str, Any]:
    if contact is not None and fields:
        raise ValueError("give a contact model or keyword fields, not both")
    return (contact or model(**fields)).to_body()


class _DirectoryCalls:
    @staticmethod
    def list(page_size: int | None) -> ApiCall[Page[Directory]]:
        return ApiCall("GET", "/directories", page_of(Directory), params=_paged(page_size))


class _ContactCalls:
    @staticmethod
    def one(directory_id: str, contact_id: str) -> str:
        return f"{_directory(directory_id)}/contacts/{path_segment(contact_id, 'contact_id')}"

    @staticmethod
    def list(directory_id: str, page_size: int | None) -> ApiCall[Page[Contact]]:
        # Qualtrics documents the skipToken scheme for this list as opt-in; without the flag
        # it falls back to its older, slower paging.
        return ApiCall(
            "GET",
            f"{_directory(directory_id)}/contacts",
            page_of(Contact),
            params={**_paged(page_size), "useNewPaginationScheme": True},
        )

    @staticmethod
    def get(directory_id: str, contact_id: str) -> ApiCall[Contact]:
        return ApiCall("GET", _ContactCalls.one(directory_id, contact_id), result_as(Contact))

    @staticmethod
    def create(directory_id: str, body: dict[str, Any]) -> ApiCall[ContactCreated]:
        return ApiCall(
            "POST", f"{_directory(directory_id)}/contacts", result_as(ContactCreated), json=body
        )

    @staticmethod
    def update(directory_id: str, contact_id: str, body: dict[str, Any]) -> ApiCall[None]:
        if not body:
            raise ValueError("nothing to update: give at least one contact field")
        return ApiCall("PUT", _ContactCalls.one(directory_id, contact_id), nothing, json=body)

    @staticmethod
    def delete(directory_id: str, contact_id: str) -> ApiCall[None]:
        return ApiCall("DELETE", _ContactCalls.one(directory_id, contact_id), nothing)


class _ListCalls:
    @staticmethod
    def base(directory_id: str) -> str:
        return f"{_directory(directory_id)}/mailinglists"

    @staticmethod
    def one(directory_id: str, mailing_list_id: str) -> str:
        return f"{_ListCalls.base(directory_id)}/{path_segment(mailing_list_id, 'mailing_list_id')}"

    @staticmethod
    def list(directory_id: str, page_size: int | None) -> ApiCall[Page[MailingList]]:
        return ApiCall(
            "GET", _ListCalls.base(directory_id), page_of(MailingList), params=_paged(page_size)
        )

    @staticmethod
    def get(directory_id: str, mailing_list_id: str) -> ApiCall[MailingList]:
        return ApiCall("GET", _ListCalls.one(directory_id, mailing_list_id), result_as(MailingList))

    @staticmethod
    def create(directory_id: str, name: str) -> ApiCall[str]:
        if not name.strip():
            raise ValueError("a mailing list needs a name")
        return ApiCall(
            "POST",
            _ListCalls.base(directory_id),
            lambda envelope: result_as(CreatedId)(envelope).id,
            json={"name": name},
        )

    @staticmethod
    def rename(directory_id: str, mailing_list_id: str, name: str) -> ApiCall[None]:
        if not name.strip():
            raise ValueError("a mailing list needs a name")
        return ApiCall(
            "PUT", _ListCalls.one(directory_id, mailing_list_id), nothing, json={"name": name}
        )

    @staticmethod
    def delete(directory_id: str, mailing_list_id: str) -> ApiCall[None]:
        return ApiCall("DELETE", _ListCalls.one(directory_id, mailing_list_id), nothing)

    @staticmethod
    def contacts(
        directory_id: str, mailing_list_id: str, page_size: int | None
    ) -> ApiCall[Page[Contact]]:
        return ApiCall(
            "GET",
            f"{_ListCalls.one(directory_id, mailing_list_id)}/contacts",
            page_of(Contact),
            params=_paged(page_size),
        )

    @staticmethod
    def add_contact(
        directory_id: str, mailing_list_id: str, body: dict[str, Any]
    ) -> ApiCall[ContactCreated]:
        return ApiCall(
            "POST",
            f"{_ListCalls.one(directory_id, mailing_list_id)}/contacts",
            result_as(ContactCreated),
            json=body,
        )

    @staticmethod
    def remove_contact(directory_id: str, mailing_list_id: str, contact_id: str) -> ApiCall[None]:
        cid = path_segment(contact_id, "contact_id")
        return ApiCall(
            "DELETE", f"{_ListCalls.one(directory_id, mailing_list_id)}/contacts/{cid}", nothing
        )


class Directories(SyncResource):
    """XM directories (``POOL_…``) of the brand: ``client.directories``."""

    def iter(self, *, page_size: int | None = None) -> SyncPager[Directory]:
        return self._pager(_DirectoryCalls.list(page_size))

    def list(self, *, limit: int | None = None) -> list[Directory]:
        return self.iter().take(limit)


class AsyncDirectories(AsyncResource):
    def iter(self, *, page_size: int | None = None) -> AsyncPager[Directory]:
        return self._pager(_DirectoryCalls.list(page_size))

    async def list(self, *, limit: int | None = None) -> list[Directory]:
        return await self.iter().take(limit)


class Contacts(SyncResource):
    """Contacts of an XM directory: ``client.contacts``."""

    def iter(self, directory_id: str, *, page_size: int | None = None) -> SyncPager[Contact]:
        """Every contact of the directory, ``page_size`` at a time (skipToken paging)."""
        return self._pager(_ContactCalls.list(directory_id, page_size))

    def list(self, directory_id: str, *, limit: int | None = None) -> list[Contact]:
        return self.iter(directory_id).take(limit)

    def get(self, directory_id: str, contact_id: str) -> Contact:
        return self._run(_ContactCalls.get(directory_id, contact_id))

    def create(
        self,
        directory_id: str,
        contact: ContactInput | None = None,
        **fields: Unpack[ContactFields],
    ) -> ContactCreated:
        """Add a contact (a :class:`ContactInput`, or its fields as keywords)."""
        body = _contact_body(contact, fields, ContactInput)
        return self._run(_ContactCalls.create(directory_id, body))

    def update(
        self,
        directory_id: str,
        contact_id: str,
        update: ContactUpdate | None = None,
        **fields: Unpack[ContactFields],
    ) -> None:
        """Change the given fields of a contact."""
        body = _contact_body(update, fields, ContactUpdate)
        self._run(_ContactCalls.update(directory_id, contact_id, body))

    def delete(self, directory_id: str, contact_id: str) -> None:
        self._run(_ContactCalls.delete(directory_id, contact_id))


class AsyncContacts(AsyncResource):
    def iter(self, directory_id: str, *, page_size: int | None = None) -> AsyncPager[Contact]:
        return self._pager(_ContactCalls.list(directory_id, page_size))

    async def list(self, directory_id: str, *, limit: int | None = None) -> list[Contact]:
        return await self.iter(directory_id).take(limit)

    async def get(self, directory_id: str, contact_id: str) -> Contact:
        return await self._run(_ContactCalls.get(directory_id, contact_id))

    async def create(
        self,
        directory_id: str,
        contact: ContactInput | None = None,
        **fields: Unpack[ContactFields],
    ) -> ContactCreated:
        body = _contact_body(contact, fields, ContactInput)
        return await self._run(_ContactCalls.create(directory_id, body))

    async def update(
        self,
        directory_id: str,
        contact_id: str,
        update: ContactUpdate | None = None,
        **fields: Unpack[ContactFields],
    ) -> None:
        body = _contact_body(update, fields, ContactUpdate)
        await self._run(_ContactCalls.update(directory_id, contact_id, body))

    async def delete(self, directory_id: str, contact_id: str) -> None:
        await self._run(_ContactCalls.delete(directory_id, contact_id))


class MailingLists(SyncResource):
    """Mailing lists (``CG_…``) of an XM directory and their contacts: ``client.mailing_lists``."""

    def iter(self, directory_id: str, *, page_size: int | None = None) -> SyncPager[MailingList]:
        return self._pager(_ListCalls.list(directory_id, page_size))

    def list(self, directory_id: str, *, limit: int | None = None) -> list[MailingList]:
        return self.iter(directory_id).take(limit)

    def get(self, directory_id: str, mailing_list_id: str) -> MailingList:
        return self._run(_ListCalls.get(directory_id, mailing_list_id))

    def create(self, directory_id: str, name: str) -> str:
        """Create a mailing list; returns its ``CG_…`` id."""
        return self._run(_ListCalls.create(directory_id, name))

    def rename(self, directory_id: str, mailing_list_id: str, name: str) -> None:
        self._run(_ListCalls.rename(directory_id, mailing_list_id, name))

    def delete(self, directory_id: str, mailing_list_id: str) -> None:
        self._run(_ListCalls.delete(directory_id, mailing_list_id))

    def iter_contacts(
        self, directory_id: str, mailing_list_id: str, *, page_size: int | None = None
    ) -> SyncPager[Contact]:
        """The list's contacts, with their embedded data and response/email history."""
        return self._pager(_ListCalls.contacts(directory_id, mailing_list_id, page_size))

    def list_contacts(
        self, directory_id: str, mailing_list_id: str, *, limit: int | None = None
    ) -> builtins.list[Contact]:
        return self.iter_contacts(directory_id, mailing_list_id).take(limit)

    def add_contact(
        self,
        directory_id: str,
        mailing_list_id: str,
        contact: ContactInput | None = None,
        **fields: Unpack[ContactFields],
    ) -> ContactCreated:
        """Add a contact to the list (and the directory); returns ``id`` and
        ``contact_lookup_id``."""
        body = _contact_body(contact, fields, ContactInput)
        return self._run(_ListCalls.add_contact(directory_id, mailing_list_id, body))

    def remove_contact(self, directory_id: str, mailing_list_id: str, contact_id: str) -> None:
        self._run(_ListCalls.remove_contact(directory_id, mailing_list_id, contact_id))


class AsyncMailingLists(AsyncResource):
    def iter(self, directory_id: str, *, page_size: int | None = None) -> AsyncPager[MailingList]:
        return self._pager(_ListCalls.list(directory_id, page_size))

    async def list(self, directory_id: str, *, limit: int | None = None) -> list[MailingList]:
        return await self.iter(directory_id).take(limit)

    async def get(self, directory_id: str, mailing_list_id: str) -> MailingList:
        return await self._run(_ListCalls.get(directory_id, mailing_list_id))

    async def create(self, directory_id: str, name: str) -> str:
        return await self._run(_ListCalls.create(directory_id, name))

    async def rename(self, directory_id: str, mailing_list_id: str, name: str) -> None:
        await self._run(_ListCalls.rename(directory_id, mailing_list_id, name))

    async def delete(self, directory_id: str, mailing_list_id: str) -> None:
        await self._run(_ListCalls.delete(directory_id, mailing_list_id))

    def iter_contacts(
        self, directory_id: str, mailing_list_id: str, *, page_size: int | None = None
    ) -> AsyncPager[Contact]:
        return self._pager(_ListCalls.contacts(directory_id, mailing_list_id, page_size))

    async def list_contacts(
        self, directory_id: str, mailing_list_id: str, *, limit: int | None = None
    ) -> builtins.list[Contact]:
        return await self.iter_contacts(directory_id, mailing_list_id).take(limit)

    async def add_contact(
        self,
        directory_id: str,
        mailing_list_id: str,
        contact: ContactInput | None = None,
        **fields: Unpack[ContactFields],
    ) -> ContactCreated:
        body = _contact_body(contact, fields, ContactInput)
        return await self._run(_ListCalls.add_contact(directory_id, mailing_list_id, body))

    async def remove_contact(
        self, directory_id: str, mailing_list_id: str, contact_id: str
    ) -> None:
        await self._run(_ListCalls.remove_contact(directory_id, mailing_list_id, contact_id))
