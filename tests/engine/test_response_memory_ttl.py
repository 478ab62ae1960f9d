"""A worker's memory of recently exported responses is short-lived: it serves the runs waiting
for an export, not later ones. An entry past its time is read from the ``response_cache``
table (which retention prunes) or fetched again, so no respondent's answers stay in a
process's memory beyond the cache's shortest retention (one hour)."""

from __future__ import annotations

import asyncio

from qualflow.engine.responses import RECENT_TTL_SECONDS, ResponseFetcher
from qualflow.engine.runtime import Engine
from tests.engine.test_response_cache import _exported, _forget_table, _Qualtrics


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_remembered_response_past_its_time_comes_from_the_table_or_qualtrics(
    engine: Engine,
) -> None:
    assert 0 < RECENT_TTL_SECONDS <= 3600  # never longer than the shortest cache retention
    qualtrics = _Qualtrics()
    state, survey_id = qualtrics.state, qualtrics.survey_id
    live = state.record_response(survey_id, {"tier": "live"}, emit=False)
    clock = _Clock()
    fetcher = ResponseFetcher(engine.services, clock=clock)

    async def scenario() -> list[object]:
        async with qualtrics.client() as client:

            async def get(response_id: str) -> object:
                payload = await fetcher.get(client, 1, survey_id, response_id, None)
                return payload["values"]["tier"]

            # Exported with a stale copy of the live response: memory serves it while fresh.
            fetcher.store(1, survey_id, [_exported(live.id, "remembered")])
            _forget_table(engine)
            clock.now += RECENT_TTL_SECONDS - 1
            fresh = await get(live.id)
            clock.now += 2
            expired = await get(live.id)  # neither memory nor the table: from Qualtrics
            return [fresh, expired]

    assert asyncio.run(scenario()) == ["remembered", "live"]
    assert fetcher.stats["single_gets"] == 1


def test_expired_entries_leave_memory_when_new_ones_arrive(engine: Engine) -> None:
    clock = _Clock()
    fetcher = ResponseFetcher(engine.services, clock=clock)
    fetcher.store(1, "SV_x", [_exported("R_old", "old")])
    clock.now += RECENT_TTL_SECONDS + 1
    fetcher.store(1, "SV_x", [_exported("R_new", "new")])
    assert fetcher.remembered_count() == 1
