"""``/eventsubscriptions``: have Qualtrics POST events (completed responses…) to a URL."""

from __future__ import annotations

from qualflow.qualtrics._core import ApiCall, nothing, page_of, path_segment, result_as
from qualflow.qualtrics.models import CreatedId, EventSubscription, EventSubscriptionCreate, Page
from qualflow.qualtrics.paging import AsyncPager, SyncPager
from qualflow.qualtrics.resources._resource import AsyncResource, SyncResource

__all__ = ["AsyncEventSubscriptions", "EventSubscriptions"]


class _Calls:
    @staticmethod
    def create(body: EventSubscriptionCreate) -> ApiCall[str]:
        return ApiCall(
            "POST",
            "/eventsubscriptions",
            lambda envelope: result_as(CreatedId)(envelope).id,
            json=body.to_body(),
        )

    @staticmethod
    def list() -> ApiCall[Page[EventSubscription]]:
        return ApiCall("GET", "/eventsubscriptions", page_of(EventSubscription))

    @staticmethod
    def get(subscription_id: str) -> ApiCall[EventSubscription]:
        sid = path_segment(subscription_id, "subscription_id")
        return ApiCall("GET", f"/eventsubscriptions/{sid}", result_as(EventSubscription))

    @staticmethod
    def delete(subscription_id: str) -> ApiCall[None]:
        sid = path_segment(subscription_id, "subscription_id")
        return ApiCall("DELETE", f"/eventsubscriptions/{sid}", nothing)


def _body(
    topics: str, publication_url: str, shared_key: str | None, encrypt: bool
) -> EventSubscriptionCreate:
    if not publication_url.startswith(("https://", "http://")):
        raise ValueError(f"publication_url must be an http(s) URL, got {publication_url!r}")
    return EventSubscriptionCreate(
        topics=topics, publication_url=publication_url, shared_key=shared_key, encrypt=encrypt
    )


class EventSubscriptions(SyncResource):
    """Webhook subscriptions of the brand: ``client.event_subscriptions``."""

    def create(
        self,
        topics: str,
        publication_url: str,
        *,
        shared_key: str | None = None,
        encrypt: bool = False,
    ) -> str:
        """Subscribe ``publication_url`` to ``topics``; returns the ``SUB_…`` id.

        ``topics`` e.g. ``surveyengine.completedResponse.SV_123`` (``*`` wildcards allowed).
        With ``shared_key`` every delivery carries ``MSG`` + ``HMAC`` (verify it with
        :func:`qualflow.qualtrics.webhooks.parse_event`). Needs brand-administrator rights.
        """
        return self._run(_Calls.create(_body(topics, publication_url, shared_key, encrypt)))

    def iter(self) -> SyncPager[EventSubscription]:
        return self._pager(_Calls.list())

    def list(self, *, limit: int | None = None) -> list[EventSubscription]:
        return self.iter().take(limit)

    def get(self, subscription_id: str) -> EventSubscription:
        return self._run(_Calls.get(subscription_id))

    def delete(self, subscription_id: str) -> None:
        self._run(_Calls.delete(subscription_id))


class AsyncEventSubscriptions(AsyncResource):
    """Async counterpart of :class:`EventSubscriptions`."""

    async def create(
        self,
        topics: str,
        publication_url: str,
        *,
        shared_key: str | None = None,
        encrypt: bool = False,
    ) -> str:
        return await self._run(
            _Calls.create(_body(topics, publication_url, shared_key, encrypt))
        )

    def iter(self) -> AsyncPager[EventSubscription]:
        return self._pager(_Calls.list())

    async def list(self, *, limit: int | None = None) -> list[EventSubscription]:
        return await self.iter().take(limit)

    async def get(self, subscription_id: str) -> EventSubscription:
        return await self._run(_Calls.get(subscription_id))

    async def delete(self, subscription_id: str) -> None:
        await self._run(_Calls.delete(subscription_id))
