"""The sandbox's renderers against real recorded Qualtrics answers (tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.model import Survey

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "qualtrics-recorded"


def _body(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((RECORDED / name).read_text())["body"]["result"]
    return result


def _as_qsf(definition: dict[str, Any]) -> dict[str, Any]:
    return {
        "SurveyEntry": {"SurveyName": definition["SurveyName"]},
        "SurveyElements": [
            {"Element": "BL", "Payload": list(definition["Blocks"].values())},
            {"Element": "FL", "Payload": definition["SurveyFlow"]},
            {"Element": "SO", "Payload": definition["SurveyOptions"]},
            *(
                {"Element": "SQ", "PrimaryAttribute": qid, "Payload": question}
                for qid, question in definition["Questions"].items()
            ),
        ],
    }


@pytest.fixture
def recorded_survey() -> Survey:
    definition = _body("get_survey_definition.json")
    return Survey.from_qsf(
        _as_qsf(definition),
        survey_id=definition["SurveyID"],
        name=None,
        owner_id=definition["OwnerID"],
        brand_id=definition["BrandID"],
        now=definition["LastModified"],
    )


def test_legacy_object_matches_the_recorded_get_survey(recorded_survey: Survey) -> None:
    """Imported from the recorded definition, the survey renders exactly the recorded GET."""
    real = _body("get_survey.json")
    ours = recorded_survey.to_legacy(real["responseCounts"]["auditable"])
    for key in ("questions", "exportColumnMap", "blocks", "flow", "embeddedData", "comments",
                "loopAndMerge", "expiration"):  # fmt: skip
        assert ours[key] == real[key], key
    assert set(ours) == set(real)


def test_definition_round_trips_the_recorded_questions(recorded_survey: Survey) -> None:
    real = _body("get_survey_definition.json")
    ours = recorded_survey.to_definition(real["BrandBaseURL"])
    assert ours["Questions"] == real["Questions"]
    assert ours["Blocks"] == real["Blocks"]
    assert ours["SurveyFlow"]["Flow"] == real["SurveyFlow"]["Flow"]
    assert set(ours) == set(real)


@pytest.mark.anyio
async def test_recorded_survey_served_over_http(recorded_survey: Survey) -> None:
    state = SandboxState()
    # The recorded survey's owner: a user sees only the surveys they own or share.
    _, token = state.create_user("fidelity@example.com", user_id=recorded_survey.owner_id)
    state.add_survey(recorded_survey)
    app = create_app(state)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox.test",
        headers={"X-API-TOKEN": token},
    ) as client:
        got = (await client.get(f"/API/v3/surveys/{recorded_survey.id}")).json()["result"]
    assert got["questions"] == _body("get_survey.json")["questions"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
