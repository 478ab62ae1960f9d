"""List operations: the same ``limit`` (and ``offset``, from :mod:`qualflow.web.deps`) on every
list that pages, what a page's ``total`` counts, and the 422 of a refused filter."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from qualflow.store.paging import TOTAL_DESCRIPTION as TOTAL_DESCRIPTION
from qualflow.store.paging import Page as Page
from qualflow.store.paging import page_of as page_of
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
