"""Parse and verify Qualtrics event-subscription webhook deliveries.

Qualtrics POSTs an ``application/x-www-form-urlencoded`` body to a subscription's
``publicationUrl``. Two shapes exist:

* **flat** (subscription created without a ``sharedKey``)::

      Topic=<brand>.surveyengine.completedResponse.SV_…&Status=Complete&SurveyID=SV_…
      &ResponseID=R_…&CompletedDate=2019-06-26+13%3A28%3A11&BrandID=<brand>

  ``Topic`` may be absent; the event kind is then taken from ``Status``.

* **signed** (subscription created with a ``sharedKey``)::

      Topic=<brand>.surveyengine.completedResponse.SV_…&MSG=<JSON object>&HMAC=<hex>

  ``HMAC`` is the lowercase hex HMAC-SHA512 of the exact ``MSG`` string keyed with the shared
  key. :func:`parse_event` checks it in constant time when a ``shared_key`` is given.

:func:`parse_event` returns one of the typed events below. Topics qualflow does not model
(``threesixty.*`` and anything newer) come back as :class:`GenericEvent` rather than an error, so a
receiver can acknowledge them and move on; malformed bodies raise :class:`WebhookParseError`, and
bad or missing signatures raise :class:`WebhookVerificationError`.

Only ``MSG`` is covered by the signature, not ``Topic``. To stop a forged ``Topic`` from changing
the meaning of a signed message, the topic is cross-checked against the message: its kind must
agree with ``Status``, its survey id with ``SurveyID`` and its brand prefix with ``BrandID``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "ActivateSurvey",
    "CompletedResponse",
    "DeactivateSurvey",
    "GenericEvent",
    "PartialResponse",
    "StartedRecipientSession",
    "WebhookError",
    "WebhookEvent",
    "WebhookParseError",
    "WebhookVerificationError",
    "parse_event",
    "sign",
    "split_topic",
    "verify_hmac",
]


class WebhookError(ValueError):
    """Base class of webhook errors; a ``ValueError`` so web layers can map it to HTTP 400."""


class WebhookParseError(WebhookError):
    """The delivery is not a well-formed Qualtrics event (bad encoding, JSON, fields, dates)."""


class WebhookVerificationError(WebhookError):
    """The delivery's HMAC is missing or does not match the shared key."""


# --- signatures -------------------------------------------------------------------------------


def sign(msg: str, key: str) -> str:
    """Return the lowercase hex HMAC-SHA512 of ``msg`` keyed with ``key``, as Qualtrics sends it."""
    return hmac.new(key.encode("utf-8"), msg.encode("utf-8"), hashlib.sha512).hexdigest()


def verify_hmac(msg: str, hmac_hex: str, key: str) -> bool:
    """Check ``hmac_hex`` against ``msg`` and ``key`` in constant time.

    Hex case is ignored. Anything that is not 128 hex digits simply does not verify.
    """
    candidate = hmac_hex.strip().lower()
    if not candidate.isascii():
        return False
    return hmac.compare_digest(sign(msg, key), candidate)


# --- events -----------------------------------------------------------------------------------

_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid")


class _EventBase(BaseModel):
    model_config = _MODEL_CONFIG

    topic: str | None = Field(
        default=None,
        description="Topic without the brand prefix, e.g. 'surveyengine.completedResponse.SV_…'.",
    )
    brand_id: str | None = None
    status: str | None = None
    survey_id: str | None = None
    signed: bool = Field(
        default=False, description="True when the HMAC was checked against a shared key."
    )
    fields: Mapping[str, str] = Field(
        default_factory=dict, description="Every delivered field, as received (MSG decoded)."
    )


class ActivateSurvey(_EventBase):
    """``controlpanel.activateSurvey``: a survey was activated (``Status`` "Active")."""

    kind: Literal["activateSurvey"] = "activateSurvey"
    survey_id: str


class DeactivateSurvey(_EventBase):
    """``controlpanel.deactivateSurvey``: a survey was deactivated (``Status`` "Inactive")."""

    kind: Literal["deactivateSurvey"] = "deactivateSurvey"
    survey_id: str


class StartedRecipientSession(_EventBase):
    """``surveyengine.startedRecipientSession.{SurveyID}``: a recipient opened the survey."""

    kind: Literal["startedRecipientSession"] = "startedRecipientSession"
    survey_id: str
    recipient_id: str | None = None
    response_event_context: str | None = None
    distribution_id: str | None = None
    started_date: datetime | None = None


class PartialResponse(_EventBase):
    """``surveyengine.partialResponse.{SurveyID}``: an abandoned response was closed as partial."""

    kind: Literal["partialResponse"] = "partialResponse"
    survey_id: str
    response_id: str
    recipient_id: str | None = None
    response_event_context: str | None = None
    distribution_id: str | None = None
    completed_date: datetime | None = None


class CompletedResponse(_EventBase):
    """``surveyengine.completedResponse.{SurveyID}``: a response was recorded."""

    kind: Literal["completedResponse"] = "completedResponse"
    survey_id: str
    response_id: str
    recipient_id: str | None = None
    response_event_context: str | None = None
    distribution_id: str | None = None
    completed_date: datetime | None = None


class GenericEvent(_EventBase):
    """Any other topic (``threesixty.*``, future topics): fields kept, nothing interpreted."""

    kind: Literal["generic"] = "generic"


WebhookEvent = Annotated[
    ActivateSurvey
    | DeactivateSurvey
    | StartedRecipientSession
    | PartialResponse
    | CompletedResponse
    | GenericEvent,
    Field(discriminator="kind"),
]
"""A parsed delivery; switch on ``event.kind`` or ``isinstance``."""

_EVENT_ADAPTER: TypeAdapter[WebhookEvent] = TypeAdapter(WebhookEvent)

# Event kind → the Status value Qualtrics sends with it (research notes §5.2).
_STATUS_BY_KIND = {
    "activateSurvey": "Active",
    "deactivateSurvey": "Inactive",
    "startedRecipientSession": "Started",
    "partialResponse": "Partial",
    "completedResponse": "Complete",
}
_KIND_BY_STATUS = {status.lower(): kind for kind, status in _STATUS_BY_KIND.items()}
_CONTROLPANEL_KINDS = {"activateSurvey", "deactivateSurvey"}
_SURVEY_TOPIC_KINDS = {"startedRecipientSession", "partialResponse", "completedResponse"}
_TOPIC_ROOTS = ("surveyengine", "controlpanel", "threesixty")

# Form field name → model field name. Qualtrics spells them this way; lookup ignores case.
_FIELD_NAMES = {
    "status": "status",
    "surveyid": "survey_id",
    "responseid": "response_id",
    "recipientid": "recipient_id",
    "responseeventcontext": "response_event_context",
    "distributionid": "distribution_id",
    "completeddate": "completed_date",
    "starteddate": "started_date",
    "brandid": "brand_id",
}
_DATE_FIELDS = {"completed_date", "started_date"}


def split_topic(topic: str) -> tuple[str | None, str]:
    """Split a delivered topic into ``(brand_id, topic_without_brand)``.

    ``"acme.surveyengine.completedResponse.SV_1"`` gives
    ``("acme", "surveyengine.completedResponse.SV_1")``. A topic that already starts with a known
    root (``surveyengine``, ``controlpanel``, ``threesixty``) has no brand: ``(None, topic)``.
    An unrecognised topic is returned unchanged.
    """
    parts = topic.split(".")
    for index, part in enumerate(parts):
        if part in _TOPIC_ROOTS:
            if index == 0:
                return None, topic
            return ".".join(parts[:index]), ".".join(parts[index:])
    return None, topic


def _kind_of_topic(topic: str) -> tuple[str | None, str | None]:
    """Return ``(kind, survey_id_from_topic)`` for a brand-less topic; kind None if unknown."""
    parts = topic.split(".")
    if len(parts) == 2 and parts[0] == "controlpanel" and parts[1] in _CONTROLPANEL_KINDS:
        return parts[1], None
    if len(parts) >= 2 and parts[0] == "surveyengine" and parts[1] in _SURVEY_TOPIC_KINDS:
        survey = ".".join(parts[2:]) or None
        # A subscription topic may end in a wildcard; a delivered one names the survey.
        return parts[1], None if survey in (None, "*") else survey
    return None, None


# --- body decoding ----------------------------------------------------------------------------


def _form_fields(form: Mapping[str, str] | bytes | str) -> dict[str, str]:
    if isinstance(form, bytes | bytearray | memoryview):
        try:
            text = bytes(form).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookParseError(f"webhook body is not UTF-8: {exc}") from None
        return _form_fields(text)
    if isinstance(form, str):
        try:
            pairs = parse_qsl(
                form, keep_blank_values=True, strict_parsing=bool(form), errors="strict"
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebhookParseError(f"webhook body is not a form-encoded body: {exc}") from None
        fields: dict[str, str] = {}
        for name, value in pairs:
            _add_field(fields, name, value)
        return fields
    if isinstance(form, Mapping):
        fields = {}
        for name, value in form.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise WebhookParseError(
                    f"webhook field {name!r} must be a string, got {type(value).__name__}"
                )
            _add_field(fields, name, value)
        return fields
    raise TypeError(f"form must be bytes, str or a mapping, not {type(form).__name__}")


def _add_field(fields: dict[str, str], name: str, value: str) -> None:
    # A field given twice (in any case) is ambiguous, and with MSG/HMAC a smuggling vector.
    if any(existing.lower() == name.lower() for existing in fields):
        raise WebhookParseError(f"webhook field {name!r} is given more than once")
    _require_utf8(name, value)
    fields[name] = value


def _require_utf8(name: str, value: str) -> None:
    # Only a JSON \u escape in MSG (or a caller's mapping) can produce an unpaired surrogate;
    # kept, it would fail every later encoding of the event as UTF-8 (storing it, showing it).
    try:
        name.encode("utf-8")
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise WebhookParseError(
            f"webhook field {name!r} holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)"
        ) from None


def _get(fields: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in fields.items():
        if key.lower() == lowered:
            return value
    return None


def _decode_msg(msg: str) -> dict[str, str]:
    try:
        decoded: Any = json.loads(msg)
    except json.JSONDecodeError as exc:
        raise WebhookParseError(f"webhook MSG is not valid JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise WebhookParseError("webhook MSG must be a JSON object")
    fields: dict[str, str] = {}
    for name, value in decoded.items():
        if value is None:
            continue
        if isinstance(value, dict | list):
            raise WebhookParseError(f"webhook MSG field {name!r} must be a scalar")
        text = value if isinstance(value, str) else json.dumps(value)
        _add_field(fields, name, text)
    return fields


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?$")


def _parse_date(field: str, value: str) -> datetime:
    """Qualtrics sends 'YYYY-MM-DD HH:MM:SS' in UTC; ISO-8601 with an offset is accepted too."""
    text = value.strip()
    name = _FORM_NAME.get(field, field)
    if not _DATE_RE.match(text):
        raise WebhookParseError(
            f"webhook field {name!r} is not a date 'YYYY-MM-DD HH:MM:SS': {value!r}"
        )
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except ValueError as exc:
        raise WebhookParseError(f"webhook field {name!r} is not a valid date: {exc}") from None
    except OverflowError:
        # An offset pushing the year below 1 or past 9999 (e.g. 9999-12-31T23:59:59-01:00).
        raise WebhookParseError(
            f"webhook field {name!r} is out of the range of dates: {value!r}"
        ) from None


# --- parse ------------------------------------------------------------------------------------


def parse_event(
    form: Mapping[str, str] | bytes | str, *, shared_key: str | None = None
) -> WebhookEvent:
    """Parse one delivered webhook body into a typed event.

    ``form`` is the raw request body (``bytes``/``str``, form-encoded) or already-decoded form
    fields (e.g. Starlette's ``FormData``). When ``shared_key`` is given the delivery must be
    signed (``MSG`` + ``HMAC``) and the HMAC must match, else :class:`WebhookVerificationError`.
    Without a key, a signed delivery is parsed but not verified (``event.signed`` is False).

    The brand prefix of ``Topic`` is moved to ``brand_id``; empty fields count as absent.

    Raises:
        WebhookParseError: malformed body, JSON, date, missing required field (``SurveyID`` for
            every survey event, ``ResponseID`` for response events), or a topic that contradicts
            the message.
        WebhookVerificationError: a key was given and the HMAC is missing or wrong.
    """
    outer = _form_fields(form)
    msg = _get(outer, "MSG")
    hmac_hex = _get(outer, "HMAC")
    topic_field = _get(outer, "Topic")
    signed = False
    kind: str | None

    if msg is not None:
        if shared_key is not None:
            if not hmac_hex:
                raise WebhookVerificationError("webhook is not signed: HMAC field missing")
            if not verify_hmac(msg, hmac_hex, shared_key):
                raise WebhookVerificationError("webhook HMAC does not match the shared key")
            signed = True
        # Only MSG is signed: fields posted beside it are ignored, never merged.
        fields = _decode_msg(msg)
    else:
        if shared_key is not None:
            raise WebhookVerificationError(
                "webhook is not signed (no MSG/HMAC fields) but a shared key is configured"
            )
        if hmac_hex is not None:
            raise WebhookParseError("webhook has an HMAC field but no MSG field")
        fields = {k: v for k, v in outer.items() if k.lower() != "topic"}

    values: dict[str, str] = {}
    for name, value in fields.items():
        target = _FIELD_NAMES.get(name.lower())
        if target is not None and value != "":
            values[target] = value

    brand_from_topic, topic = (None, None) if not topic_field else split_topic(topic_field)
    survey_from_topic: str | None = None
    if topic is not None:
        kind, survey_from_topic = _kind_of_topic(topic)
    else:
        status = values.get("status")
        kind = _KIND_BY_STATUS.get(status.lower()) if status else None
        if kind is None:
            raise WebhookParseError(
                "webhook has no Topic and its Status does not name a known event: "
                f"{status!r} (expected one of {sorted(_STATUS_BY_KIND.values())})"
            )

    _check_consistency(kind, values, brand_from_topic, survey_from_topic, topic_field)
    if topic is None and kind is not None:
        # Flat deliveries may omit Topic; give consumers the canonical one anyway.
        topic = _canonical_topic(kind, values.get("survey_id"))
    values.setdefault("brand_id", brand_from_topic or "")
    values.setdefault("survey_id", survey_from_topic or "")

    data: dict[str, object] = {
        "kind": kind or "generic",
        "topic": topic,
        "signed": signed,
        "fields": dict(fields),
    }
    allowed = _FIELDS_BY_KIND[kind]
    for name, value in values.items():
        if name in allowed and value:
            data[name] = _parse_date(name, value) if name in _DATE_FIELDS else value
    missing = [name for name in _REQUIRED_BY_KIND[kind] if name not in data]
    if missing:
        names = ", ".join(_FORM_NAME[name] for name in missing)
        raise WebhookParseError(f"webhook event {kind!r} is missing required field(s): {names}")
    return _EVENT_ADAPTER.validate_python(data)


_SURVEY_FIELDS = frozenset({"status", "survey_id", "brand_id"})
_SESSION_FIELDS = _SURVEY_FIELDS | {"recipient_id", "response_event_context", "distribution_id"}
_FIELDS_BY_KIND: dict[str | None, frozenset[str]] = {
    None: _SURVEY_FIELDS,
    "activateSurvey": _SURVEY_FIELDS,
    "deactivateSurvey": _SURVEY_FIELDS,
    "startedRecipientSession": _SESSION_FIELDS | {"started_date"},
    "partialResponse": _SESSION_FIELDS | {"response_id", "completed_date"},
    "completedResponse": _SESSION_FIELDS | {"response_id", "completed_date"},
}
_REQUIRED_BY_KIND: dict[str | None, tuple[str, ...]] = {
    None: (),
    "activateSurvey": ("survey_id",),
    "deactivateSurvey": ("survey_id",),
    "startedRecipientSession": ("survey_id",),
    "partialResponse": ("survey_id", "response_id"),
    "completedResponse": ("survey_id", "response_id"),
}
_FORM_NAME = {
    "survey_id": "SurveyID",
    "response_id": "ResponseID",
    "completed_date": "CompletedDate",
    "started_date": "StartedDate",
}


def _canonical_topic(kind: str, survey_id: str | None) -> str:
    if kind in _CONTROLPANEL_KINDS:
        return f"controlpanel.{kind}"
    return f"surveyengine.{kind}.{survey_id or '*'}"


def _check_consistency(
    kind: str | None,
    values: Mapping[str, str],
    brand_from_topic: str | None,
    survey_from_topic: str | None,
    topic_field: str | None,
) -> None:
    if kind is None or topic_field is None:
        return
    status = values.get("status")
    expected_status = _STATUS_BY_KIND[kind]
    if status is not None and status.lower() != expected_status.lower():
        raise WebhookParseError(
            f"webhook Topic {topic_field!r} does not match Status {status!r} "
            f"(expected {expected_status!r})"
        )
    survey = values.get("survey_id")
    if survey is not None and survey_from_topic is not None and survey != survey_from_topic:
        raise WebhookParseError(
            f"webhook Topic {topic_field!r} names survey {survey_from_topic!r} "
            f"but SurveyID is {survey!r}"
        )
    brand = values.get("brand_id")
    if brand is not None and brand_from_topic is not None and brand != brand_from_topic:
        raise WebhookParseError(
            f"webhook Topic {topic_field!r} names brand {brand_from_topic!r} "
            f"but BrandID is {brand!r}"
        )
