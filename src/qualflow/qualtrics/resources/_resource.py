"""Base classes binding the shared call builders to a sync or an async client."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from qualflow.qualtrics._core import ApiCall
from qualflow.qualtrics.models import Page
from qualflow.qualtrics.paging import AsyncPager, SyncPager

if TYPE_CHECKING:
    from qualflow.qualtrics.async_client import AsyncClient
    from qualflow.qualtrics.client import Client

T = TypeVar("T")


class SyncResource:
    def __init__(self, client: Client) -> None:
        self._client = client

    def _run(self, call: ApiCall[T]) -> T:
        return self._client._execute(call)

    def _pager(self, call: ApiCall[Page[T]]) -> SyncPager[T]:
        return SyncPager(
            self._client._execute,
            call,
            origin=self._client.location.origin,
            api_base=self._client.api_base,
        )


class AsyncResource:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _run(self, call: ApiCall[T]) -> T:
        return await self._client._execute(call)

    def _pager(self, call: ApiCall[Page[T]]) -> AsyncPager[T]:
        return AsyncPager(
            self._client._execute,
            call,
            origin=self._client.location.origin,
            api_base=self._client.api_base,
        )
