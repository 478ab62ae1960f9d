"""Property tests: arbitrary bodies never crash the sandbox; exports round-trip the values."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.export import stream_file
from qualflow.sandbox.respondents import Profile, Simulator
from qualflow.sandbox.seed import customer_satisfaction, employee_pulse, panel_signup

TOKEN = "P" * 40

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    ["QID1", "QID2", "QID3_1", "QID4", "QID5_TEXT", "QID99", "finished", "progress",
     "startDate", "endDate", "recordedDate", "duration", "status", "customer_id", ""]
) | st.text(max_size=12)  # fmt: skip


def _app() -> tuple[TestClient, str]:
    state = SandboxState()
    state.create_user("prop@example.com", api_token=TOKEN)
    sid = customer_satisfaction(state).id
    return TestClient(create_app(state), headers={"X-API-TOKEN": TOKEN}), sid


CLIENT, SURVEY = _app()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, json_values, max_size=6))
def test_any_response_values_are_stored_or_refused_with_400(values: dict[str, Any]) -> None:
    resp = CLIENT.post(f"/API/v3/surveys/{SURVEY}/responses", json={"values": values})
    assert resp.status_code in (200, 400), resp.text
    if resp.status_code == 400:
        assert resp.json()["meta"]["error"]["errorMessage"]
        return
    rid = resp.json()["result"]["responseId"]
    got = CLIENT.get(f"/API/v3/surveys/{SURVEY}/responses/{rid}").json()["result"]["values"]
    for key, value in values.items():
        if key.startswith("QID") and value is not None:
            assert key in got


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_any_export_body_is_accepted_or_refused_with_400(body: Any) -> None:
    resp = CLIENT.post(f"/API/v3/surveys/{SURVEY}/export-responses", json=body)
    assert resp.status_code in (200, 400), resp.text


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40), st.text(max_size=5))
def test_any_paging_parameters_never_crash(skip_token: str, page_size: str) -> None:
    pool = CLIENT.get("/API/v3/directories").json()["result"]["elements"][0]["directoryId"]
    resp = CLIENT.get(
        f"/API/v3/directories/{pool}/contacts",
        params={"skipToken": skip_token, "pageSize": page_size},
    )
    assert resp.status_code in (200, 400), resp.text
    offset = CLIENT.get("/API/v3/surveys", params={"offset": skip_token})
    assert offset.status_code in (200, 400)


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    """Rows keyed by ImportId; a multi-answer question's choice columns (``breakoutSets``) by
    ImportId and choiceId, then folded back into its codes, comma-joined in code order."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    ids = [json.loads(c) for c in rows[2]]
    keys = [f"{i['ImportId']}#{i['choiceId']}" if "choiceId" in i else i["ImportId"] for i in ids]
    out = []
    for row in rows[3:]:
        cells = dict(zip(keys, row, strict=True))
        chosen: dict[str, list[str]] = {}
        for key, cell in cells.items():
            question, _, choice = key.partition("#")
            if choice:
                chosen.setdefault(question, [])
                if cell:
                    chosen[question].append(cell)
        cells.update({question: ",".join(sorted(codes)) for question, codes in chosen.items()})
        out.append(cells)
    return out


def _as_csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(sorted(str(v) for v in value))
    return str(value)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    maker=st.sampled_from([customer_satisfaction, employee_pulse, panel_signup]),
    abandon=st.floats(0, 1),
)
def test_csv_export_round_trips_simulated_answers(seed: int, maker: Any, abandon: float) -> None:
    state = SandboxState()
    state.create_user("rt@example.com")
    survey = maker(state)
    made = Simulator(state, survey.id, seed=seed, profile=Profile(abandon_rate=abandon)).run(20)
    job = state.start_export(survey.id, {"format": "csv", "compress": False})
    data = b"".join(stream_file(survey, state.export_records(job), job.options))
    rows = {row["_recordId"]: row for row in _csv_rows(data)}
    assert set(rows) == {r.id for r in made}
    question_keys = {c.key for c in survey.question_columns()}
    for response in made:
        row = rows[response.id]
        for key in question_keys:
            assert row[key] == _as_csv(response.values.get(key)), key
        assert row["finished"] == str(response.values["finished"])


def test_out_of_range_durations_and_dates_are_refused_with_400() -> None:
    for body in (
        b'{"values": {"duration": 63931110276.0}}',
        b'{"values": {"duration": Infinity}}',  # Python's json reads it
        b'{"values": {"endDate": "0001-01-02T00:00:00Z", "duration": 864000}}',
    ):
        resp = CLIENT.post(
            f"/API/v3/surveys/{SURVEY}/responses", content=body,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["meta"]["error"]["errorMessage"].startswith("Invalid value")
