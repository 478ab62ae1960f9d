"""The 3-step response export: real ZIP files, CSV/TSV header rows, JSON/NDJSON, filters."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import httpx
import pytest

from qualflow.sandbox import SandboxState
from qualflow.sandbox.respondents import Simulator
from qualflow.sandbox.seed import research_screener
from tests.sandbox.sandbox_support import assert_error, assert_ok_envelope

pytestmark = pytest.mark.anyio


async def export(
    client: httpx.AsyncClient, survey_id: str, body: dict[str, Any]
) -> tuple[bytes, dict[str, Any]]:
    start = await client.post(f"/API/v3/surveys/{survey_id}/export-responses", json=body)
    assert start.status_code == 200, start.text
    started = start.json()
    assert_ok_envelope(started)
    assert started["result"]["status"] == "inProgress"
    assert started["result"]["percentComplete"] == 0.0
    progress_id = started["result"]["progressId"]
    assert progress_id.startswith("ES_")
    progress = (
        await client.get(f"/API/v3/surveys/{survey_id}/export-responses/{progress_id}")
    ).json()["result"]
    assert progress["status"] == "complete"
    assert progress["fileId"].endswith("-def")
    file = await client.get(
        f"/API/v3/surveys/{survey_id}/export-responses/{progress['fileId']}/file"
    )
    assert file.status_code == 200
    return file.content, progress


def unzip(data: bytes) -> tuple[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert len(names) == 1
        return names[0], zf.read(names[0]).decode("utf-8")


def add(state: SandboxState, survey_id: str, values: dict[str, Any]) -> str:
    return state.record_response(survey_id, values).id


async def test_csv_export_has_three_header_rows_and_real_values(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    rid = add(
        state,
        csat,
        {
            "QID1": 5,
            "QID2": 6,
            "QID3_1": 4,
            "QID4": ["1", "5"],
            "QID4_5_TEXT": "Gift, card",
            "QID5_TEXT": "line1\nline2",
            "startDate": "2024-03-01T10:00:00Z",
            "endDate": "2024-03-01T10:05:30Z",
            "customer_id": "C-9",
        },
    )
    data, _ = await export(client, csat, {"format": "csv"})
    name, text = unzip(data)
    assert name == "Customer Satisfaction & NPS.csv"
    rows = list(csv.reader(io.StringIO(text)))
    tags, headers, import_ids, row = rows[0], rows[1], rows[2], rows[3]
    assert len(rows) == 4
    assert tags[:17] == [
        "StartDate", "EndDate", "Status", "IPAddress", "Progress", "Duration (in seconds)",
        "Finished", "RecordedDate", "ResponseId", "RecipientLastName", "RecipientFirstName",
        "RecipientEmail", "ExternalReference", "LocationLatitude", "LocationLongitude",
        "DistributionChannel", "UserLanguage",
    ]  # fmt: skip
    assert headers[8] == "Response ID"
    ids = [json.loads(c) for c in import_ids]
    assert ids[0] == {"ImportId": "startDate", "timeZone": "UTC"}
    assert ids[8] == {"ImportId": "_recordId"}
    assert ids[12] == {"ImportId": "externalDataReference"}
    by_tag = dict(zip(tags, row, strict=True))
    by_import = {i["ImportId"]: v for i, v in zip(ids, row, strict=True)}
    assert by_tag["ResponseId"] == rid
    assert by_tag["StartDate"] == "2024-03-01 10:00:00"
    assert by_tag["Duration (in seconds)"] == "330"
    assert by_tag["Finished"] == "1"
    assert by_tag["Q1"] == "5"
    assert by_tag["Q2"] == "6"
    assert by_tag["Q2_NPS_GROUP"] == "1"
    assert by_tag["Q3_1"] == "4"
    # Split into a column per choice (breakoutSets defaults to true), each holding its code.
    assert [by_tag[f"Q4_{i}"] for i in range(1, 6)] == ["1", "", "", "", "5"]
    assert ids[tags.index("Q4_2")] == {"ImportId": "QID4", "choiceId": "2"}
    assert headers[tags.index("Q4_2")] == "Which of these did you contact us about? - Delivery"
    assert "Q4" not in tags
    assert by_tag["Q4_5_TEXT"] == "Gift, card"
    assert by_tag["Q5"] == "line1\nline2"
    assert by_import["QID5_TEXT"] == "line1\nline2"
    assert by_tag["customer_id"] == "C-9"
    assert tags.index("customer_id") > tags.index("Q5")


async def test_labels_and_tsv_and_uncompressed(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    add(state, csat, {"QID1": 5, "QID2": 10})
    data, _ = await export(client, csat, {"format": "tsv", "useLabels": True, "compress": False})
    rows = list(csv.reader(io.StringIO(data.decode()), delimiter="\t"))
    by_tag = dict(zip(rows[0], rows[3], strict=True))
    assert by_tag["Q1"] == "Extremely satisfied"
    assert by_tag["Q2_NPS_GROUP"] == "Promoter"
    assert by_tag["Finished"] == "True"
    assert by_tag["Status"] == "IP Address"
    data, _ = await export(client, csat, {"format": "csv", "includeLabelColumns": True})
    _, text = unzip(data)
    rows = list(csv.reader(io.StringIO(text)))
    by_tag = dict(zip(rows[0], rows[3], strict=True))
    assert by_tag["Q1"] == "5"
    assert by_tag["Q1_LABEL"] == "Extremely satisfied"


async def test_json_and_ndjson(client: httpx.AsyncClient, state: SandboxState, csat: str) -> None:
    rid = add(state, csat, {"QID1": 2, "QID4": ["3"]})
    data, _ = await export(client, csat, {"format": "json"})
    name, text = unzip(data)
    assert name.endswith(".json")
    doc = json.loads(text)
    (resp,) = doc["responses"]
    assert resp["responseId"] == rid
    assert resp["values"]["QID1"] == 2
    assert resp["values"]["QID4"] == ["3"]
    assert resp["labels"]["QID1"] == "Somewhat dissatisfied"
    assert resp["labels"]["QID4"] == ["Returns"]
    assert resp["values"]["status"] == 0
    assert "QID1" in resp["displayedFields"]
    add(state, csat, {"QID1": 3})
    data, _ = await export(client, csat, {"format": "ndjson"})
    _, text = unzip(data)
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["values"]["QID1"] for line in lines] == [2, 3]


async def test_date_window_limit_and_column_subsets(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    for day in (1, 2, 3, 4):
        add(state, csat, {"QID1": day, "recordedDate": f"2024-05-0{day}T12:00:00Z", "x": str(day)})
    body = {
        "format": "json",
        "startDate": "2024-05-02T12:00:00Z",  # inclusive
        "endDate": "2024-05-04T12:00:00Z",  # exclusive
    }
    data, _ = await export(client, csat, body)
    doc = json.loads(unzip(data)[1])
    assert [r["values"]["QID1"] for r in doc["responses"]] == [2, 3]
    data, _ = await export(client, csat, {"format": "json", "limit": 1})
    assert len(json.loads(unzip(data)[1])["responses"]) == 1
    data, _ = await export(
        client,
        csat,
        {
            "format": "csv",
            "questionIds": ["QID1"],
            "embeddedDataIds": ["x"],
            "surveyMetadataIds": ["recordedDate", "externalReference"],
        },
    )
    rows = list(csv.reader(io.StringIO(unzip(data)[1])))
    assert rows[0] == ["RecordedDate", "ExternalReference", "Q1", "x"]
    assert len(rows) == 3 + 4


async def test_continuation_tokens(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    add(state, csat, {"QID1": 1})
    data, progress = await export(client, csat, {"format": "json", "allowContinuation": True})
    token = progress["continuationToken"]
    assert len(json.loads(unzip(data)[1])["responses"]) == 1
    add(state, csat, {"QID1": 2})
    add(state, csat, {"QID1": 3})
    data, progress2 = await export(client, csat, {"format": "json", "continuationToken": token})
    assert [r["values"]["QID1"] for r in json.loads(unzip(data)[1])["responses"]] == [2, 3]
    data, _ = await export(
        client, csat, {"format": "json", "continuationToken": progress2["continuationToken"]}
    )
    assert json.loads(unzip(data)[1])["responses"] == []
    bad = await client.post(
        f"/API/v3/surveys/{csat}/export-responses", json={"format": "csv", "continuationToken": "x"}
    )
    assert "continuationToken" in assert_error(bad, 400)


async def test_in_progress_export(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    add(state, csat, {"QID1": 1})
    state.record_response(csat, {"QID1": 4, "finished": 0}, in_progress=True)
    data, _ = await export(client, csat, {"format": "json", "exportResponsesInProgress": True})
    assert [r["values"]["QID1"] for r in json.loads(unzip(data)[1])["responses"]] == [4]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"format": "spss"}, "not supported by the sandbox"),
        ({"format": "xml"}, "not supported by the sandbox"),
        ({"format": "xlsx"}, "format"),
        ({}, "format"),
        ({"format": "csv", "startDate": "last week"}, "startDate"),
        ({"format": "csv", "limit": 0}, "limit"),
        ({"format": "csv", "compress": "yes"}, "compress"),
        ({"format": "csv", "questionIds": ["QID404"]}, "QID404"),
        ({"format": "csv", "useLabels": True, "includeLabelColumns": True}, "includeLabelColumns"),
        ({"format": "csv", "timeZone": "Mars/Olympus"}, "timeZone"),
        ({"format": "csv", "colour": "red"}, "colour"),
        ({"format": "csv", "includeDisplayOrder": "yes"}, "includeDisplayOrder"),
        ({"format": "csv", "seenUnansweredRecode": "-99"}, "seenUnansweredRecode"),
        ({"format": "csv", "multiselectSeenUnansweredRecode": 0.5}, "multiselectSeenUnanswered"),
        ({"format": "csv", "filterId": "F_1"}, "filterId"),  # not a filter of the survey
    ],
)
async def test_bad_export_bodies(
    client: httpx.AsyncClient, csat: str, body: dict[str, Any], needle: str
) -> None:
    resp = await client.post(f"/API/v3/surveys/{csat}/export-responses", json=body)
    assert needle in assert_error(resp, 400)


async def test_export_unknown_ids_are_404(client: httpx.AsyncClient, csat: str) -> None:
    assert_error(await client.get(f"/API/v3/surveys/{csat}/export-responses/ES_nope"), 404)
    assert_error(await client.get(f"/API/v3/surveys/{csat}/export-responses/x-def/file"), 404)
    assert_error(
        await client.post(
            "/API/v3/surveys/SV_000000000000000/export-responses", json={"format": "csv"}
        ),
        404,
    )


async def test_failed_export_fault(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    await client.post("/_sandbox/faults/exports", json={"surveyId": csat, "count": 1})
    start = await client.post(f"/API/v3/surveys/{csat}/export-responses", json={"format": "csv"})
    pid = start.json()["result"]["progressId"]
    progress = (await client.get(f"/API/v3/surveys/{csat}/export-responses/{pid}")).json()
    assert progress["result"] == {"fileId": None, "percentComplete": 100.0, "status": "failed"}
    assert progress["meta"]["httpStatus"] == "200 - OK"
    _, ok = await export(client, csat, {"format": "csv"})
    assert ok["status"] == "complete"


async def test_export_progresses_over_time(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    state.config.export_duration = 3600.0
    start = await client.post(f"/API/v3/surveys/{csat}/export-responses", json={"format": "csv"})
    pid = start.json()["result"]["progressId"]
    progress = (await client.get(f"/API/v3/surveys/{csat}/export-responses/{pid}")).json()["result"]
    assert progress["status"] == "inProgress"
    assert "fileId" not in progress
    state.exports[pid].started_at -= 3600.0
    progress = (await client.get(f"/API/v3/surveys/{csat}/export-responses/{pid}")).json()["result"]
    assert progress["status"] == "complete"


async def test_export_with_fraud_fields_from_simulator(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    sid = research_screener(state).id
    Simulator(state, sid, seed=3).run(50)
    data, _ = await export(client, sid, {"format": "csv"})
    rows = list(csv.reader(io.StringIO(unzip(data)[1])))
    tags = rows[0]
    for field in ("Q_RecaptchaScore", "Q_RelevantIDDuplicateScore", "Q_RelevantIDFraudScore"):
        assert field in tags
    assert len(rows) == 3 + 50


async def test_sort_by_last_modified_date(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    old = add(state, csat, {"QID1": 1, "recordedDate": "2020-01-01T00:00:00Z"})
    add(state, csat, {"QID1": 2, "recordedDate": "2020-01-02T00:00:00Z"})
    put = await client.put(
        f"/API/v3/responses/{old}", json={"surveyId": csat, "embeddedData": {"customer_id": "C-7"}}
    )
    assert put.status_code == 200
    data, _ = await export(
        client,
        csat,
        {"format": "csv", "sortByLastModifiedDate": True, "startDate": "2021-01-01T00:00:00Z"},
    )
    rows = list(csv.reader(io.StringIO(unzip(data)[1])))
    assert "LastModifiedDate" in rows[0]
    by_tag = dict(zip(rows[0], rows[3], strict=True))
    assert len(rows) == 4
    assert by_tag["ResponseId"] == old
    assert by_tag["customer_id"] == "C-7"


async def test_decimal_comma(client: httpx.AsyncClient, state: SandboxState) -> None:
    sid = research_screener(state).id
    state.record_response(sid, {"Q_RecaptchaScore": 0.9})
    data, _ = await export(client, sid, {"format": "csv", "formatDecimalAsComma": True})
    rows = list(csv.reader(io.StringIO(unzip(data)[1])))
    assert dict(zip(rows[0], rows[3], strict=True))["Q_RecaptchaScore"] == "0,9"
