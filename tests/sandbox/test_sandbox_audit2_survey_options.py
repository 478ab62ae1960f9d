"""SurveyOptions hold every field the recorded real definition has, the survey's own ones current.

Reference: tests/fixtures/qualtrics-recorded/get_survey_definition.json (research §3.3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "qualtrics-recorded"


def _recorded_options() -> dict[str, Any]:
    body = json.loads((RECORDED / "get_survey_definition.json").read_text())["body"]
    options: dict[str, Any] = body["result"]["SurveyOptions"]
    return options


async def _definition(client: httpx.AsyncClient, survey_id: str) -> dict[str, Any]:
    resp = await client.get(f"/API/v3/survey-definitions/{survey_id}")
    assert resp.status_code == 200
    result: dict[str, Any] = resp.json()["result"]
    return result


async def test_survey_options_have_every_recorded_field(
    client: httpx.AsyncClient, csat: str
) -> None:
    recorded = _recorded_options()
    options = (await _definition(client, csat))["SurveyOptions"]
    assert set(options) == set(recorded)
    for key in ("CustomStyles", "AvailableLanguages", "ConfirmStart", "PartialDataCloseAfter"):
        assert type(options[key]) is type(recorded[key]), key
    served = (await client.get(f"/API/v3/survey-definitions/{csat}/options")).json()["result"]
    assert served == options


async def test_the_surveys_own_options_follow_the_survey(
    client: httpx.AsyncClient, csat: str
) -> None:
    renamed = await client.put(
        f"/API/v3/surveys/{csat}",
        json={"name": "Renamed", "expiration": {"endDate": "2030-01-02T03:04:05Z"}},
    )
    assert renamed.status_code == 200
    definition = await _definition(client, csat)
    options = definition["SurveyOptions"]
    assert options["SurveyName"] == "Renamed"
    assert options["SurveyLanguage"] == "EN"
    assert options["SurveyExpirationDate"] == "2030-01-02T03:04:05Z"
    assert options["SurveyStartDate"] is None
    assert [options["ActiveResponseSet"]] == list(definition["ResponseSets"])
    legacy = (await client.get(f"/API/v3/surveys/{csat}")).json()["result"]
    assert options["SurveyCreationDate"] == legacy["creationDate"]
    assert options["AvailableLanguages"] == {"EN": []}


async def test_an_option_put_is_kept_and_served(client: httpx.AsyncClient, csat: str) -> None:
    put = await client.put(
        f"/API/v3/survey-definitions/{csat}/options", json={"BackButton": "true"}
    )
    assert put.status_code == 200
    options = (await _definition(client, csat))["SurveyOptions"]
    assert options["BackButton"] == "true"
    assert set(options) == set(_recorded_options())
