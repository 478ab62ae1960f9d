"""Event subscriptions (webhooks Qualtrics sends to us)."""

from __future__ import annotations

from pydantic import Field

from qualflow.qualtrics.models._base import ApiModel, RequestModel

__all__ = ["EventSubscription", "EventSubscriptionCreate"]


class EventSubscription(ApiModel):
    id: str
    scope: str | None = None
    topics: str
    publication_url: str
    encrypted: bool | None = None
    successful_calls: int | None = None


class EventSubscriptionCreate(RequestModel):
    """Body of ``POST /eventsubscriptions``.

    ``topics`` is one topic string, wildcards allowed: ``surveyengine.completedResponse.SV_…``,
    ``surveyengine.completedResponse.*``, ``controlpanel.activateSurvey``. With ``shared_key``
    Qualtrics signs each delivery (HMAC-SHA512 of ``MSG``).
    """

    topics: str = Field(min_length=1)
    publication_url: str = Field(min_length=1)
    encrypt: bool = False
    shared_key: str | None = Field(default=None, repr=False)

    def to_body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "topics": self.topics,
            "publicationUrl": self.publication_url,
            "encrypt": self.encrypt,
        }
        if self.shared_key is not None:
            body["sharedKey"] = self.shared_key
        return body
