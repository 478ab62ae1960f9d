"""The response fetcher's caches: exported responses are served from this process's memory
first, then from the ``response_cache`` table, then from Qualtrics (the sandbox here)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select

from qualflow.engine.errors import RetriableError
from qualflow.engine.models import CachedResponse
from qualflow.engine.responses import ResponseFetcher, read_exported
from qualflow.engine.runtime import Engine
from qualflow.qualtrics import AsyncClient
from qualflow.sandbox.app import create_app
from qualflow.sandbox.faults import FaultRule
from qualflow.sandbox.state import SandboxConfig, SandboxState


def _exported(response_id: str, tier: str) -> dict[str, object]:
    return {"responseId": response_id, "values": {"tier": tier, "recordedDate": "2026-11-24"}}


class _Qualtrics:
    """A sandbox with one survey, and async clients of it (in-process)."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.state = SandboxState(config or SandboxConfig())
        user, self.token = self.state.create_user("fetcher@example.org")
        self.survey_id = self.state.new_survey("Cache", owner_id=user.id).id

    def client(self) -> AsyncClient:
        return AsyncClient(
            base_url="http://sandbox.test",
            api_token=self.token,
            transport=httpx.ASGITransport(app=create_app(self.state)),
        )


def _forget_table(engine: Engine) -> None:
    with engine.services.sessionmaker() as session, session.begin():
        session.execute(delete(CachedResponse))


def test_exported_responses_are_served_from_memory_then_table_then_qualtrics(
    engine: Engine,
) -> None:
    qualtrics = _Qualtrics()
    state, survey_id = qualtrics.state, qualtrics.survey_id
    live = state.record_response(survey_id, {"tier": "live"}, emit=False)
    fetcher = ResponseFetcher(engine.services, recent_limit=2)

    async def scenario() -> list[object]:
        async with qualtrics.client() as client:

            async def get(response_id: str) -> object:
                payload = await fetcher.get(client, 1, survey_id, response_id, None)
                return payload["values"]["tier"]

            fetcher.store(1, survey_id, [_exported("R_a", "a"), _exported("R_b", "b")])
            _forget_table(engine)
            # Both still in memory although the table lost them.
            from_memory = [await get("R_a"), await get("R_b")]
            # A third export pushes the oldest out of memory (limit 2); the table serves it.
            fetcher.store(1, survey_id, [_exported("R_c", "c"), _exported("R_a", "a")])
            fetcher.store(1, survey_id, [_exported("R_d", "d")])
            from_table = await get("R_c")
            # Neither memory nor the table holds it: it comes from Qualtrics.
            fetched = await get(live.id)
            return [*from_memory, from_table, fetched]

    assert asyncio.run(scenario()) == ["a", "b", "c", "live"]
    assert fetcher.stats["cache_hits"] == 3
    assert fetcher.stats["single_gets"] == 1


def test_an_overlapping_export_stores_only_the_responses_not_cached_yet(engine: Engine) -> None:
    fetcher = ResponseFetcher(engine.services)
    fetcher.store(1, "SV_a", [_exported("R_a", "a"), _exported("R_b", "b")])
    # Another worker's later export of the same seconds: one new response, one cached already
    # (the cached copy is kept), and more than one chunk of rows.
    later = [_exported("R_b", "changed"), _exported("R_c", "c")]
    later += [_exported(f"R_n{n:04}", "n") for n in range(1200)]
    fetcher.store(1, "SV_a", later)
    with engine.services.sessionmaker() as session:
        query = select(CachedResponse.response_id, CachedResponse.payload)
        stored = {row[0]: row[1] for row in session.execute(query)}
    assert len(stored) == 1203
    assert {r: stored[r]["values"]["tier"] for r in ("R_a", "R_b", "R_c")} == {
        "R_a": "a",
        "R_b": "b",
        "R_c": "c",
    }


def test_a_batch_served_by_another_process_s_export_does_not_export_again(
    engine: Engine,
) -> None:
    qualtrics = _Qualtrics()
    state, survey_id = qualtrics.state, qualtrics.survey_id
    live = state.record_response(survey_id, {"tier": "live"}, emit=False)
    fetcher = ResponseFetcher(engine.services, single_limit=0, batch_window=1.0)
    elsewhere = ResponseFetcher(engine.services)  # another worker process, sharing the table

    async def scenario() -> list[object]:
        async with qualtrics.client() as client:
            now = datetime.now(UTC)
            waiting = asyncio.create_task(fetcher.get(client, 1, survey_id, "R_x", now))
            await asyncio.sleep(0.05)  # the batch is collecting; the other process exports
            elsewhere.store(1, survey_id, [_exported("R_x", "x")])
            served = await waiting
            exports_before_live = fetcher.stats["exports"]
            fetched = await fetcher.get(client, 1, survey_id, live.id, now)
            return [served["values"]["tier"], exports_before_live, fetched["responseId"]]

    assert asyncio.run(scenario()) == ["x", 0, live.id]
    assert fetcher.stats["exports"] == 1


def test_a_response_asked_for_during_an_export_that_holds_it_waits_for_that_export(
    engine: Engine,
) -> None:
    qualtrics = _Qualtrics(SandboxConfig(export_duration=1.0))
    state, survey_id = qualtrics.state, qualtrics.survey_id
    recorded = datetime.now(UTC) - timedelta(seconds=10)
    stamp = recorded.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    first, second = (
        state.record_response(survey_id, {"recordedDate": stamp, "endDate": stamp}, emit=False)
        for _ in range(2)
    )
    fetcher = ResponseFetcher(engine.services, single_limit=0, batch_window=0.1)

    async def scenario() -> list[str]:
        async with qualtrics.client() as client:
            batched = asyncio.create_task(fetcher.get(client, 1, survey_id, first.id, recorded))
            for _ in range(3000):  # until its batch closed and its export began
                if state.exports:
                    break
                await asyncio.sleep(0.01)
            late = await fetcher.get(client, 1, survey_id, second.id, recorded)
            return [(await batched)["responseId"], late["responseId"]]

    assert asyncio.run(scenario()) == [first.id, second.id]
    assert fetcher.stats["exports"] == 1


def test_a_batch_exports_as_soon_as_enough_responses_wait_without_waiting_out_its_window(
    engine: Engine,
) -> None:
    qualtrics = _Qualtrics()
    state, survey_id = qualtrics.state, qualtrics.survey_id
    recorded = datetime.now(UTC) - timedelta(seconds=10)
    stamp = recorded.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    responses = [
        state.record_response(survey_id, {"recordedDate": stamp, "endDate": stamp}, emit=False)
        for _ in range(3)
    ]
    # A window no test would wait out: only reaching export_at can start this export.
    fetcher = ResponseFetcher(engine.services, single_limit=0, batch_window=3600, export_at=3)

    async def scenario() -> list[str]:
        async with qualtrics.client() as client:
            asked = [fetcher.get(client, 1, survey_id, r.id, recorded) for r in responses]
            served = await asyncio.wait_for(asyncio.gather(*asked), 60)
            return [s["responseId"] for s in served]

    assert asyncio.run(scenario()) == [r.id for r in responses]
    assert fetcher.stats["exports"] == 1
    assert fetcher.stats["single_gets"] == 0


def test_once_demand_outruns_single_gets_later_requests_join_the_export(engine: Engine) -> None:
    qualtrics = _Qualtrics()
    state, survey_id = qualtrics.state, qualtrics.survey_id
    recorded = datetime.now(UTC) - timedelta(seconds=10)
    stamp = recorded.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    first, second, third = (
        state.record_response(survey_id, {"recordedDate": stamp, "endDate": stamp}, emit=False)
        for _ in range(3)
    )
    # The first single GET is slow, so the second request finds no free single slot.
    state.faults.add(FaultRule(path=f"*/responses/{first.id}", method="GET", latency=0.3))
    fetcher = ResponseFetcher(engine.services, single_limit=1, batch_window=1.0, export_at=100)

    async def scenario() -> list[str]:
        async with qualtrics.client() as client:
            asked = [asyncio.create_task(fetcher.get(client, 1, survey_id, first.id, recorded))]
            await asyncio.sleep(0.05)
            asked.append(
                asyncio.create_task(fetcher.get(client, 1, survey_id, second.id, recorded))
            )
            await asked[0]  # the single slot is free again, while the export still gathers
            asked.append(asyncio.create_task(fetcher.get(client, 1, survey_id, third.id, recorded)))
            served = await asyncio.wait_for(asyncio.gather(*asked), 60)
            return [s["responseId"] for s in served]

    assert asyncio.run(scenario()) == [first.id, second.id, third.id]
    assert fetcher.stats["single_gets"] == 1
    assert fetcher.stats["exports"] == 1


def test_an_export_file_is_read_one_response_at_a_time_and_a_broken_line_is_retried(
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.ndjson"
    path.write_text('{"responseId": "R_a", "values": {}}\n\n{"responseId": "R_b"}\n')
    assert [r["responseId"] for r in read_exported(path)] == ["R_a", "R_b"]

    path.write_text('{"responseId": "R_a"}\n{"responseId": "R_b", "val\n')
    with pytest.raises(RetriableError, match="line 2 of the export is not JSON"):
        list(read_exported(path))
