"""Export options the sandbox used to refuse, and incremental exports cut by ``limit``.

``includeDisplayOrder``, ``seenUnansweredRecode`` / ``multiselectSeenUnansweredRecode``,
``filterId`` with ``GET /surveys/{id}/filters``, ``useLabels`` and ``displayedValues`` in JSON,
and a continuation token that resumes after the last response a limited export held.
The seeded customer-satisfaction survey: QID1 single choice (5), QID2 NPS, QID3 matrix of 4
statements in random order, QID4 multi-select with an "Other" text box, QID5 text entry.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import httpx
import pytest

from qualflow.sandbox import SandboxState
from qualflow.sandbox.model import Block
from tests.sandbox.sandbox_support import assert_error, assert_ok_envelope
from tests.sandbox.test_sandbox_export import add, export, unzip

pytestmark = pytest.mark.anyio

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")


def csv_rows(data: bytes) -> tuple[list[str], list[str], list[dict[str, Any]], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(unzip(data)[1])))
    return rows[0], rows[1], [json.loads(c) for c in rows[2]], rows[3:]


def by_tag(tags: list[str], row: list[str]) -> dict[str, str]:
    return dict(zip(tags, row, strict=True))


def json_responses(data: bytes) -> list[dict[str, Any]]:
    responses: list[dict[str, Any]] = json.loads(unzip(data)[1])["responses"]
    return responses


# -- continuation tokens and limit -----------------------------------------------------------


async def test_limited_incremental_exports_export_every_response_once(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    made = [add(state, csat, {"QID1": 1 + i % 5}) for i in range(30)]
    got: list[str] = []
    data, progress = await export(
        client, csat, {"format": "json", "limit": 10, "allowContinuation": True}
    )
    batches = [len(json_responses(data))]
    got += [r["responseId"] for r in json_responses(data)]
    while batches[-1] and len(batches) < 10:
        body = {"format": "json", "limit": 10, "continuationToken": progress["continuationToken"]}
        data, progress = await export(client, csat, body)
        batches.append(len(json_responses(data)))
        got += [r["responseId"] for r in json_responses(data)]
    assert batches == [10, 10, 10, 0]
    assert got == made


async def test_limited_incremental_export_recorded_out_of_order(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    # Responses imported with older recordedDates than ones already there: the limit must not
    # pick by date and then let the token skip what it left behind.
    made = [
        add(state, csat, {"QID1": 1, "recordedDate": f"2024-05-{day:02d}T12:00:00Z"})
        for day in (20, 3, 15, 1, 28, 9, 11)
    ]
    seen: list[str] = []
    token = None
    for _ in range(6):
        body: dict[str, Any] = {"format": "ndjson", "limit": 3}
        body.update({"continuationToken": token} if token else {"allowContinuation": True})
        data, progress = await export(client, csat, body)
        lines = [json.loads(line) for line in unzip(data)[1].splitlines()]
        dates = [line["values"]["recordedDate"] for line in lines]
        assert dates == sorted(dates)  # each file is still in recordedDate order
        seen += [line["responseId"] for line in lines]
        token = progress["continuationToken"]
        if not lines:
            break
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(made)


async def test_limit_above_the_count_and_new_responses_later(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    first = [add(state, csat, {"QID1": 2}) for _ in range(3)]
    data, progress = await export(
        client, csat, {"format": "json", "limit": 10, "allowContinuation": True}
    )
    assert [r["responseId"] for r in json_responses(data)] == first
    later = [add(state, csat, {"QID1": 3}) for _ in range(2)]
    body = {"format": "json", "limit": 1, "continuationToken": progress["continuationToken"]}
    data, progress = await export(client, csat, body)
    assert [r["responseId"] for r in json_responses(data)] == later[:1]
    body["continuationToken"] = progress["continuationToken"]
    data, _ = await export(client, csat, body)
    assert [r["responseId"] for r in json_responses(data)] == later[1:]


async def test_limited_incremental_export_survives_a_restart(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    made = [add(state, csat, {"QID1": 4}) for _ in range(4)]
    _, progress = await export(
        client, csat, {"format": "json", "limit": 2, "allowContinuation": True}
    )
    state.load_json(json.loads(json.dumps(state.to_json())))
    body = {"format": "json", "continuationToken": progress["continuationToken"]}
    data, _ = await export(client, csat, body)
    assert [r["responseId"] for r in json_responses(data)] == made[2:]


# -- includeDisplayOrder ---------------------------------------------------------------------


async def test_display_order_columns_in_csv(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    add(state, csat, {"QID1": 5, "QID3_1": 4})
    # Left after QID1: the randomised matrix (QID3) was never shown.
    add(state, csat, {"QID1": 1, "finished": 0})
    data, _ = await export(client, csat, {"format": "csv"})
    assert not any(tag.endswith("_DO") for tag in csv_rows(data)[0])

    data, _ = await export(client, csat, {"format": "csv", "includeDisplayOrder": True})
    tags, headers, import_ids, rows = csv_rows(data)
    assert tags[-1] == "Q3_DO"  # after the embedded data, as the display-order block
    assert headers[-1] == "How much do you agree with the following statements? - Display Order"
    assert import_ids[-1] == {"ImportId": "QID3_DO"}
    assert [tag for tag in tags if tag.endswith("_DO")] == ["Q3_DO"]  # the one randomised
    assert by_tag(tags, rows[0])["Q3_DO"] == "1|2|3|4"  # never shuffled: the natural order
    assert by_tag(tags, rows[1])["Q3_DO"] == ""
    data, _ = await export(
        client, csat, {"format": "csv", "includeDisplayOrder": True, "questionIds": ["QID1"]}
    )
    assert not any(tag.endswith("_DO") for tag in csv_rows(data)[0])


async def test_display_order_of_flow_randomizers_and_blocks(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    survey = state.surveys[csat]
    blocks = [e for e in survey.flow if e.get("Type") in ("Block", "Standard")]
    rest = [e for e in survey.flow if e not in blocks]
    randomizer = {"Type": "BlockRandomizer", "FlowID": "FL_9", "SubSet": 0, "Flow": blocks}
    survey.flow = [rest[0], randomizer, *rest[1:]]
    experience = next(b for b in survey.blocks.values() if b.description == "Experience")
    assert isinstance(experience, Block)
    assert experience.options is not None
    experience.options["RandomizeQuestions"] = "RandomWithXPerPage"
    survey.touch(state.now_iso())
    add(state, csat, {"QID1": 5})
    data, _ = await export(client, csat, {"format": "csv", "includeDisplayOrder": True})
    tags, headers, import_ids, rows = csv_rows(data)
    row = by_tag(tags, rows[0])
    flow_ids = "|".join(str(b["FlowID"]) for b in blocks)
    assert row["FL_9_DO"] == flow_ids
    assert headers[tags.index("FL_9_DO")] == "FL_9 - Block Randomizer - Display Order"
    assert import_ids[tags.index("FL_9_DO")] == {"ImportId": "FL_9_DO"}
    assert row["Experience_DO"] == "QID3|QID4|QID5"
    assert import_ids[tags.index("Experience_DO")] == {"ImportId": f"{experience.id}_DO"}
    # Flow and block orders stay even when questionIds narrows the questions (the spec).
    data, _ = await export(
        client, csat, {"format": "csv", "includeDisplayOrder": True, "questionIds": ["QID1"]}
    )
    assert [t for t in csv_rows(data)[0] if t.endswith("_DO")] == ["FL_9_DO", "Experience_DO"]


async def test_display_order_in_json(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    add(state, csat, {"QID1": 2})
    data, _ = await export(client, csat, {"format": "json", "includeDisplayOrder": True})
    (resp,) = json_responses(data)
    assert resp["values"]["QID3_DO"] == "1|2|3|4"
    data, _ = await export(client, csat, {"format": "json"})
    assert "QID3_DO" not in json_responses(data)[0]["values"]


# -- seenUnansweredRecode ---------------------------------------------------------------------


async def test_seen_but_unanswered_questions_are_recoded(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    add(state, csat, {"QID1": 5, "QID3_2": 3})
    body = {"format": "csv", "seenUnansweredRecode": -99}
    data, _ = await export(client, csat, body)
    tags, _, _, rows = csv_rows(data)
    row = by_tag(tags, rows[0])
    assert row["Q1"] == "5"
    assert row["Q2"] == "-99"  # the NPS question
    assert row["Q2_NPS_GROUP"] == ""  # derived from an answer, not one itself
    assert [row[f"Q3_{i}"] for i in (1, 2, 3, 4)] == ["-99", "3", "-99", "-99"]
    # Multi-select falls back to seenUnansweredRecode, in every choice's column.
    assert [row[f"Q4_{i}"] for i in range(1, 6)] == ["-99"] * 5
    assert row["Q4_5_TEXT"] == ""  # the "Other" box only opens with its choice
    assert row["Q5"] == "-99"
    assert row["customer_id"] == ""  # embedded data is never "seen"

    data, _ = await export(client, csat, {**body, "multiselectSeenUnansweredRecode": 0})
    tags, _, _, rows = csv_rows(data)
    assert by_tag(tags, rows[0])["Q4_3"] == "0"
    assert by_tag(tags, rows[0])["Q2"] == "-99"
    data, _ = await export(client, csat, {"format": "csv", "multiselectSeenUnansweredRecode": 0})
    tags, _, _, rows = csv_rows(data)
    assert by_tag(tags, rows[0])["Q4_3"] == "0"
    assert by_tag(tags, rows[0])["Q2"] == ""
    unsplit = {"format": "csv", "multiselectSeenUnansweredRecode": 0, "breakoutSets": False}
    data, _ = await export(client, csat, unsplit)
    tags, _, _, rows = csv_rows(data)
    assert by_tag(tags, rows[0])["Q4"] == "0"


async def test_break_out_sets_splits_multi_answers_into_choice_columns(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    add(state, csat, {"QID1": 4, "QID4": ["2", "4"]})
    add(state, csat, {"QID1": 3})  # QID4 left unanswered: seen (finished), nothing selected
    data, _ = await export(client, csat, {"format": "csv", "questionIds": ["QID4"]})
    tags, headers, ids, rows = csv_rows(data)
    split = [t for t in tags if t.startswith("Q4_") and not t.endswith("_TEXT")]
    assert split == ["Q4_1", "Q4_2", "Q4_3", "Q4_4", "Q4_5"]
    assert [ids[tags.index(t)] for t in split] == [
        {"ImportId": "QID4", "choiceId": str(i)} for i in range(1, 6)
    ]
    assert headers[tags.index("Q4_4")].endswith(" - Product questions")
    assert [by_tag(tags, rows[0])[t] for t in split] == ["", "2", "", "4", ""]
    assert [by_tag(tags, rows[1])[t] for t in split] == [""] * 5

    # An answered question's unselected choices take the multi-select recode.
    recoded = {"format": "csv", "questionIds": ["QID4"], "multiselectSeenUnansweredRecode": 0}
    data, _ = await export(client, csat, recoded)
    tags, _, _, rows = csv_rows(data)
    assert [by_tag(tags, rows[0])[t] for t in split] == ["0", "2", "0", "4", "0"]
    assert [by_tag(tags, rows[1])[t] for t in split] == ["0"] * 5

    labelled = {"format": "tsv", "compress": False, "questionIds": ["QID4"], "useLabels": True}
    data, _ = await export(client, csat, labelled)
    lines = list(csv.reader(io.StringIO(data.decode()), delimiter="\t"))
    row = by_tag(lines[0], lines[3])
    assert [row[t] for t in split] == ["", "Delivery", "", "Product questions", ""]

    data, _ = await export(
        client, csat, {"format": "csv", "questionIds": ["QID4"], "includeLabelColumns": True}
    )
    tags, _, ids, rows = csv_rows(data)
    row = by_tag(tags, rows[0])
    assert (row["Q4_2"], row["Q4_2_LABEL"]) == ("2", "Delivery")
    assert ids[tags.index("Q4_2_LABEL")] == {"ImportId": "QID4", "choiceId": "2", "label": True}

    # breakoutSets false: one column, the codes joined by commas; JSON is never split.
    data, _ = await export(
        client, csat, {"format": "csv", "questionIds": ["QID4"], "breakoutSets": False}
    )
    tags, _, ids, rows = csv_rows(data)
    assert by_tag(tags, rows[0])["Q4"] == "2,4"
    assert ids[tags.index("Q4")] == {"ImportId": "QID4"}
    assert not any(t in tags for t in split)
    data, _ = await export(client, csat, {"format": "json", "questionIds": ["QID4"]})
    assert [str(v) for v in json_responses(data)[0]["values"]["QID4"]] == ["2", "4"]


async def test_export_column_map_lists_the_choice_columns(
    client: httpx.AsyncClient, csat: str
) -> None:
    body = (await client.get(f"/API/v3/surveys/{csat}")).json()["result"]
    column_map = body["exportColumnMap"]
    assert column_map["Q4_2"] == {"question": "QID4", "choice": "QID4.choices.2"}
    assert "Q4" not in column_map
    assert column_map["Q1"] == {"question": "QID1"}


async def test_a_partial_response_saw_only_what_came_before_it_stopped(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    # Answered QID1 and QID3_1 and left: QID2 (between them) was seen, QID4 and QID5 were not.
    add(state, csat, {"QID1": 3, "QID3_1": 2, "finished": 0, "progress": 60})
    data, _ = await export(client, csat, {"format": "json", "seenUnansweredRecode": -99})
    (resp,) = json_responses(data)
    values = resp["values"]
    assert values["QID2"] == -99
    assert values["QID3_4"] == -99
    assert "QID4" not in values
    assert "QID5_TEXT" not in values
    assert resp["displayedFields"] == ["QID1", "QID2", "QID3_1", "QID3_2", "QID3_3", "QID3_4"]


async def test_questions_behind_display_logic_are_seen_only_when_answered(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    survey = state.surveys[csat]
    survey.questions["QID5"].extra["DisplayLogic"] = {
        "0": {"Type": "If"},
        "Type": "BooleanExpression",
    }
    survey.touch(state.now_iso())
    add(state, csat, {"QID1": 1})
    add(state, csat, {"QID1": 1, "QID5_TEXT": "late delivery"})
    data, _ = await export(client, csat, {"format": "csv", "seenUnansweredRecode": -99})
    tags, _, _, rows = csv_rows(data)
    assert [by_tag(tags, row)["Q5"] for row in rows] == ["", "late delivery"]
    assert [by_tag(tags, row)["Q2"] for row in rows] == ["-99", "-99"]


# -- JSON: useLabels, displayedFields, displayedValues ------------------------------------------


async def test_json_displayed_fields_and_values(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    add(state, csat, {"QID1": 4, "QID4": ["2"]})
    data, _ = await export(client, csat, {"format": "ndjson"})
    (resp,) = [json.loads(line) for line in unzip(data)[1].splitlines()]
    assert resp["displayedFields"] == [
        "QID1", "QID2", "QID3_1", "QID3_2", "QID3_3", "QID3_4", "QID4", "QID5_TEXT",
    ]  # fmt: skip
    shown = resp["displayedValues"]
    assert shown["QID1"] == [1, 2, 3, 4, 5]
    assert shown["QID2"] == list(range(11))
    assert shown["QID3_1"] == [1, 2, 3, 4, 5]  # a statement offers the scale points
    assert shown["QID4"] == [1, 2, 3, 4, 5]
    assert "QID5_TEXT" not in shown
    assert "QID2" not in resp["values"]  # seen, unanswered, not recoded
    data, _ = await export(client, csat, {"format": "json", "questionIds": ["QID4"]})
    (resp,) = json_responses(data)
    assert resp["displayedFields"] == ["QID4"]
    assert list(resp["displayedValues"]) == ["QID4"]


async def test_json_use_labels_puts_labels_in_values(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    add(state, csat, {"QID1": 5, "QID2": 10, "QID4": ["1", "3"], "QID5_TEXT": "fine"})
    data, _ = await export(client, csat, {"format": "json", "useLabels": True})
    (resp,) = json_responses(data)
    values, labels = resp["values"], resp["labels"]
    assert values["QID1"] == labels["QID1"] == "Extremely satisfied"
    assert values["QID4"] == labels["QID4"] == ["Billing", "Returns"]
    assert values["QID2_NPS_GROUP"] == "Promoter"
    assert values["QID2"] == "10"  # an NPS score's label is its text
    assert values["QID5_TEXT"] == "fine"
    assert values["status"] == "IP Address"
    assert values["finished"] == "True"  # as in a CSV with useLabels
    data, _ = await export(client, csat, {"format": "json"})
    (resp,) = json_responses(data)
    assert resp["values"]["QID1"] == 5
    assert resp["labels"]["QID1"] == "Extremely satisfied"


# -- filters ----------------------------------------------------------------------------------


async def test_filters_list(client: httpx.AsyncClient, state: SandboxState, csat: str) -> None:
    resp = await client.get(f"/API/v3/surveys/{csat}/filters")
    assert resp.status_code == 200
    body = resp.json()
    assert_ok_envelope(body)
    assert body["result"]["nextPage"] is None
    (element,) = body["result"]["elements"]
    assert set(element) == {"filterId", "filterName", "creationDate"}
    assert UUID.match(element["filterId"])
    assert element["filterName"] == "Finished responses"
    assert element["creationDate"].endswith("Z")
    assert_error(await client.get("/API/v3/surveys/SV_000000000000000/filters"), 404)


async def test_export_with_a_filter(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    done = add(state, csat, {"QID1": 5})
    add(state, csat, {"QID1": 1, "finished": 0})
    (finished,) = (await client.get(f"/API/v3/surveys/{csat}/filters")).json()["result"]["elements"]
    data, progress = await export(
        client, csat, {"format": "json", "filterId": finished["filterId"]}
    )
    assert [r["responseId"] for r in json_responses(data)] == [done]
    assert "continuationToken" not in progress

    made = await client.post(
        f"/_sandbox/surveys/{csat}/filters",
        json={
            "filterName": "Unhappy, or asked about returns",
            "conditions": [
                {"field": "QID1", "operator": "in", "value": [1, 2]},
                {"field": "QID4", "operator": "eq", "value": "3"},
            ],
        },
    )
    assert made.status_code == 200, made.text
    unhappy = made.json()["result"]["filterId"]
    hit = add(state, csat, {"QID1": 2, "QID4": ["1", "3"]})
    add(state, csat, {"QID1": 2, "QID4": ["1"]})
    add(state, csat, {"QID1": 4, "QID4": ["3"]})
    data, _ = await export(client, csat, {"format": "csv", "filterId": unhappy})
    tags, _, _, rows = csv_rows(data)
    assert [by_tag(tags, row)["ResponseId"] for row in rows] == [hit]
    listed = (await client.get(f"/API/v3/surveys/{csat}/filters")).json()["result"]["elements"]
    assert [f["filterName"] for f in listed] == [
        "Finished responses",
        "Unhappy, or asked about returns",
    ]
    # Kept with the state, and with the export that used it.
    state.load_json(json.loads(json.dumps(state.to_json())))
    data, _ = await export(client, csat, {"format": "csv", "filterId": unhappy})
    assert len(csv_rows(data)[3]) == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"filterId": "9b67fbb7-ef89-430d-8ddf-f17f44de9254"}, "filterId"),
        ({"filterId": 7}, "filterId"),
        ({"filterId": "<seeded>", "sortByLastModifiedDate": True}, "sortByLastModifiedDate"),
        ({"filterId": "<seeded>", "allowContinuation": True}, "filterId"),
    ],
)
async def test_bad_filter_exports(
    client: httpx.AsyncClient, csat: str, body: dict[str, Any], needle: str
) -> None:
    listed = (await client.get(f"/API/v3/surveys/{csat}/filters")).json()["result"]["elements"]
    if body["filterId"] == "<seeded>":
        body = {**body, "filterId": listed[0]["filterId"]}
    resp = await client.post(
        f"/API/v3/surveys/{csat}/export-responses", json={"format": "csv", **body}
    )
    assert needle in assert_error(resp, 400)


@pytest.mark.parametrize(
    "body",
    [
        {"conditions": []},
        {"filterName": "x", "conditions": {}},
        {"filterName": "x", "conditions": [{"operator": "eq", "value": 1}]},
        {"filterName": "x", "conditions": [{"field": "QID1", "operator": "like", "value": 1}]},
        {"filterName": "x", "conditions": [{"field": "QID1", "operator": "in", "value": 1}]},
        {"filterName": "x", "conditions": [{"field": "QID1", "operator": "gt", "value": "a"}]},
    ],
)
async def test_bad_filter_definitions(
    client: httpx.AsyncClient, csat: str, body: dict[str, Any]
) -> None:
    assert_error(await client.post(f"/_sandbox/surveys/{csat}/filters", json=body), 400)


async def test_filter_of_another_survey_is_unknown(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    copy = state.copy_survey(csat, name=None, owner_id=state.surveys[csat].owner_id)
    assert copy.filters == []
    seeded = state.surveys[csat].filters[0].filter_id
    resp = await client.post(
        f"/API/v3/surveys/{copy.id}/export-responses", json={"format": "csv", "filterId": seeded}
    )
    assert "filterId" in assert_error(resp, 400)


async def test_single_response_shows_what_the_export_shows(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    rid = add(state, csat, {"QID1": 3, "QID3_1": 2, "finished": 0, "progress": 60})
    got = (await client.get(f"/API/v3/surveys/{csat}/responses/{rid}")).json()["result"]
    data, _ = await export(client, csat, {"format": "json"})
    (exported,) = json_responses(data)
    assert got["displayedFields"] == exported["displayedFields"]
    assert got["displayedFields"] == ["QID1", "QID2", "QID3_1", "QID3_2", "QID3_3", "QID3_4"]
    assert got["displayedValues"] == exported["displayedValues"]
    assert got["displayedValues"]["QID2"] == list(range(11))


# -- continuation by last-modified date ---------------------------------------------------------


async def _put_embedded(
    client: httpx.AsyncClient, csat: str, rid: str, embedded: dict[str, Any], **extra: Any
) -> None:
    resp = await client.put(
        f"/API/v3/responses/{rid}", json={"surveyId": csat, "embeddedData": embedded, **extra}
    )
    assert resp.status_code == 200, resp.text


async def test_modified_response_is_in_the_next_export_by_last_modified_date(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    first, second = add(state, csat, {"QID1": 1}), add(state, csat, {"QID1": 2})
    body: dict[str, Any] = {
        "format": "json", "sortByLastModifiedDate": True, "allowContinuation": True,
    }  # fmt: skip
    data, progress = await export(client, csat, body)
    assert [r["responseId"] for r in json_responses(data)] == [first, second]
    await _put_embedded(client, csat, first, {"customer_id": "C-7"})
    body = {"format": "json", "sortByLastModifiedDate": True}
    data, progress = await export(
        client, csat, {**body, "continuationToken": progress["continuationToken"]}
    )
    (resp,) = json_responses(data)
    assert resp["responseId"] == first
    assert resp["values"]["customer_id"] == "C-7"
    assert resp["values"]["lastModifiedDate"] > resp["values"]["recordedDate"]
    data, _ = await export(
        client, csat, {**body, "continuationToken": progress["continuationToken"]}
    )
    assert json_responses(data) == []


async def test_recorded_date_continuation_ignores_a_modification(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    # Without sortByLastModifiedDate the token follows recordedDate, which an embedded-data
    # update leaves alone unless resetRecordedDate asks otherwise.
    first, second = add(state, csat, {"QID1": 1}), add(state, csat, {"QID1": 2})
    _, progress = await export(client, csat, {"format": "json", "allowContinuation": True})
    token = progress["continuationToken"]
    await _put_embedded(client, csat, first, {"customer_id": "C-7"})
    data, _ = await export(client, csat, {"format": "json", "continuationToken": token})
    assert json_responses(data) == []
    await _put_embedded(client, csat, second, {"customer_id": "C-8"}, resetRecordedDate=True)
    data, _ = await export(client, csat, {"format": "json", "continuationToken": token})
    assert [r["responseId"] for r in json_responses(data)] == [second]
    body = {"format": "json", "sortByLastModifiedDate": True, "continuationToken": token}
    data, _ = await export(client, csat, body)
    assert [r["responseId"] for r in json_responses(data)] == [first, second]


async def test_limited_exports_by_last_modified_date_take_changes_in_order(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    made = [add(state, csat, {"QID1": 3}) for _ in range(4)]
    body: dict[str, Any] = {"format": "ndjson", "sortByLastModifiedDate": True, "limit": 3}
    _, progress = await export(client, csat, {**body, "allowContinuation": True})
    token = progress["continuationToken"]
    for rid in (made[2], made[0]):
        await _put_embedded(client, csat, rid, {"customer_id": rid})
    state.load_json(json.loads(json.dumps(state.to_json())))  # kept across a restart
    batches: list[list[str]] = []
    for _ in range(4):
        data, progress = await export(client, csat, {**body, "continuationToken": token})
        lines = [json.loads(line) for line in unzip(data)[1].splitlines()]
        batches.append([line["responseId"] for line in lines])
        token = progress["continuationToken"]
        if not lines:
            break
    # The limit left made[3] for the next export; the two changes follow in the order made.
    assert batches == [[made[3], made[2], made[0]], []]


# -- JSON type of a seen-but-unanswered recode --------------------------------------------------


async def test_json_recode_of_a_text_answer_is_text(
    client: httpx.AsyncClient, state: SandboxState, csat: str
) -> None:
    add(state, csat, {"QID1": 5, "QID3_2": 3})
    for fmt in ("json", "ndjson"):
        data, _ = await export(client, csat, {"format": fmt, "seenUnansweredRecode": -99})
        text = unzip(data)[1]
        resp = json_responses(data)[0] if fmt == "json" else json.loads(text.splitlines()[0])
        values = resp["values"]
        assert values["QID5_TEXT"] == "-99"  # text entry answers are strings
        assert values["QID2"] == -99  # choice answers stay numbers
        assert values["QID3_1"] == -99
        assert values["QID4"] == -99
        assert values["QID1"] == 5
        assert "QID4_5_TEXT" not in values
    data, _ = await export(client, csat, {"format": "csv", "seenUnansweredRecode": -99})
    tags, _, _, rows = csv_rows(data)
    assert by_tag(tags, rows[0])["Q5"] == "-99"
