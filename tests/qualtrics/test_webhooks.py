"""Webhook deliveries: both body shapes, HMAC verification, topics, typed events, bad input."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qualflow.qualtrics.webhooks import (
    ActivateSurvey,
    CompletedResponse,
    DeactivateSurvey,
    GenericEvent,
    PartialResponse,
    StartedRecipientSession,
    WebhookParseError,
    WebhookVerificationError,
    parse_event,
    sign,
    split_topic,
    verify_hmac,
)

# The delivery documented by the SAP Qualtrics gateway (research notes §5.3).
KY_MSG = (
    '{"Status":"Complete","SurveyID":"SV_22VlHYNeldrrrkp","ResponseID":"R_1l9mcVuXubb4aGm",'
    '"CompletedDate":"2019-06-26 13:28:11","BrandID":"sapdevelopment"}'
)
KY_TOPIC = "sapdevelopment.surveyengine.completedResponse.SV_22VlHYNeldrrrkp"


def signed_body(topic: str, msg: str, key: str) -> str:
    return urlencode({"Topic": topic, "MSG": msg, "HMAC": sign(msg, key)})


def test_sign_is_lowercase_hex_hmac_sha512_of_the_exact_msg() -> None:
    expected = hmac.new(b"s3cret", KY_MSG.encode(), hashlib.sha512).hexdigest()
    assert sign(KY_MSG, "s3cret") == expected
    assert len(expected) == 128
    assert verify_hmac(KY_MSG, expected, "s3cret")
    assert verify_hmac(KY_MSG, expected.upper(), "s3cret")
    assert not verify_hmac(KY_MSG, expected, "other")
    assert not verify_hmac(KY_MSG + " ", expected, "s3cret")
    assert not verify_hmac(KY_MSG, "zz", "s3cret")
    assert not verify_hmac(KY_MSG, "é" * 128, "s3cret")


def test_signed_completed_response_from_bytes() -> None:
    body = signed_body(KY_TOPIC, KY_MSG, "s3cret").encode()
    event = parse_event(body, shared_key="s3cret")
    assert isinstance(event, CompletedResponse)
    assert event.kind == "completedResponse"
    assert event.signed is True
    assert event.topic == "surveyengine.completedResponse.SV_22VlHYNeldrrrkp"
    assert event.brand_id == "sapdevelopment"
    assert event.survey_id == "SV_22VlHYNeldrrrkp"
    assert event.response_id == "R_1l9mcVuXubb4aGm"
    assert event.status == "Complete"
    assert event.completed_date == datetime(2019, 6, 26, 13, 28, 11, tzinfo=UTC)
    assert event.recipient_id is None
    assert event.fields["ResponseID"] == "R_1l9mcVuXubb4aGm"


def test_flat_completed_response_with_every_field() -> None:
    body = (
        "Topic=acme.surveyengine.completedResponse.SV_1&Status=Complete&SurveyID=SV_1"
        "&ResponseID=R_9&RecipientID=MLRP_7&ResponseEventContext=ctx%3D42"
        "&DistributionID=EMD_3&CompletedDate=2019-06-26+13%3A28%3A11&BrandID=acme"
    )
    event = parse_event(body)
    assert isinstance(event, CompletedResponse)
    assert event.signed is False
    assert (event.recipient_id, event.distribution_id) == ("MLRP_7", "EMD_3")
    assert event.response_event_context == "ctx=42"
    assert event.completed_date == datetime(2019, 6, 26, 13, 28, 11, tzinfo=UTC)


def test_flat_body_without_topic_takes_the_kind_from_status() -> None:
    event = parse_event("Status=Partial&SurveyID=SV_1&ResponseID=R_2&BrandID=acme")
    assert isinstance(event, PartialResponse)
    assert event.topic == "surveyengine.partialResponse.SV_1"
    assert event.brand_id == "acme"


@pytest.mark.parametrize(
    ("fields", "cls"),
    [
        (
            {"Topic": "b.controlpanel.activateSurvey", "Status": "Active", "SurveyID": "SV_1"},
            ActivateSurvey,
        ),
        (
            {"Topic": "controlpanel.deactivateSurvey", "Status": "Inactive", "SurveyID": "SV_1"},
            DeactivateSurvey,
        ),
        ({"Status": "Inactive", "SurveyID": "SV_1", "BrandID": "b"}, DeactivateSurvey),
        (
            {
                "Topic": "b.surveyengine.startedRecipientSession.SV_1",
                "Status": "Started",
                "SurveyID": "SV_1",
                "RecipientID": "MLRP_1",
                "DistributionID": "EMD_1",
                "StartedDate": "2024-02-29 23:59:59",
                "ResponseEventContext": "abc",
            },
            StartedRecipientSession,
        ),
    ],
)
def test_each_topic_gives_its_typed_event(fields: dict[str, str], cls: type) -> None:
    event = parse_event(fields)
    assert type(event) is cls
    assert event.survey_id == "SV_1"
    if isinstance(event, StartedRecipientSession):
        assert event.started_date == datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
        assert event.response_event_context == "abc"


def test_unknown_topic_is_a_generic_event_with_its_fields() -> None:
    event = parse_event({"Topic": "acme.threesixty.reportReady", "ProjectID": "P_1"})
    assert isinstance(event, GenericEvent)
    assert event.topic == "threesixty.reportReady"
    assert event.brand_id == "acme"
    assert event.fields == {"ProjectID": "P_1"}


def test_fields_that_do_not_belong_to_the_kind_are_kept_only_raw() -> None:
    event = parse_event(
        "Topic=controlpanel.activateSurvey&Status=Active&SurveyID=SV_1&ResponseID=R_1"
    )
    assert isinstance(event, ActivateSurvey)
    assert not hasattr(event, "response_id")
    assert event.fields["ResponseID"] == "R_1"


# --- verification failures ---


def test_wrong_key_is_a_verification_error() -> None:
    with pytest.raises(WebhookVerificationError, match="does not match"):
        parse_event(signed_body(KY_TOPIC, KY_MSG, "s3cret"), shared_key="other")


def test_missing_hmac_with_a_key_is_a_verification_error() -> None:
    with pytest.raises(WebhookVerificationError, match="HMAC field missing"):
        parse_event({"Topic": KY_TOPIC, "MSG": KY_MSG}, shared_key="s3cret")


def test_flat_body_when_a_key_is_expected_is_a_verification_error() -> None:
    with pytest.raises(WebhookVerificationError, match="not signed"):
        parse_event("Status=Complete&SurveyID=SV_1&ResponseID=R_1", shared_key="k")


def test_signed_body_without_key_is_parsed_but_not_marked_signed() -> None:
    event = parse_event(signed_body(KY_TOPIC, KY_MSG, "s3cret"))
    assert isinstance(event, CompletedResponse)
    assert event.signed is False


def test_unsigned_fields_beside_msg_are_never_merged() -> None:
    body = signed_body(KY_TOPIC, KY_MSG, "k") + "&ResponseID=R_forged"
    event = parse_event(body, shared_key="k")
    assert isinstance(event, CompletedResponse)
    assert event.response_id == "R_1l9mcVuXubb4aGm"
    assert "R_forged" not in event.fields.values()


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("sapdevelopment.surveyengine.partialResponse.SV_22VlHYNeldrrrkp", "does not match Status"),
        ("sapdevelopment.surveyengine.completedResponse.SV_other", "names survey"),
        ("otherbrand.surveyengine.completedResponse.SV_22VlHYNeldrrrkp", "names brand"),
    ],
)
def test_a_forged_topic_cannot_change_a_signed_message(topic: str, message: str) -> None:
    with pytest.raises(WebhookParseError, match=message):
        parse_event(signed_body(topic, KY_MSG, "k"), shared_key="k")


# --- malformed input ---


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        ("Status=Complete&SurveyID=SV_1", "missing required field.*ResponseID"),
        ("Status=Complete&ResponseID=R_1", "missing required field.*SurveyID"),
        ("Status=Weird&SurveyID=SV_1", "does not name a known event"),
        ("SurveyID=SV_1", "does not name a known event"),
        ("Status=Complete&SurveyID=SV_1&ResponseID=R_1&CompletedDate=yesterday", "not a date"),
        (
            "Status=Complete&SurveyID=SV_1&ResponseID=R_1&CompletedDate=2019-02-30+10:00:00",
            "not a valid date",
        ),
        ("Status=Complete&status=Partial&SurveyID=SV_1&ResponseID=R_1", "more than once"),
        ("Topic=x&MSG=%7Bnot+json&HMAC=00", "not valid JSON"),
        ("Topic=x&MSG=%5B1%5D", "must be a JSON object"),
        ('Topic=x&MSG={"SurveyID":{"a":1}}', "must be a scalar"),
        ("HMAC=abcd&Status=Complete", "HMAC field but no MSG"),
        ("this is not a form", "not a form-encoded body"),
    ],
)
def test_malformed_bodies_are_parse_errors(body: bytes | str, message: str) -> None:
    with pytest.raises(WebhookParseError, match=message):
        parse_event(body)


def test_mapping_values_must_be_strings() -> None:
    with pytest.raises(WebhookParseError, match="must be a string"):
        parse_event({"Status": 1})  # type: ignore[dict-item]


def test_errors_are_value_errors() -> None:
    assert issubclass(WebhookParseError, ValueError)
    assert issubclass(WebhookVerificationError, ValueError)


def test_split_topic() -> None:
    assert split_topic("surveyengine.completedResponse.SV_1") == (
        None,
        "surveyengine.completedResponse.SV_1",
    )
    assert split_topic("a.b.controlpanel.activateSurvey") == ("a.b", "controlpanel.activateSurvey")
    assert split_topic("something.else") == (None, "something.else")


# --- properties ---

field_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)
ids = st.from_regex(r"[A-Za-z0-9]{1,15}", fullmatch=True)
brands = st.from_regex(r"[a-z][a-z0-9]{0,20}", fullmatch=True)
dates = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


@st.composite
def completed_messages(draw: st.DrawFn) -> dict[str, str]:
    msg = {
        "Status": "Complete",
        "SurveyID": "SV_" + draw(ids),
        "ResponseID": "R_" + draw(ids),
        "CompletedDate": draw(dates).strftime("%Y-%m-%d %H:%M:%S"),
        "BrandID": draw(brands),
    }
    for name in ("RecipientID", "DistributionID", "ResponseEventContext"):
        value = draw(st.none() | field_text)
        if value is not None:
            msg[name] = value
    return msg


@settings(max_examples=150, deadline=None)
@given(msg=completed_messages(), key=field_text, as_bytes=st.booleans())
def test_signed_deliveries_round_trip(msg: dict[str, str], key: str, as_bytes: bool) -> None:
    text = json.dumps(msg, ensure_ascii=False)
    topic = f"{msg['BrandID']}.surveyengine.completedResponse.{msg['SurveyID']}"
    body = signed_body(topic, text, key)
    event = parse_event(body.encode() if as_bytes else body, shared_key=key)
    assert isinstance(event, CompletedResponse)
    assert event.signed
    assert event.brand_id == msg["BrandID"]
    assert event.topic == f"surveyengine.completedResponse.{msg['SurveyID']}"
    assert (event.survey_id, event.response_id) == (msg["SurveyID"], msg["ResponseID"])
    assert event.recipient_id == msg.get("RecipientID")
    assert event.distribution_id == msg.get("DistributionID")
    assert event.response_event_context == msg.get("ResponseEventContext")
    assert event.completed_date is not None
    assert event.completed_date.strftime("%Y-%m-%d %H:%M:%S") == msg["CompletedDate"]
    assert dict(event.fields) == msg


@settings(max_examples=150, deadline=None)
@given(msg=completed_messages(), brand_prefix=st.lists(brands, min_size=0, max_size=3))
def test_flat_deliveries_round_trip_with_any_brand_prefix(
    msg: dict[str, str], brand_prefix: list[str]
) -> None:
    prefix = ".".join(brand_prefix)
    topic = f"surveyengine.completedResponse.{msg['SurveyID']}"
    fields = dict(msg)
    if prefix:
        fields["BrandID"] = prefix
    fields["Topic"] = f"{prefix}.{topic}" if prefix else topic
    event = parse_event(urlencode(fields))
    assert isinstance(event, CompletedResponse)
    assert event.topic == topic
    assert event.brand_id == fields["BrandID"]
    assert event.response_event_context == msg.get("ResponseEventContext")


@settings(max_examples=200, deadline=None)
@given(
    msg=completed_messages(),
    key=field_text,
    position=st.integers(min_value=0),
    replacement=st.characters(blacklist_categories=["Cs"]),
    tamper_hmac=st.booleans(),
)
def test_any_tampering_fails_verification(
    msg: dict[str, str], key: str, position: int, replacement: str, tamper_hmac: bool
) -> None:
    text = json.dumps(msg)
    signature = sign(text, key)
    if tamper_hmac:
        index = position % len(signature)
        new = "0" if signature[index] != "0" else "1"
        signature = signature[:index] + new + signature[index + 1 :]
    else:
        index = position % len(text)
        if text[index] == replacement:
            replacement = "\x00" if replacement != "\x00" else "\x01"
        text = text[:index] + replacement + text[index + 1 :]
    body = urlencode({"Topic": "surveyengine.completedResponse.x", "MSG": text, "HMAC": signature})
    with pytest.raises(WebhookVerificationError):
        parse_event(body, shared_key=key)
