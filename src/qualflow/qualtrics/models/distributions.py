"""Distributions: email invitations, reminders, thank-yous and personal links."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from qualflow.qualtrics.models._base import ApiDatetime, ApiModel, AwareUtcDatetime, RequestModel

__all__ = [
    "Distribution",
    "DistributionHeaders",
    "DistributionHistoryEntry",
    "DistributionLink",
    "DistributionMessage",
    "DistributionRecipients",
    "DistributionStats",
    "DistributionSurveyLink",
    "EmailDistributionCreate",
    "EmailHeader",
    "FollowUpCreate",
    "LinkDistributionCreate",
    "MessageInput",
    "RecipientsInput",
    "SurveyLinkInput",
]

LinkType = Literal["Individual", "Multiple", "Anonymous"]


class DistributionHeaders(ApiModel):
    from_email: str | None = None
    reply_to_email: str | None = None
    from_name: str | None = None
    subject: str | None = None


class DistributionRecipients(ApiModel):
    mailing_list_id: str | None = None
    contact_id: str | None = None
    library_id: str | None = None
    sample_id: str | None = None
    transaction_batch_id: str | None = None


class DistributionMessage(ApiModel):
    library_id: str | None = None
    message_id: str | None = None
    message_text: str | None = None


class DistributionSurveyLink(ApiModel):
    survey_id: str | None = None
    expiration_date: ApiDatetime = None
    link_type: str | None = None


class DistributionStats(ApiModel):
    sent: int = 0
    failed: int = 0
    started: int = 0
    bounced: int = 0
    opened: int = 0
    skipped: int = 0
    finished: int = 0
    complaints: int = 0
    blocked: int = 0


class Distribution(ApiModel):
    id: str
    parent_distribution_id: str | None = None
    owner_id: str | None = None
    organization_id: str | None = None
    request_status: str | None = None
    request_type: str | None = None
    send_date: ApiDatetime = None
    created_date: ApiDatetime = None
    modified_date: ApiDatetime = None
    custom_headers: dict[str, Any] | None = None
    headers: DistributionHeaders | None = None
    recipients: DistributionRecipients | None = None
    message: DistributionMessage | None = None
    survey_link: DistributionSurveyLink | None = None
    embedded_data: dict[str, Any] | None = None
    stats: DistributionStats | None = None


class DistributionLink(ApiModel):
    contact_id: str | None = None
    transaction_id: str | None = None
    link: str
    exceeded_contact_frequency: bool | None = None
    link_expiration: ApiDatetime = None
    status: str | None = None
    last_name: str | None = None
    first_name: str | None = None
    external_data_reference: str | None = None
    email: str | None = None
    unsubscribed: bool | None = None


class DistributionHistoryEntry(ApiModel):
    contact_id: str | None = None
    contact_lookup_id: str | None = None
    distribution_id: str | None = Field(default=None, alias="distributionID")
    status: str | None = None
    survey_link: str | None = None
    contact_frequency_rule_id: str | None = None
    response_id: str | None = None
    response_completed_at: ApiDatetime = None
    sent_at: ApiDatetime = None
    opened_at: ApiDatetime = None
    response_started_at: ApiDatetime = None
    survey_session_id: str | None = None


class EmailHeader(RequestModel):
    from_email: str
    from_name: str
    subject: str
    reply_to_email: str | None = None


class MessageInput(RequestModel):
    """A library message (``library_id`` + ``message_id``) or inline ``message_text``."""

    library_id: str | None = None
    message_id: str | None = None
    message_text: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MessageInput:
        library = self.library_id is not None and self.message_id is not None
        if library == (self.message_text is not None):
            raise ValueError("give either library_id and message_id, or message_text")
        return self


class RecipientsInput(RequestModel):
    mailing_list_id: str | None = None
    contact_id: str | None = None
    transaction_batch_id: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> RecipientsInput:
        given = [v for v in (self.mailing_list_id, self.contact_id, self.transaction_batch_id) if v]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of mailing_list_id, contact_id, transaction_batch_id"
            )
        return self


class SurveyLinkInput(RequestModel):
    survey_id: str
    type: LinkType = "Individual"
    expiration_date: AwareUtcDatetime | None = None

    def to_body(self) -> dict[str, object]:
        body = super().to_body()
        body["type"] = self.type
        return body


class EmailDistributionCreate(RequestModel):
    """Body of ``POST /distributions`` that emails a survey invitation."""

    header: EmailHeader
    survey_link: SurveyLinkInput
    recipients: RecipientsInput
    send_date: AwareUtcDatetime
    message: MessageInput
    embedded_data: dict[str, str] | None = None

    def to_body(self) -> dict[str, object]:
        body = super().to_body()
        body["surveyLink"] = self.survey_link.to_body()
        return body


class LinkDistributionCreate(RequestModel):
    """Body of ``POST /distributions`` that only generates personal links for a mailing list."""

    survey_id: str
    mailing_list_id: str
    description: str
    link_type: LinkType = "Individual"
    expiration_date: AwareUtcDatetime | None = None

    def to_body(self) -> dict[str, object]:
        body: dict[str, object] = {"action": "CreateDistribution", **super().to_body()}
        body["linkType"] = self.link_type
        return body


class FollowUpCreate(RequestModel):
    """Body of a reminder or thank-you sent for an existing distribution."""

    header: EmailHeader
    send_date: AwareUtcDatetime
    message: MessageInput
