"""Export options through the client: limited incremental exports, display order, recodes,
saved filters. The seeded customer-satisfaction survey: Q1 single choice, Q2 NPS, Q3 a matrix
of 4 statements shown in random order, Q4 multi-select, Q5 text entry."""

from __future__ import annotations

from typing import Any

import pytest

from qualflow.qualtrics import BadRequest, ExportResult, NotFound
from tests.contract.contract_support import Api, Sandbox


def _rows(done: ExportResult) -> list[dict[str, Any]]:
    try:
        return list(done.iter_rows())
    finally:
        done.file_path.unlink()


def test_limited_incremental_exports_reach_every_response_once(
    api: Api, sandbox: Sandbox, survey_id: str
) -> None:
    made = [
        sandbox.state.record_response(survey_id, {"QID1": 1 + i % 5, "QID2": i % 11}).id
        for i in range(30)
    ]
    done = api(
        api.client.export_responses(survey_id, format="json", limit=10, allow_continuation=True)
    )
    batches = [[row["responseId"] for row in _rows(done)]]
    while batches[-1] and len(batches) < 10:
        assert done.continuation_token
        done = api(
            api.client.export_responses(
                survey_id, format="json", limit=10, continuation_token=done.continuation_token
            )
        )
        batches.append([row["responseId"] for row in _rows(done)])
    assert [len(batch) for batch in batches] == [10, 10, 10, 0]
    exported = [rid for batch in batches for rid in batch]
    assert sorted(exported) == sorted(made)
    assert len(set(exported)) == 30


def test_display_order_columns(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    shown = sandbox.state.record_response(survey_id, {"QID1": 5, "QID3_1": 4}).id
    sandbox.state.record_response(survey_id, {"QID1": 2, "finished": 0})  # left before Q3
    done = api(api.client.export_responses(survey_id, include_display_order=True))
    assert [c.import_id for c in done.columns if c.import_id.endswith("_DO")] == ["QID3_DO"]
    rows = {row["ResponseId"]: row for row in _rows(done)}
    assert rows[shown]["Q3_DO"] == "1|2|3|4"  # the sandbox never shuffles
    assert [row["Q3_DO"] for rid, row in rows.items() if rid != shown] == [None]

    done = api(api.client.export_responses(survey_id, format="ndjson", include_display_order=True))
    assert {row["responseId"]: row["QID3_DO"] for row in _rows(done)}[shown] == "1|2|3|4"


def test_seen_but_unanswered_recodes(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    sandbox.state.record_response(survey_id, {"QID1": 4, "QID3_2": 3})
    done = api(
        api.client.export_responses(
            survey_id, seen_unanswered_recode=-99, multiselect_seen_unanswered_recode=0
        )
    )
    (row,) = _rows(done)
    assert row["Q1"] == 4
    assert row["Q2"] == -99
    assert [row[f"Q3_{i}"] for i in (1, 2, 3, 4)] == [-99, 3, -99, -99]
    # The multi-select recode, in each choice's column (breakoutSets, the default, splits it).
    assert [row[f"Q4_{i}"] for i in range(1, 6)] == [0] * 5
    assert row["Q5"] == "-99"
    assert row["Q2_NPS_GROUP"] is None

    done = api(api.client.export_responses(survey_id))
    (row,) = _rows(done)
    assert row["Q2"] is None
    assert row["Q5"] is None


def test_export_with_a_saved_filter(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    state = sandbox.state
    finished = state.record_response(survey_id, {"QID1": 5}).id
    state.record_response(survey_id, {"QID1": 1, "finished": 0})
    (saved,) = api(api.client.surveys.filters(survey_id))
    assert saved.filter_name == "Finished responses"
    assert saved.filter_id == state.surveys[survey_id].filters[0].filter_id
    assert saved.creation_date is not None
    done = api(api.client.export_responses(survey_id, format="json", filter_id=saved.filter_id))
    assert [row["responseId"] for row in _rows(done)] == [finished]

    with pytest.raises(BadRequest) as info:
        api(
            api.client.export_responses(survey_id, filter_id="9b67fbb7-ef89-430d-8ddf-f17f44de9254")
        )
    assert "filterId" in str(info.value)
    with pytest.raises(NotFound):
        api(api.client.surveys.filters("SV_0000000000000000"))
