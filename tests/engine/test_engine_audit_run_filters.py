"""Run-history time filters written without a UTC offset (a plain date, as the CLI's --since
takes it) are read as UTC instead of failing."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from qualflow.cli import app
from tests.engine.test_api import API, Api, api, definition  # noqa: F401
from tests.engine.test_cli import history, key  # noqa: F401


def test_api_filters_without_offset_are_utc(api: Api) -> None:  # noqa: F811
    automation = api.client.post(f"{API}/automations", json=definition(), headers=api.admin).json()
    run_id = api.client.post(
        f"{API}/automations/{automation['id']}/runs", json={}, headers=api.admin
    ).json()["run_id"]
    created = api.wait_run(run_id)["created_at"]  # e.g. 2026-11-25T09:35:36.989570Z
    day = created[:10]

    same_day = api.client.get(
        f"{API}/runs", params={"since": day, "until": "2999-01-01T00:00:00"}, headers=api.viewer
    )
    after = api.client.get(f"{API}/runs", params={"since": "2999-01-01"}, headers=api.viewer)

    assert same_day.status_code == 200, same_day.text
    assert [r["id"] for r in same_day.json()["items"]] == [run_id]
    assert after.status_code == 200, after.text
    assert after.json()["items"] == []


def test_api_refuses_an_empty_window(api: Api) -> None:  # noqa: F811
    answer = api.client.get(
        f"{API}/runs",
        params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        headers=api.viewer,
    )
    assert answer.status_code == 422
    assert "until" in answer.json()["error"]["message"]


def test_cli_since_takes_a_plain_date(history: tuple[int, str, str]) -> None:  # noqa: F811
    _automation_id, ok, failed = history

    listed = CliRunner().invoke(app, ["runs", "ls", "--since", "2000-01-01", "--json"])
    future = CliRunner().invoke(app, ["runs", "ls", "--since", "2999-01-01", "--json"])

    assert listed.exit_code == 0, listed.output
    assert {r["id"] for r in json.loads(listed.output)["items"]} == {ok, failed}
    assert future.exit_code == 0, future.output
