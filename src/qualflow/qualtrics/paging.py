"""Lazy iteration over Qualtrics lists, following ``nextPage`` links.

Both paging schemes (``offset`` on surveys/users/groups/distributions, ``skipToken`` on the
XM Directory) hand back an absolute ``nextPage`` URL; the pagers follow it verbatim, but only
on the API's own host (see :func:`~qualflow.qualtrics._core.check_next_page`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from typing import Generic, TypeVar

from qualflow.qualtrics._core import ApiCall, check_next_page
from qualflow.qualtrics.errors import UnexpectedResponse
from qualflow.qualtrics.models import Page

__all__ = ["AsyncPager", "SyncPager"]

T = TypeVar("T")


class _PagerBase(Generic[T]):
    def __init__(self, first: ApiCall[Page[T]], *, origin: str, api_base: str) -> None:
        self._first = first
        self._origin = origin
        self._api_base = api_base

    def _next_call(self, call: ApiCall[Page[T]], page: Page[T], seen: set[str]) -> ApiCall[Page[T]]:
        assert page.next_page is not None
        current = call.path if call.absolute else self._api_base + call.path
        url = check_next_page(page.next_page, current, self._origin)
        if url in seen:
            raise UnexpectedResponse(f"nextPage {url} was already fetched: the list loops")
        seen.add(url)
        return call.follow(url)


class SyncPager(_PagerBase[T]):
    """Iterate elements (``for x in pager``) or pages (``pager.pages()``); nothing is fetched
    before iteration starts, and each page is fetched only when the previous one is used up."""

    def __init__(
        self,
        execute: Callable[[ApiCall[Page[T]]], Page[T]],
        first: ApiCall[Page[T]],
        *,
        origin: str,
        api_base: str,
    ) -> None:
        super().__init__(first, origin=origin, api_base=api_base)
        self._execute = execute

    def pages(self) -> Iterator[Page[T]]:
        call = self._first
        seen: set[str] = set()
        while True:
            page = self._execute(call)
            yield page
            if not page.next_page:
                return
            call = self._next_call(call, page, seen)

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.elements

    def take(self, limit: int | None = None) -> list[T]:
        """Up to ``limit`` elements (all when ``None``), fetching no page beyond the last needed."""
        items: list[T] = []
        if limit is not None and limit <= 0:
            return items
        for item in self:
            items.append(item)
            if limit is not None and len(items) >= limit:
                break
        return items


class AsyncPager(_PagerBase[T]):
    """``async for x in pager`` / ``async for page in pager.pages()``; fetched lazily."""

    def __init__(
        self,
        execute: Callable[[ApiCall[Page[T]]], Awaitable[Page[T]]],
        first: ApiCall[Page[T]],
        *,
        origin: str,
        api_base: str,
    ) -> None:
        super().__init__(first, origin=origin, api_base=api_base)
        self._execute = execute

    async def pages(self) -> AsyncIterator[Page[T]]:
        call = self._first
        seen: set[str] = set()
        while True:
            page = await self._execute(call)
            yield page
            if not page.next_page:
                return
            call = self._next_call(call, page, seen)

    async def _elements(self) -> AsyncGenerator[T, None]:
        async for page in self.pages():
            for item in page.elements:
                yield item

    def __aiter__(self) -> AsyncIterator[T]:
        return self._elements()

    async def take(self, limit: int | None = None) -> list[T]:
        items: list[T] = []
        if limit is not None and limit <= 0:
            return items
        async with aclosing(self._elements()) as elements:
            async for item in elements:
                items.append(item)
                if limit is not None and len(items) >= limit:
                    break
        return items
