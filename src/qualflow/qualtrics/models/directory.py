"""XM Directory: directories, contacts and mailing lists."""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import AliasChoices, Field

from qualflow.qualtrics.models._base import ApiDatetime, ApiModel, RequestModel

__all__ = [
    "Contact",
    "ContactCreated",
    "ContactFields",
    "ContactInput",
    "ContactUpdate",
    "DeduplicationCriteria",
    "Directory",
    "MailingList",
]


class DeduplicationCriteria(ApiModel):
    email: bool | None = None
    first_name: bool | None = None
    last_name: bool | None = None
    external_data_reference: bool | None = None
    phone: bool | None = None


class Directory(ApiModel):
    """``GET /directories`` element; ``directory_id`` is a ``POOL_…`` id."""

    directory_id: str
    name: str | None = None
    contact_count: int | None = None
    is_default: bool | None = None
    deduplication_criteria: DeduplicationCriteria | None = None


class Contact(ApiModel):
    """A directory or mailing-list contact (``CID_…``)."""

    # Directory listings say ``contactId``; some single-contact reads say ``id``.
    contact_id: str = Field(validation_alias=AliasChoices("contactId", "id", "contact_id"))
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    ext_ref: str | None = None
    language: str | None = None
    unsubscribed: bool | None = None
    embedded_data: dict[str, Any] | None = None
    response_history: list[dict[str, Any]] | None = None
    email_history: list[dict[str, Any]] | None = None


class ContactFields(TypedDict, total=False):
    """Keyword form of :class:`ContactInput`."""

    first_name: str
    last_name: str
    email: str
    phone: str
    ext_ref: str
    language: str
    unsubscribed: bool
    embedded_data: dict[str, Any]


class ContactInput(RequestModel):
    """Body to create a contact in a directory or a mailing list."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    ext_ref: str | None = None
    language: str | None = None
    unsubscribed: bool | None = None
    embedded_data: dict[str, Any] | None = None


class ContactUpdate(ContactInput):
    """Body of ``PUT …/contacts/{id}``: only the fields you set are changed."""


class ContactCreated(ApiModel):
    id: str
    contact_lookup_id: str | None = None


class MailingList(ApiModel):
    """A mailing list (``CG_…``) of a directory."""

    mailing_list_id: str
    name: str | None = None
    owner_id: str | None = None
    last_modified_date: ApiDatetime = None
    creation_date: ApiDatetime = None
    contact_count: int | None = None
