"""Sandbox hot paths: recording responses, the HTTP handler, and 100k-response exports.

Run: .venv/bin/python bench/sandbox.py [--responses 100000]
Prints a table. Numbers depend on the machine; the point is the order of magnitude.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.export import stream_file
from qualflow.sandbox.respondents import Simulator
from qualflow.sandbox.seed import customer_satisfaction


async def _asgi_post(app: Any, path: str, token: str, body: bytes) -> int:
    """Drive the ASGI app directly (no client library in the measurement)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"x-api-token", token.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--http", type=int, default=10_000, help="POSTs through the ASGI app")
    args = parser.parse_args()
    n = args.responses

    state = SandboxState()
    _, token = state.create_user("bench@example.com")
    survey = customer_satisfaction(state)
    values = Simulator(state, survey.id, seed=1).generate(n)
    rows: list[tuple[str, str, str]] = []

    started = time.perf_counter()
    for v in values:
        state.record_response(survey.id, v)
    elapsed = time.perf_counter() - started
    rows.append((f"record_response × {n:,}", f"{elapsed:.2f} s", f"{n / elapsed:,.0f} responses/s"))

    app = create_app(state)
    bodies = [json.dumps({"values": v}).encode() for v in values[: args.http]]
    path = f"/API/v3/surveys/{survey.id}/responses"

    async def post_all() -> None:
        for body in bodies:
            if await _asgi_post(app, path, token, body) != 200:
                raise SystemExit("POST failed")

    started = time.perf_counter()
    asyncio.run(post_all())
    elapsed = time.perf_counter() - started
    rows.append(
        (
            f"POST /responses (ASGI) × {len(bodies):,}",
            f"{elapsed:.2f} s",
            f"{len(bodies) / elapsed:,.0f} requests/s",
        )
    )

    total = state.response_count(survey.id)
    for fmt, compress in (("csv", True), ("csv", False), ("json", True), ("ndjson", True)):
        job = state.start_export(survey.id, {"format": fmt, "compress": compress})
        started = time.perf_counter()
        size = sum(
            len(chunk) for chunk in stream_file(survey, state.export_records(job), job.options)
        )
        elapsed = time.perf_counter() - started
        label = f"export {fmt}{' zip' if compress else ''} × {total:,} ({size / 1e6:.0f} MB)"
        rows.append((label, f"{elapsed:.2f} s", f"{total / elapsed:,.0f} rows/s"))

    table = Table(title="qualflow sandbox hot paths")
    table.add_column("operation")
    table.add_column("time", justify="right")
    table.add_column("throughput", justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
