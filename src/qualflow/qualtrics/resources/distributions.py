"""``/distributions``: email invitations, personal links, reminders and thank-yous."""

from __future__ import annotations

from qualflow.qualtrics._core import (
    ApiCall,
    Envelope,
    nothing,
    page_of,
    path_segment,
    result_as,
)
from qualflow.qualtrics.errors import UnexpectedResponse
from qualflow.qualtrics.models import (
    Distribution,
    DistributionHistoryEntry,
    DistributionLink,
    EmailDistributionCreate,
    FollowUpCreate,
    LinkDistributionCreate,
    Page,
)
from qualflow.qualtrics.paging import AsyncPager, SyncPager
from qualflow.qualtrics.resources._resource import AsyncResource, SyncResource

__all__ = ["AsyncDistributions", "Distributions"]


def _distribution_id(envelope: Envelope) -> str:
    # Creates answer {"id": …}; follow-ups have been seen answering {"distributionId": …}.
    result = envelope.result
    if isinstance(result, dict):
        for key in ("id", "distributionId"):
            if isinstance(result.get(key), str):
                return str(result[key])
    if isinstance(result, str):
        return result
    raise UnexpectedResponse("creating a distribution returned no id")


class _Calls:
    @staticmethod
    def one(distribution_id: str) -> str:
        return f"/distributions/{path_segment(distribution_id, 'distribution_id')}"

    @staticmethod
    def list(survey_id: str) -> ApiCall[Page[Distribution]]:
        path_segment(survey_id, "survey_id")
        return ApiCall(
            "GET", "/distributions", page_of(Distribution), params={"surveyId": survey_id}
        )

    @staticmethod
    def get(distribution_id: str, survey_id: str) -> ApiCall[Distribution]:
        path_segment(survey_id, "survey_id")
        return ApiCall(
            "GET",
            _Calls.one(distribution_id),
            result_as(Distribution),
            params={"surveyId": survey_id},
        )

    @staticmethod
    def create(body: dict[str, object]) -> ApiCall[str]:
        return ApiCall("POST", "/distributions", _distribution_id, json=body)

    @staticmethod
    def follow_up(distribution_id: str, kind: str, body: FollowUpCreate) -> ApiCall[str]:
        return ApiCall(
            "POST", f"{_Calls.one(distribution_id)}/{kind}", _distribution_id, json=body.to_body()
        )

    @staticmethod
    def links(distribution_id: str, survey_id: str) -> ApiCall[Page[DistributionLink]]:
        path_segment(survey_id, "survey_id")
        return ApiCall(
            "GET",
            f"{_Calls.one(distribution_id)}/links",
            page_of(DistributionLink),
            params={"surveyId": survey_id},
        )

    @staticmethod
    def history(distribution_id: str) -> ApiCall[Page[DistributionHistoryEntry]]:
        return ApiCall(
            "GET", f"{_Calls.one(distribution_id)}/history", page_of(DistributionHistoryEntry)
        )

    @staticmethod
    def delete(distribution_id: str) -> ApiCall[None]:
        return ApiCall("DELETE", _Calls.one(distribution_id), nothing)


class Distributions(SyncResource):
    """Distributions of a survey: ``client.distributions``."""

    def iter(self, survey_id: str) -> SyncPager[Distribution]:
        """The survey's distributions with their ``stats`` (sent, opened, finished…)."""
        return self._pager(_Calls.list(survey_id))

    def list(self, survey_id: str, *, limit: int | None = None) -> list[Distribution]:
        return self.iter(survey_id).take(limit)

    def get(self, distribution_id: str, *, survey_id: str) -> Distribution:
        return self._run(_Calls.get(distribution_id, survey_id))

    def create_email(self, distribution: EmailDistributionCreate) -> str:
        """Email a survey invitation to a mailing list, contact or transaction batch at
        ``send_date``; returns the ``EMD_…`` id."""
        return self._run(_Calls.create(distribution.to_body()))

    def create_links(self, distribution: LinkDistributionCreate) -> str:
        """Generate personal survey links for a mailing list without sending email."""
        return self._run(_Calls.create(distribution.to_body()))

    def iter_links(self, distribution_id: str, *, survey_id: str) -> SyncPager[DistributionLink]:
        """Each contact's personal link of a (link) distribution."""
        return self._pager(_Calls.links(distribution_id, survey_id))

    def iter_history(self, distribution_id: str) -> SyncPager[DistributionHistoryEntry]:
        """What happened per contact: sent, opened, started, finished (with ``response_id``)."""
        return self._pager(_Calls.history(distribution_id))

    def remind(self, distribution_id: str, reminder: FollowUpCreate) -> str:
        """Send a reminder to those who have not finished; returns the reminder's id."""
        return self._run(_Calls.follow_up(distribution_id, "reminders", reminder))

    def thank(self, distribution_id: str, thank_you: FollowUpCreate) -> str:
        """Send a thank-you to those who finished; returns the thank-you's id."""
        return self._run(_Calls.follow_up(distribution_id, "thankyous", thank_you))

    def delete(self, distribution_id: str) -> None:
        self._run(_Calls.delete(distribution_id))


class AsyncDistributions(AsyncResource):
    def iter(self, survey_id: str) -> AsyncPager[Distribution]:
        return self._pager(_Calls.list(survey_id))

    async def list(self, survey_id: str, *, limit: int | None = None) -> list[Distribution]:
        return await self.iter(survey_id).take(limit)

    async def get(self, distribution_id: str, *, survey_id: str) -> Distribution:
        return await self._run(_Calls.get(distribution_id, survey_id))

    async def create_email(self, distribution: EmailDistributionCreate) -> str:
        return await self._run(_Calls.create(distribution.to_body()))

    async def create_links(self, distribution: LinkDistributionCreate) -> str:
        return await self._run(_Calls.create(distribution.to_body()))

    def iter_links(self, distribution_id: str, *, survey_id: str) -> AsyncPager[DistributionLink]:
        return self._pager(_Calls.links(distribution_id, survey_id))

    def iter_history(self, distribution_id: str) -> AsyncPager[DistributionHistoryEntry]:
        return self._pager(_Calls.history(distribution_id))

    async def remind(self, distribution_id: str, reminder: FollowUpCreate) -> str:
        return await self._run(_Calls.follow_up(distribution_id, "reminders", reminder))

    async def thank(self, distribution_id: str, thank_you: FollowUpCreate) -> str:
        return await self._run(_Calls.follow_up(distribution_id, "thankyous", thank_you))

    async def delete(self, distribution_id: str) -> None:
        await self._run(_Calls.delete(distribution_id))
