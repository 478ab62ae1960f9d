"""Paged lists: one envelope for every list that pages, and the total a page shows ("page 3 of
40"), counted only when it must be."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

#: What a page's ``total`` counts, said alike by every paged list (REST runs, rewards, …).
TOTAL_DESCRIPTION = (
    "How many rows match the filters in all (every page, not only this one): "
    "the last page is reached when offset + len(items) >= total."
)


def page_total(counted: Callable[[], int], *, shown: int, limit: int, offset: int) -> int:
    """How many rows match in all, for a page of ``shown`` rows: a page that is neither empty
    nor full is the last, so its end is the total and ``counted()`` (a COUNT of every matching
    row) is not needed."""
    if 0 < shown < limit or (shown == 0 and offset == 0):
        return offset + shown
    return counted()


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """One page of a list, with the same field names for every list (REST, UI and CLI)."""

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
