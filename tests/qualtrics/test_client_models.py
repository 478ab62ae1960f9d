"""Request bodies the client builds: names, dates and refused combinations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from pydantic import ValidationError

from qualflow.qualtrics._core import Envelope
from qualflow.qualtrics.auth import OAuthCredentials, OAuthSession
from qualflow.qualtrics.models import (
    CollaborationPermissions,
    EmailDistributionCreate,
    EventSubscriptionCreate,
    ExportOptions,
    LinkDistributionCreate,
    MessageInput,
    Meta,
    RecipientsInput,
    SurveyExpirationUpdate,
    SurveyMetadataUpdate,
    SurveyUpdate,
    UserCreate,
    format_utc,
)
from qualflow.qualtrics.resources.exports import build_options

START = datetime(2025, 1, 1, tzinfo=UTC)


def test_export_options_body_uses_api_names_and_utc_dates() -> None:
    options = ExportOptions(
        format="ndjson",
        start_date=datetime(2025, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
        end_date=datetime(2025, 2, 1, tzinfo=UTC),
        survey_metadata_ids=["recordedDate", "_recordId"],
        include_label_columns=True,
        allow_continuation=True,
        limit=10,
    )
    assert options.to_body() == {
        "format": "ndjson",
        "startDate": "2025-01-01T00:00:00Z",
        "endDate": "2025-02-01T00:00:00Z",
        "surveyMetadataIds": ["recordedDate", "_recordId"],
        "includeLabelColumns": True,
        "allowContinuation": True,
        "limit": 10,
    }


def test_export_options_always_send_format() -> None:
    assert ExportOptions().to_body() == {"format": "csv"}
    assert ExportOptions().compressed is True
    assert ExportOptions(compress=False).compressed is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"use_labels": True, "include_label_columns": True}, "cannot be combined"),
        ({"start_date": START, "end_date": START}, "before end_date"),
        ({"filter_id": "f", "allow_continuation": True}, "filter_id"),
        ({"filter_id": "f", "sort_by_last_modified_date": True}, "filter_id"),
        ({"format": "json", "newline_replacement": " "}, "csv and tsv"),
        ({"format": "xlsx"}, "format"),
        ({"start_date": datetime(2025, 1, 1)}, "timezone"),
        ({"limit": 0}, "limit"),
        ({"startdate": START}, "startdate"),
        ({"survey_metadata_ids": ["nope"]}, "survey_metadata_ids"),
    ],
)
def test_export_options_refuse_bad_input(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExportOptions(**fields)  # type: ignore[arg-type]


def test_build_options_merges_model_keywords_and_format() -> None:
    base = ExportOptions(format="json", use_labels=True)
    merged = build_options(base, "csv", {"limit": 5})
    assert merged.to_body() == {"format": "csv", "useLabels": True, "limit": 5}


def test_survey_update_sends_only_what_was_given_and_null_to_clear() -> None:
    assert SurveyUpdate(is_active=False).to_body() == {"isActive": False}
    body = SurveyUpdate(expiration=SurveyExpirationUpdate(start_date=None, end_date=START))
    assert body.to_body() == {"expiration": {"startDate": None, "endDate": "2025-01-01T00:00:00Z"}}


def test_metadata_dates_use_mysql_format() -> None:
    update = SurveyMetadataUpdate(survey_status="Inactive", survey_expiration_date=START)
    assert update.to_body() == {
        "SurveyStatus": "Inactive",
        "SurveyExpirationDate": "2025-01-01 00:00:00",
    }


def test_format_utc() -> None:
    assert format_utc(datetime(2021, 3, 25, 17, 21, 25, 942000, tzinfo=UTC)) == (
        "2021-03-25T17:21:25.942Z"
    )
    assert format_utc(datetime(2019, 8, 1, 2, 23)) == "2019-08-01T02:23:00Z"


def test_subscription_body_keeps_the_shared_key_out_of_repr() -> None:
    body = EventSubscriptionCreate(
        topics="surveyengine.completedResponse.SV_1", publication_url="https://x/y", shared_key="k"
    )
    assert body.to_body()["sharedKey"] == "k"
    assert "'k'" not in repr(body)


def test_user_password_is_secret_but_sent() -> None:
    user = UserCreate(
        username="ada", password="hunter2", first_name="Ada", last_name="L", user_type="UT_1",
        email="ada@example.org",
    )
    assert "hunter2" not in repr(user)
    assert user.to_body()["password"] == "hunter2"
    assert user.to_body()["language"] == "en"


def test_distribution_bodies() -> None:
    email = EmailDistributionCreate.model_validate(
        {
            "header": {"from_email": "a@b.c", "from_name": "A", "subject": "Hi"},
            "survey_link": {"survey_id": "SV_1"},
            "recipients": {"mailing_list_id": "CG_1"},
            "send_date": START,
            "message": {"message_text": "Take it"},
        }
    )
    body = email.to_body()
    assert body["surveyLink"] == {"surveyId": "SV_1", "type": "Individual"}
    assert body["recipients"] == {"mailingListId": "CG_1"}
    assert body["sendDate"] == "2025-01-01T00:00:00Z"
    link = LinkDistributionCreate(survey_id="SV_1", mailing_list_id="CG_1", description="d")
    assert link.to_body() == {
        "action": "CreateDistribution",
        "surveyId": "SV_1",
        "mailingListId": "CG_1",
        "description": "d",
        "linkType": "Individual",
    }
    with pytest.raises(ValidationError, match="exactly one"):
        RecipientsInput(mailing_list_id="CG_1", contact_id="CID_1")
    with pytest.raises(ValidationError, match="either"):
        MessageInput(library_id="UR_1")


def test_collaboration_permissions_send_the_full_matrix() -> None:
    body = CollaborationPermissions.view_results().to_body()
    assert body["result"]["viewSurveyResults"] is True
    assert body["surveyManagement"]["deleteSurveys"] is False
    assert all(all(group.values()) for group in CollaborationPermissions.full().to_body().values())


def test_oauth_token_is_cached_until_shortly_before_expiry() -> None:
    now = [1000.0]
    credentials = OAuthCredentials("id", "secret")
    session = OAuthSession(credentials, "https://x/oauth2/token", clock=lambda: now[0])
    call = session.token_call()
    assert call.form == {"grant_type": "client_credentials"}
    assert call.headers["Authorization"].startswith("Basic ")
    assert not call.authenticated
    assert call.idempotent
    body = {"access_token": "bearer-value-4711", "token_type": "Bearer", "expires_in": 3600}
    token = call.parse(Envelope(200, body, Meta(), httpx.Headers(), body))
    session.store(token)
    assert session.current() is token
    now[0] += 3600 - 61
    assert session.current() is token
    now[0] += 2  # inside the 60 s safety margin: renew
    assert session.current() is None
    assert "4711" not in repr(token)


def test_none_is_never_sent_except_to_clear_expiration_dates() -> None:
    assert ExportOptions(allow_continuation=None, limit=None).to_body() == {"format": "csv"}
    assert SurveyMetadataUpdate(survey_name=None, survey_status="Active").to_body() == {
        "SurveyStatus": "Active"
    }
    body = SurveyUpdate(name=None, expiration=SurveyExpirationUpdate(end_date=None)).to_body()
    assert body == {"expiration": {"endDate": None}}
