"""Reading a platform's reward request, in any of the shapes a Qualtrics Web Service task sends.

The task can send its parameters as a JSON body, as a URL-encoded body, or — its suggestion for
URL-encoded parameters — in the query string of the URL with no body at all. All three are
accepted (query parameters first, then the body's fields over them); anything else (XML, plain
text that is not JSON) gets a 415 that names the shapes that work.
"""

from __future__ import annotations

import json
from ipaddress import ip_address
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from qualflow.incentives.fraud import (
    BALLOT_BOX,
    DUPLICATE,
    DUPLICATE_SCORE,
    FRAUD_FIELDS,
    FRAUD_SCORE,
    RECAPTCHA,
)
from qualflow.incentives.schemas import TextInput
from qualflow.web.deps import ApiError, media_type, read_limited

#: A reward request is a few short fields; anything this large is not one.
MAX_BODY = 64 * 1024


#: A fraud-detection field's value as piped text ("0.9", "true") or as JSON (0.9, true).
FraudValue = Annotated[str, StringConstraints(max_length=32)] | float | bool | None


def _fraud_field(name: str, meaning: str) -> Any:
    return Field(
        default=None,
        alias=name,
        description=f"{meaning}; pipe it in a Qualtrics Web Service task as "
        f"${{e://Field/{name}}}. The incentive's fraud rules read it (an enabled rule's field "
        "left out holds the reward when the rules say so).",
    )


class PlatformRewardIn(TextInput):
    """What a Qualtrics Web Service task (or any system) sends."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    email: str | None = Field(default=None, max_length=320, examples=["pat@example.org"])
    first_name: str | None = Field(default=None, alias="firstName", max_length=100)
    response_id: str | None = Field(default=None, alias="responseId", max_length=64)
    survey_id: str | None = Field(default=None, alias="surveyId", max_length=64)
    participant_id: str | None = Field(
        default=None,
        alias="participantId",
        max_length=200,
        description="Your id of the respondent (one email across many ids is suspicious).",
    )
    ip_address: str | None = Field(
        default=None,
        alias="ipAddress",
        max_length=64,
        description="The respondent's IP address (many emails from one address is suspicious).",
    )
    recaptcha_score: FraudValue = _fraud_field(RECAPTCHA, "reCAPTCHA score, 0-1")
    relevant_id_duplicate: FraudValue = _fraud_field(DUPLICATE, "RelevantID duplicate flag")
    relevant_id_duplicate_score: FraudValue = _fraud_field(
        DUPLICATE_SCORE, "RelevantID duplicate score, 0-100"
    )
    relevant_id_fraud_score: FraudValue = _fraud_field(FRAUD_SCORE, "RelevantID fraud score, 0-100")
    ballot_box_stuffing: FraudValue = _fraud_field(BALLOT_BOX, "ballot-box-stuffing flag")

    @field_validator("ip_address")
    @classmethod
    def _an_ip_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ip_address(value.strip()))
        except ValueError:
            raise ValueError("not an IPv4 or IPv6 address") from None

    def fraud_values(self) -> dict[str, Any]:
        """The fraud-detection fields it carries, by their Qualtrics names."""
        return self.model_dump(by_alias=True, include=_FRAUD_ATTRIBUTES, exclude_none=True)


#: The attributes that hold a fraud-detection field (those aliased to a Qualtrics name).
_FRAUD_ATTRIBUTES = {
    name for name, info in PlatformRewardIn.model_fields.items() if info.alias in FRAUD_FIELDS
}


def _unsupported(content_type: str) -> ApiError:
    return ApiError(
        415,
        "unsupported_media_type",
        f"send the request as JSON (Content-Type: application/json), as a URL-encoded form, "
        f"or as query parameters, not as {content_type}",
    )


def _body_fields(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the body is not UTF-8") from None
    looks_like_json = text.lstrip().startswith("{")
    if content_type == "application/x-www-form-urlencoded" or (
        not content_type and not looks_like_json
    ):
        return dict(parse_qsl(text, keep_blank_values=True))
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        return _json_object(text)
    if content_type == "text/plain" and looks_like_json:
        return _json_object(text)  # a Web Service task's "Plain Text" body holding JSON
    raise _unsupported(content_type)


def _json_object(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        # Worded by the API's validation handler, as for every other JSON body.
        invalid = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": exc.msg, "input": {}}
        raise RequestValidationError([invalid]) from None
    if not isinstance(document, dict):
        raise ApiError(422, "validation_error", "invalid request: the body must be a JSON object")
    return document


async def read_platform_reward(request: Request) -> PlatformRewardIn:
    """The request's fields from its query string and its body (which wins), validated."""
    raw = await read_limited(request, MAX_BODY)
    if raw is None:
        raise ApiError(413, "payload_too_large", f"the body is larger than {MAX_BODY} bytes")
    fields: dict[str, Any] = dict(request.query_params)
    fields.update(_body_fields(media_type(request), raw))
    # Piped text that resolved to nothing arrives as an empty value: the same as no value.
    fields = {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in fields.items()}
    try:
        return PlatformRewardIn.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None


def request_body_openapi() -> dict[str, Any]:
    """The ``requestBody`` of the endpoint's OpenAPI operation (the model, two media types)."""
    schema = PlatformRewardIn.model_json_schema(by_alias=True)
    return {
        "requestBody": {
            "required": False,
            "description": "As JSON or URL-encoded; the same fields may come as query "
            "parameters instead (a Qualtrics Web Service task's URL-encoded option).",
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }
    }
