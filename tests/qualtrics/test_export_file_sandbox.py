"""ExportFile over real export files produced by the sandbox's 3-step export API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from qualflow.qualtrics.export_file import ExportFile
from qualflow.sandbox import SandboxConfig, SandboxState, create_app
from qualflow.sandbox.respondents import Simulator
from qualflow.sandbox.seed import customer_satisfaction

TOKEN = "E" * 40
RESPONSES = 150


@pytest.fixture(scope="module")
def sandbox() -> tuple[SandboxState, str, dict[str, dict[str, Any]]]:
    state = SandboxState(SandboxConfig(webhook_backoff=0.0))
    state.create_user("export@example.com", api_token=TOKEN)
    survey = customer_satisfaction(state)
    made = Simulator(state, survey.id, seed=11).run(RESPONSES)
    return state, survey.id, {r.id: dict(r.values) for r in made}


async def _download(state: SandboxState, survey_id: str, body: dict[str, Any]) -> tuple[bytes, Any]:
    """start → poll → file, exactly as a client does; returns the file and the definition."""
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox.test", headers={"X-API-TOKEN": TOKEN}
    ) as client:
        base = f"/API/v3/surveys/{survey_id}/export-responses"
        started = await client.post(base, json=body)
        assert started.status_code == 200, started.text
        progress_id = started.json()["result"]["progressId"]
        for _ in range(200):
            progress = (await client.get(f"{base}/{progress_id}")).json()["result"]
            if progress["status"] != "inProgress":
                break
            await asyncio.sleep(0.01)
        assert progress["status"] == "complete", progress
        file = await client.get(f"{base}/{progress['fileId']}/file")
        assert file.status_code == 200
        definition = await client.get(f"/API/v3/survey-definitions/{survey_id}")
        assert definition.status_code == 200
        return file.content, definition.json()["result"]


def download(state: SandboxState, survey_id: str, body: dict[str, Any], dest: Path) -> Any:
    content, definition = asyncio.run(_download(state, survey_id, body))
    dest.write_bytes(content)
    return definition


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "ndjson"])
@pytest.mark.parametrize("compress", [True, False], ids=["zip", "raw"])
def test_sandbox_exports_read_back_typed(
    sandbox: tuple[SandboxState, str, dict[str, dict[str, Any]]],
    tmp_path: Path,
    fmt: str,
    compress: bool,
) -> None:
    state, survey_id, recorded = sandbox
    path = tmp_path / f"export.{fmt}"
    body = {"format": fmt, "compress": compress, "timeZone": "America/New_York"}
    definition = download(state, survey_id, body, path)
    export = ExportFile(
        path,
        format=fmt,  # type: ignore[arg-type]
        compressed=compress,
        names="import_id",
        survey=definition,
    )
    kinds = {c.name: c.kind for c in export.columns if not c.is_label}
    assert kinds["startDate"] == kinds["recordedDate"] == "timestamp"
    assert kinds["status"] == kinds["finished"] == kinds["duration"] == "integer"
    assert kinds["QID1"] == kinds["QID2"] == kinds["QID3_1"] == "float"
    if fmt in ("csv", "tsv"):
        # breakoutSets (the default) splits the multi-answer question into a column per choice,
        # each holding one code: numbers, named <ImportId>_<choiceId>.
        assert "QID4" not in kinds
        assert [kinds[f"QID4_{i}"] for i in range(1, 6)] == ["float"] * 5
        assert {c.choice_id for c in export.columns if c.import_id == "QID4"} == set("12345")
    else:
        assert kinds["QID4"] == "string"  # multi-answer: comma-joined codes
    assert kinds["customer_id"] == "string"

    rows = list(export.iter_rows())
    assert len(rows) == RESPONSES
    assert {r["_recordId"] for r in rows} == set(recorded)
    for row in rows:
        values = recorded[str(row["_recordId"])]
        assert row["startDate"] == instant(values["startDate"])
        recorded_at = instant(values["recordedDate"])
        if fmt in ("csv", "tsv"):  # CSV dates are whole seconds in the export time zone
            recorded_at = recorded_at.replace(microsecond=0)
        assert row["recordedDate"] == recorded_at
        assert row["status"] == values["status"]
        assert row["finished"] == values["finished"]
        assert row["duration"] == values["duration"]
        assert row["QID1"] == values.get("QID1")
        assert row["QID2"] == values.get("QID2")
        expected_multi = values.get("QID4")
        if fmt in ("csv", "tsv"):
            chosen = [str(int(row[f"QID4_{i}"])) for i in range(1, 6) if row[f"QID4_{i}"]]
            assert sorted(chosen) == sorted(expected_multi or [])
        else:
            assert row["QID4"] == (",".join(expected_multi) if expected_multi else None)
        assert row["customer_id"] == values.get("customer_id")
        assert row["locationLatitude"] == float(values["locationLatitude"])

    assert export.write(tmp_path / "out.parquet") == RESPONSES
    assert pq.read_table(tmp_path / "out.parquet").num_rows == RESPONSES


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_sandbox_label_exports(
    sandbox: tuple[SandboxState, str, dict[str, dict[str, Any]]], tmp_path: Path, fmt: str
) -> None:
    state, survey_id, recorded = sandbox
    path = tmp_path / f"labels.{fmt}"
    body: dict[str, Any] = {"format": fmt}
    if fmt == "csv":
        body["includeLabelColumns"] = True
    download(state, survey_id, body, path)
    export = ExportFile(path, format=fmt, compressed=True, names="import_id")  # type: ignore[arg-type]
    plain = list(export.iter_rows())
    assert not any(key.endswith("_label") for key in plain[0])
    labelled = list(export.iter_rows(labels=True))
    names = export.schema(labels=True).names
    assert names[names.index("QID1") + 1] == "QID1_label"
    by_id = {r["_recordId"]: r for r in labelled}
    for response_id, values in recorded.items():
        row = by_id[response_id]
        assert row["QID1"] == values.get("QID1")
        assert row["status_label"] == "IP Address"
        assert (row["QID1_label"] is None) == (values.get("QID1") is None)
    satisfied = {r["QID1_label"] for r in labelled if r["QID1_label"]}
    assert satisfied <= {
        "Extremely dissatisfied",
        "Somewhat dissatisfied",
        "Neither satisfied nor dissatisfied",
        "Somewhat satisfied",
        "Extremely satisfied",
    }, satisfied


def test_multi_answer_cells_of_a_csv_export_get_the_labels_a_json_export_gives(
    sandbox: tuple[SandboxState, str, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    from qualflow.qualtrics.models import Survey

    state, survey_id, _recorded = sandbox
    legacy = asyncio.run(_legacy_survey(state, survey_id))
    csv_path, json_path = tmp_path / "codes.csv", tmp_path / "labels.json"
    definition = download(state, survey_id, {"format": "csv", "breakoutSets": False}, csv_path)
    download(state, survey_id, {"format": "json"}, json_path)
    label_map = Survey.model_validate(legacy).label_map()
    from_csv = ExportFile(
        csv_path, format="csv", compressed=True, names="import_id",
        label_map=label_map, survey=definition,
    )  # fmt: skip
    from_json = ExportFile(json_path, format="json", compressed=True)
    json_labels = {r["_recordId"]: r["QID4_label"] for r in from_json.iter_rows(labels=True)}
    csv_rows = list(from_csv.iter_rows(labels=True))
    multi = [r for r in csv_rows if r["QID4"] and "," in r["QID4"]]
    assert multi, "the simulated respondents chose several answers somewhere"
    for row in csv_rows:
        assert row["QID4_label"] == json_labels[row["_recordId"]], row["QID4"]
    assert all("," in str(r["QID4_label"]) for r in multi)

    # Split into choice columns (the default), each choice's column gets its own label.
    split_path = tmp_path / "split.csv"
    definition = download(state, survey_id, {"format": "csv"}, split_path)
    split = ExportFile(
        split_path, format="csv", compressed=True, label_map=label_map, survey=definition
    )
    names = split.schema(labels=True).names
    assert names[names.index("Q4_2") + 1] == "Q4_2_label"
    labels_by_response = {r["ResponseId"]: r for r in split.iter_rows(labels=True)}
    for response_id, joined in json_labels.items():
        row = labels_by_response[response_id]
        chosen = [row[f"Q4_{i}_label"] for i in range(1, 6) if row[f"Q4_{i}"] is not None]
        assert chosen == (joined.split(",") if joined else []), joined


def test_split_choice_columns_pair_with_their_label_columns(
    sandbox: tuple[SandboxState, str, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    state, survey_id, recorded = sandbox
    path = tmp_path / "label-columns.csv"
    body = {"format": "csv", "includeLabelColumns": True, "questionIds": ["QID4"]}
    download(state, survey_id, body, path)
    export = ExportFile(path, format="csv", compressed=True, names="import_id")
    labels = {c.name: c.label_of for c in export.columns if c.is_label}
    assert labels["QID4_3_label"] == "QID4_3"
    for row in export.iter_rows(labels=True):
        chosen = recorded[str(row["_recordId"])].get("QID4") or []
        for i in range(1, 6):
            assert (row[f"QID4_{i}"] is not None) == (str(i) in chosen)
            assert (row[f"QID4_{i}_label"] is None) == (row[f"QID4_{i}"] is None)


async def _legacy_survey(state: SandboxState, survey_id: str) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox.test", headers={"X-API-TOKEN": TOKEN}
    ) as client:
        answer = await client.get(f"/API/v3/surveys/{survey_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["result"])
