"""Download progress through ``SyncASGITransport`` counts the bytes as they arrive."""

from __future__ import annotations

from pathlib import Path

from qualflow.qualtrics import Client, Unlimited
from qualflow.qualtrics.resources.exports import ExportEvent
from qualflow.qualtrics.transports import SyncASGITransport
from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.respondents import Simulator
from qualflow.sandbox.seed import customer_satisfaction


def test_downloading_events_report_the_bytes_received(tmp_path: Path) -> None:
    state = SandboxState()
    _, token = state.create_user("progress@example.com")
    survey = customer_satisfaction(state)
    Simulator(state, survey.id, seed=3).run(20)
    events: list[ExportEvent] = []
    transport = SyncASGITransport(create_app(state))
    with Client(
        base_url="http://sandbox.test",
        api_token=token,
        transport=transport,
        rate_limiter=Unlimited(),
    ) as client:
        export = client.export_responses(
            survey.id, dest=tmp_path, on_progress=events.append, poll_interval=0.01
        )
        with export:
            downloading = [event for event in events if event.stage == "downloading"]
            assert downloading
            assert downloading[-1].bytes_downloaded == export.size
