"""A cached response pruned by retention while a queued run still needs it is not lost: the run's
fetch misses the cache and gets the response from Qualtrics again."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from qualflow.engine.models import CachedResponse
from qualflow.engine.responses import ResponseFetcher
from qualflow.engine.runtime import Engine
from qualflow.store.base import utcnow
from qualflow.web.retention import prune_cached_responses
from tests.engine.test_response_cache import _Qualtrics


def test_a_pruned_response_is_fetched_again(engine: Engine) -> None:
    qualtrics = _Qualtrics()
    live = qualtrics.state.record_response(qualtrics.survey_id, {"tier": "live"}, emit=False)
    exported = {"responseId": live.id, "values": {"tier": "exported"}}
    # Another worker exported it a day and more ago; this worker has never held it in memory.
    ResponseFetcher(engine.services).store(1, qualtrics.survey_id, [exported])
    factory = engine.services.sessionmaker
    with factory() as session, session.begin():
        session.execute(update(CachedResponse).values(fetched_at=utcnow() - timedelta(hours=30)))

    assert prune_cached_responses(factory, timedelta(hours=24)) == 1
    with factory() as session:
        assert session.scalars(select(CachedResponse.response_id)).all() == []

    fetcher = ResponseFetcher(engine.services)

    async def fetch() -> object:
        async with qualtrics.client() as client:
            payload = await fetcher.get(client, 1, qualtrics.survey_id, live.id, None)
            return payload["values"]["tier"]

    assert asyncio.run(fetch()) == "live"
    assert fetcher.stats["single_gets"] == 1
    assert fetcher.stats["cache_hits"] == 0
