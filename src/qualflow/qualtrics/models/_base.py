"""Model bases: lenient for what Qualtrics sends, strict for what we send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "ApiDatetime",
    "ApiModel",
    "AwareUtcDatetime",
    "CreatedId",
    "Meta",
    "Page",
    "RequestModel",
    "UtcDatetime",
    "format_utc",
]

T = TypeVar("T")


def format_utc(value: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, the way Qualtrics writes and expects dates.

    A naive datetime is taken to be UTC already (Qualtrics' space-separated dates are UTC).
    """
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def _no_date(value: Any) -> Any:
    # MySQL-backed endpoints say "no date" as "0000-00-00 00:00:00"; others send "".
    if isinstance(value, str) and (not value.strip() or value.startswith("0000-00-00")):
        return None
    return value


def _as_utc(value: datetime | None) -> datetime | None:
    # Space-separated dates ("2019-08-01 02:23:00", survey-definition metadata) carry no zone
    # but are UTC; left naive they could not be compared with the client's other dates.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _format_optional(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)


#: A datetime read from Qualtrics; serialises as ``2024-06-10T23:20:09Z``.
UtcDatetime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]
#: An optional datetime read from Qualtrics: blank and MySQL zero dates read as ``None``, dates
#: without a zone as UTC.
ApiDatetime = Annotated[
    datetime | None,
    BeforeValidator(_no_date),
    AfterValidator(_as_utc),
    PlainSerializer(_format_optional, return_type=str | None, when_used="json"),
]
#: A datetime we send: must carry a timezone, so "9 am" is never silently taken as UTC.
AwareUtcDatetime = Annotated[
    AwareDatetime, PlainSerializer(format_utc, return_type=str, when_used="json")
]


class ApiModel(BaseModel):
    """A shape Qualtrics returns: camelCase on the wire, snake_case in Python.

    Unknown fields are kept (``model_extra``) rather than rejected: Qualtrics adds fields over
    time and a client must not break when it does.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )


class RequestModel(BaseModel):
    """A body we send: unknown fields are refused, so a typo fails here and not at Qualtrics."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )

    def to_body(self) -> dict[str, Any]:
        """The JSON body: camelCase keys, dates as ISO UTC; unset and ``None`` fields left out.

        Qualtrics refuses ``null`` for most fields; the few bodies where ``null`` means "clear
        this" (survey expiration dates) override this method.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Meta(ApiModel):
    """The ``meta`` part of every envelope."""

    http_status: str | None = None
    request_id: str | None = None
    notice: str | None = None


class Page(ApiModel, Generic[T]):
    """One page of a list: ``elements`` and the absolute URL of the next page, if any."""

    elements: list[T] = Field(default_factory=list)
    next_page: str | None = None


class CreatedId(ApiModel):
    """The ``{"id": …}`` result of most create calls."""

    id: str
