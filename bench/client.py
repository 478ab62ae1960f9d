"""Client overhead per request: qualflow's Client/AsyncClient vs bare httpx, same sandbox.

Both sides call the in-process sandbox (no network), so the difference is what the client adds:
request building, auth headers, rate limiter, retry bookkeeping, envelope decoding and pydantic
models. Run: .venv/bin/python bench/client.py [requests]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import anyio
import httpx
from rich.console import Console
from rich.table import Table

from qualflow.qualtrics import AsyncClient, Client, RateLimiter, SyncASGITransport, Unlimited
from qualflow.sandbox import create_app, seed
from qualflow.sandbox.state import SandboxConfig, SandboxState

BASE = "http://sandbox.test"


def _timed(fn: Callable[[], None], repeat: int = 3) -> float:
    """Best of ``repeat`` runs: the machine is shared, the minimum is the least disturbed."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    state = SandboxState(SandboxConfig(page_size=100))
    _, token = state.create_user("bench@example.org")
    survey_id = seed.customer_satisfaction(state).id
    for _ in range(500):
        seed.customer_satisfaction(state)
    app = create_app(state)
    path = f"/API/v3/surveys/{survey_id}"
    rows: list[tuple[str, float, int]] = []

    def raw_sync() -> None:
        with httpx.Client(base_url=BASE, transport=SyncASGITransport(app)) as http:
            for _ in range(n):
                http.get(path, headers={"X-API-TOKEN": token}).json()

    def client_sync() -> None:
        transport = SyncASGITransport(app)
        # No client-side pacing here: the default 3,000/min bucket would be what is measured.
        with Client(
            base_url=BASE, api_token=token, transport=transport, rate_limiter=Unlimited()
        ) as qualtrics:
            for _ in range(n):
                qualtrics.surveys.get(survey_id)

    async def raw_async() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(base_url=BASE, transport=transport) as http:
            for _ in range(n):
                (await http.get(path, headers={"X-API-TOKEN": token})).json()

    async def client_async(limiter: RateLimiter | Unlimited) -> None:
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient(
            base_url=BASE, api_token=token, transport=transport, rate_limiter=limiter
        ) as qualtrics:
            for _ in range(n):
                await qualtrics.surveys.get(survey_id)

    async def paging() -> None:
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient(
            base_url=BASE, api_token=token, transport=transport, rate_limiter=Unlimited()
        ) as qualtrics:
            count = 0
            async for _ in qualtrics.surveys.iter():
                count += 1
            assert count == 501

    unlimited = Unlimited()
    big_bucket = RateLimiter(10**9, burst=10**9)
    rows.append(("httpx sync, raw JSON", _timed(raw_sync), n))
    rows.append(("Client.surveys.get, no limiter", _timed(client_sync), n))
    rows.append(("httpx async, raw JSON", _timed(lambda: anyio.run(raw_async)), n))
    rows.append(
        (
            "AsyncClient.surveys.get, no limiter",
            _timed(lambda: anyio.run(client_async, unlimited)),
            n,
        )
    )
    rows.append(
        (
            "AsyncClient.surveys.get, token bucket",
            _timed(lambda: anyio.run(client_async, big_bucket)),
            n,
        )
    )
    rows.append(
        ("AsyncClient.surveys.iter (501 surveys, 6 pages)", _timed(lambda: anyio.run(paging)), 6)
    )

    table = Table(
        title=f"qualflow.qualtrics client overhead ({n} GET /surveys/{{id}} in-process, best of 3)"
    )
    table.add_column("path")
    table.add_column("requests", justify="right")
    table.add_column("total s", justify="right")
    table.add_column("per request ms", justify="right")
    table.add_column("requests/s", justify="right")
    for name, seconds, count in rows:
        table.add_row(
            name,
            str(count),
            f"{seconds:.2f}",
            f"{seconds / count * 1000:.2f}",
            f"{count / seconds:,.0f}",
        )
    Console().print(table)
    sync_overhead = (rows[1][1] - rows[0][1]) / n * 1000
    async_overhead = (rows[3][1] - rows[2][1]) / n * 1000
    Console().print(
        f"client overhead per request: sync {sync_overhead:.2f} ms, async {async_overhead:.2f} ms "
        "(the brand limit allows one request per 20 ms)"
    )


if __name__ == "__main__":
    main()
