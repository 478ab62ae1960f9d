"""Qualtrics' space-separated dates ("2019-08-01 02:23:00", survey-definition metadata) are UTC
(research notes §2.5): the client must read them as UTC, like its ISO-8601 ``Z`` dates, so
they compare with every other date it returns."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.contract.contract_support import Api


def test_metadata_dates_are_utc_like_the_survey_dates(api: Api, survey_id: str) -> None:
    survey = api(api.client.surveys.get(survey_id))
    metadata = api(api.client.survey_definitions.metadata(survey_id))

    assert metadata.survey_creation_date is not None
    assert metadata.survey_creation_date.utcoffset() is not None
    # The same instant, whichever endpoint reported it.
    assert metadata.survey_creation_date == survey.creation_date
    assert metadata.last_modified is not None
    assert metadata.last_modified <= datetime.now(UTC)


def test_expiration_set_through_metadata_reads_back_as_the_same_instant(
    api: Api, survey_id: str
) -> None:
    closes = datetime(2030, 6, 1, 8, 30, tzinfo=UTC)
    api(api.client.survey_definitions.update_metadata(survey_id, expiration_date=closes))

    metadata = api(api.client.survey_definitions.metadata(survey_id))
    assert metadata.survey_expiration_date == closes
    assert api(api.client.surveys.get(survey_id)).expiration.end_date == closes
