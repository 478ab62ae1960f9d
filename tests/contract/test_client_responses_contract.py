"""Single responses and response exports: the client against the sandbox."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from qualflow.qualtrics import (
    BadRequest,
    ExportEvent,
    ExportFailed,
    ExportFile,
    ExportOptions,
    ExportTimeout,
    NotFound,
    NotYetAvailable,
)
from tests.contract.contract_support import Api, Sandbox


def _answers(score: int = 9, **extra: Any) -> dict[str, Any]:
    return {"QID1": 4, "QID2": score, "QID5_TEXT": "Faster delivery", "finished": 1, **extra}


def test_create_get_update_delete_response(api: Api, survey_id: str) -> None:
    response_id = api(api.client.responses.create(survey_id, _answers(customer_id="C-1")))
    assert response_id.startswith("R_")

    response = api(api.client.responses.get(survey_id, response_id))
    assert response.response_id == response_id
    assert response.values["QID1"] == 4
    assert response.values["QID2_NPS_GROUP"] == 3
    assert response.labels["QID1"] == "Somewhat satisfied"
    assert response.values["customer_id"] == "C-1"

    api(api.client.responses.update_embedded_data(survey_id, response_id, {"customer_id": "C-2"}))
    assert api(api.client.responses.get(survey_id, response_id)).values["customer_id"] == "C-2"

    api(api.client.responses.delete(survey_id, response_id))
    with pytest.raises(NotFound):
        api(api.client.responses.get(survey_id, response_id))
    assert api(api.client.surveys.get(survey_id)).response_counts.deleted == 1


def test_idempotency_key_records_one_response(api: Api, survey_id: str) -> None:
    first = api(api.client.responses.create(survey_id, _answers(), idempotency_key="order-77"))
    second = api(api.client.responses.create(survey_id, _answers(), idempotency_key="order-77"))
    assert first == second
    assert api(api.client.surveys.get(survey_id)).response_counts.auditable == 1


def test_invalid_answer_is_a_bad_request_with_the_reason(api: Api, survey_id: str) -> None:
    with pytest.raises(BadRequest) as info:
        api(api.client.responses.create(survey_id, {"QID1": 42, "finished": 1}))
    assert info.value.status_code == 400
    assert "QID1" in (info.value.error_message or "")
    assert not info.value.retriable


def test_not_yet_available_then_waited_for(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    sandbox.state.config.response_unavailable_reads = 2
    response_id = api(api.client.responses.create(survey_id, _answers()))
    with pytest.raises(NotYetAvailable) as info:
        api(api.client.responses.get(survey_id, response_id))
    assert info.value.status_code == 202
    assert info.value.retriable
    api.real_sleep()
    response = api(api.client.responses.get(survey_id, response_id, wait=10, poll_interval=0.05))
    assert response.response_id == response_id


def test_waiting_is_bounded(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    sandbox.state.config.response_availability_delay = 60
    response_id = api(api.client.responses.create(survey_id, _answers()))
    api.real_sleep()
    with pytest.raises(NotYetAvailable):
        api(api.client.responses.get(survey_id, response_id, wait=0.2, poll_interval=0.05))


def _zip_member(path: Path) -> tuple[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert len(names) == 1
        return names[0], archive.read(names[0])


def test_export_json_end_to_end(api: Api, survey_id: str, tmp_path: Path) -> None:
    ids = {api(api.client.responses.create(survey_id, _answers(score))) for score in (3, 8, 10)}
    events: list[ExportEvent] = []
    done = api(
        api.client.export_responses(
            survey_id, format="json", dest=tmp_path, on_progress=events.append
        )
    )
    assert done.file_path.parent == tmp_path
    assert done.file_path.suffix == ".zip"
    assert done.compressed
    assert done.size == done.file_path.stat().st_size
    assert done.file_id
    assert done.progress_id.startswith("ES_")
    name, content = _zip_member(done.file_path)
    assert name.endswith(".json")
    exported = json.loads(content)["responses"]
    assert {r["responseId"] for r in exported} == ids
    stages = [e.stage for e in events]
    assert stages[0] == "started"
    assert "polling" in stages
    assert stages[-1] == "downloaded"
    assert events[-1].percent_complete == 100.0
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("fmt", ["csv", "tsv", "ndjson"])
def test_export_formats(api: Api, survey_id: str, fmt: str, tmp_path: Path) -> None:
    api(api.client.responses.create(survey_id, _answers()))
    done = api(api.client.export_responses(survey_id, format=fmt, dest=tmp_path / f"out.{fmt}.zip"))
    name, content = _zip_member(done.file_path)
    assert name.endswith(f".{fmt}")
    text = content.decode("utf-8-sig")
    if fmt == "ndjson":
        assert len(text.strip().splitlines()) == 1
        assert json.loads(text.splitlines()[0])["values"]["QID2"] == 9
    else:
        rows = text.splitlines()
        assert len(rows) == 4  # export tags, question texts, ImportIds, one response
        separator = "," if fmt == "csv" else "\t"
        assert "ResponseId" in rows[0].split(separator)
        assert '"ImportId"' in rows[2]


def test_csv_export_reads_as_typed_rows_with_labels(
    api: Api, survey_id: str, tmp_path: Path
) -> None:
    ids = [api(api.client.responses.create(survey_id, _answers(score))) for score in (2, 9)]
    done = api(api.client.export_responses(survey_id, labels=True, dest=tmp_path))
    assert isinstance(done, ExportFile)
    rows = list(done.iter_rows(labels=True))
    assert [row["ResponseId"] for row in rows] == ids
    first = rows[0]
    assert isinstance(first["RecordedDate"], datetime)
    assert first["Q1"] == 4
    assert first["Q1_label"] == "Somewhat satisfied"
    assert first["Q2_NPS_GROUP_label"] == "Detractor"
    assert first["Q5"] == "Faster delivery"
    target = tmp_path / "responses.parquet"
    assert done.write(target, "parquet", labels=True) == 2
    assert target.stat().st_size > 0


def test_spss_is_refused_by_export_responses_but_downloads_raw(api: Api, survey_id: str) -> None:
    with pytest.raises(ValueError, match=r"exports\.run"):
        api(api.client.export_responses(survey_id, format="spss"))


def test_uncompressed_export_is_the_raw_file(api: Api, survey_id: str, tmp_path: Path) -> None:
    api(api.client.responses.create(survey_id, _answers()))
    done = api(api.client.export_responses(survey_id, format="json", compress=False, dest=tmp_path))
    assert not done.compressed
    assert done.file_path.suffix == ".json"
    assert len(json.loads(done.file_path.read_bytes())["responses"]) == 1


def test_export_by_recorded_date_window(api: Api, survey_id: str) -> None:
    for day in ("2024-01-15", "2024-06-15", "2025-01-15"):
        api(api.client.responses.create(survey_id, _answers(recordedDate=f"{day}T10:00:00Z")))
    done = api(
        api.client.export_responses(
            survey_id,
            format="json",
            start_date=datetime(2024, 3, 1, tzinfo=UTC),
            end_date=datetime(2025, 1, 1, tzinfo=UTC),
        )
    )
    responses = json.loads(_zip_member(done.file_path)[1])["responses"]
    assert [r["values"]["recordedDate"][:10] for r in responses] == ["2024-06-15"]
    done.file_path.unlink()


def test_incremental_exports_with_continuation_token(api: Api, survey_id: str) -> None:
    api(api.client.responses.create(survey_id, _answers(3)))
    first = api(api.client.export_responses(survey_id, format="json", allow_continuation=True))
    assert first.continuation_token
    assert len(json.loads(_zip_member(first.file_path)[1])["responses"]) == 1

    newer = {api(api.client.responses.create(survey_id, _answers(s))) for s in (7, 10)}
    options = ExportOptions(format="json", continuation_token=first.continuation_token)
    second = api(api.client.export_responses(survey_id, options=options, allow_continuation=True))
    assert {
        r["responseId"] for r in json.loads(_zip_member(second.file_path)[1])["responses"]
    } == newer
    assert second.continuation_token
    assert second.continuation_token != first.continuation_token
    first.file_path.unlink()
    second.file_path.unlink()


def test_failed_export_raises_export_failed(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    sandbox.state.fail_exports(survey_id)
    with pytest.raises(ExportFailed) as info:
        api(api.client.export_responses(survey_id, format="csv"))
    assert info.value.progress_id is not None
    assert info.value.progress_id.startswith("ES_")


def test_export_deadline(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    sandbox.state.config.export_duration = 3600
    api.real_sleep()
    with pytest.raises(ExportTimeout) as info:
        api(api.client.export_responses(survey_id, poll_interval=0.05, timeout=0.3))
    assert info.value.progress_id is not None


def test_export_steps_separately(api: Api, survey_id: str, tmp_path: Path) -> None:
    api(api.client.responses.create(survey_id, _answers()))
    started = api(api.client.exports.start(survey_id, format="ndjson", limit=1))
    assert started.status == "inProgress"
    assert started.progress_id is not None
    done = api(api.client.exports.wait(survey_id, started.progress_id))
    assert done.is_complete
    assert done.percent_complete == 100.0
    assert done.file_id is not None
    target = tmp_path / "export.zip"
    size = api(api.client.exports.download(survey_id, done.file_id, target))
    assert size == target.stat().st_size > 0


def test_export_of_unknown_survey_or_file(api: Api, survey_id: str, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        api(api.client.exports.start("SV_000000000000000"))
    with pytest.raises(NotFound):
        api(api.client.exports.status(survey_id, "ES_000000000000000"))
    with pytest.raises(NotFound):
        api(api.client.exports.download(survey_id, "no-such-file-def", tmp_path / "x.zip"))
    assert not (tmp_path / "x.zip").exists()
    assert not (tmp_path / "x.zip.part").exists()


def test_export_with_bad_body_is_a_bad_request(api: Api, survey_id: str) -> None:
    with pytest.raises(BadRequest) as info:
        api(api.client.exports.start(survey_id, format="csv", question_ids=["QID999"]))
    assert "QID999" in str(info.value)
