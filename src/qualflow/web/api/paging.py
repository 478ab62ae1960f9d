"""List operations: the same ``limit`` (and ``offset``, from :mod:`qualflow.web.deps`) on every
list that pages, what a page's ``total`` counts, and the 422 of a refused filter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from qualflow.store.paging import TOTAL_DESCRIPTION as TOTAL_DESCRIPTION
from qualflow.store.paging import page_total
from qualflow.web.deps import ApiError, refused_field

MAX_LIMIT = 500
DEFAULT_LIMIT = 50

#: How many rows one page holds; out of range is a 422 naming ``limit``, never clamped.
Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"Rows per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}); "
        "a value outside is refused with 422.",
    ),
]


def parameter_error(name: str, message: str) -> ApiError:
    """The 422 for a query parameter a handler refuses, shaped as FastAPI's own: ``details``
    names the parameter."""
    return refused_field("validation_error", message, name)


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """One page of a list: the same envelope (and field names) as the runs list."""

    items: list[Item]
    total: int = Field(description=TOTAL_DESCRIPTION)
    limit: int
    offset: int


def page_of(
    items: Sequence[Item], counted: Callable[[], int], *, limit: int, offset: int
) -> Page[Item]:
    """The page of ``items`` (the rows at ``offset``, at most ``limit``); ``counted()`` counts
    every matching row, called only when the page alone cannot tell the total."""
    total = page_total(counted, shown=len(items), limit=limit, offset=offset)
    return Page[Item](items=list(items), total=total, limit=limit, offset=offset)
