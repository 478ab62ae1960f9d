"""Run-now trigger data with an unpaired surrogate escape is a 422, not a run whose every
answer (GET /api/v1/runs, the run's page) then fails with a 500."""

from __future__ import annotations

from tests.engine.test_api import API, Api, api, definition  # noqa: F401


def test_unencodable_run_data_is_refused(api: Api) -> None:  # noqa: F811
    automation = api.client.post(f"{API}/automations", json=definition(), headers=api.admin).json()
    url = f"{API}/automations/{automation['id']}/runs"
    headers = {**api.admin, "content-type": "application/json"}

    refused = api.client.post(url, content=b'{"note": "\\ud800"}', headers=headers)
    started = api.client.post(url, content=b'{"note": "\\ud83d\\ude00"}', headers=headers)

    assert refused.status_code == 422, refused.text
    assert "surrogate" in refused.json()["error"]["message"]
    assert started.status_code == 202, started.text
    run = api.wait_run(started.json()["run_id"])
    assert run["trigger"]["data"] == {"note": "\N{GRINNING FACE}"}
    listed = api.client.get(f"{API}/runs", headers=api.viewer)
    assert listed.status_code == 200
    assert listed.json()["total"] == 1
