"""Event subscriptions need a brand administrator (research §5.1, from the Qualtrics docs)."""

from __future__ import annotations

import httpx
import pytest

from qualflow.sandbox import SandboxState
from tests.sandbox.sandbox_support import assert_error

pytestmark = pytest.mark.anyio

SUBSCRIPTION = {"topics": "surveyengine.completedResponse.*", "publicationUrl": "https://h.test/q"}


@pytest.fixture
def participant_token(state: SandboxState) -> str:
    _, token = state.create_user("pat@example.com", account_type="UT_PARTICIPANT")
    return token


async def test_a_user_who_is_not_a_brand_admin_cannot_subscribe(
    anon: httpx.AsyncClient, state: SandboxState, participant_token: str
) -> None:
    headers = {"X-API-TOKEN": participant_token}
    resp = await anon.post("/API/v3/eventsubscriptions", json=SUBSCRIPTION, headers=headers)
    assert "brand administrator" in assert_error(resp, 403)
    assert state.subscriptions == {}


async def test_brand_subscriptions_are_hidden_from_and_kept_from_other_users(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, participant_token: str
) -> None:
    created = await client.post("/API/v3/eventsubscriptions", json=SUBSCRIPTION)
    assert created.status_code == 200
    sub_id = created.json()["result"]["id"]
    headers = {"X-API-TOKEN": participant_token}
    assert_error(await anon.get("/API/v3/eventsubscriptions", headers=headers), 403)
    assert_error(await anon.get(f"/API/v3/eventsubscriptions/{sub_id}", headers=headers), 403)
    assert_error(await anon.delete(f"/API/v3/eventsubscriptions/{sub_id}", headers=headers), 403)
    # The brand admin still sees it: the refused delete did nothing.
    assert (await client.get(f"/API/v3/eventsubscriptions/{sub_id}")).status_code == 200
