"""A 400 on sharing a survey or adding a group member names the field the caller sent.

Collaborations accept ``userId`` (QIR) as well as ``recipientId`` (QA) (research §7.5), so the
error must not name the key the caller did not use; a missing ``userId`` is not an "unknown user
None" (research §7.3).
"""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox.sandbox_support import assert_error

pytestmark = pytest.mark.anyio


async def test_unknown_collaborator_sent_as_user_id_is_named_user_id(
    client: httpx.AsyncClient, csat: str
) -> None:
    resp = await client.post(
        f"/API/v3/surveys/{csat}/permissions/collaborations",
        json={"userId": "UR_abcdefghijklmno", "permissions": {}},
    )
    message = assert_error(resp, 400)
    assert "userId" in message
    assert "recipientId" not in message
    assert "UR_abcdefghijklmno" in message


async def test_unknown_collaborator_sent_as_recipient_id_is_named_recipient_id(
    client: httpx.AsyncClient, csat: str
) -> None:
    resp = await client.post(
        f"/API/v3/surveys/{csat}/permissions/collaborations",
        json={"recipientId": "GR_abcdefghijklmno", "permissions": {}},
    )
    message = assert_error(resp, 400)
    assert "recipientId" in message
    assert "userId" not in message


async def test_missing_collaborator_names_both_accepted_fields(
    client: httpx.AsyncClient, csat: str
) -> None:
    resp = await client.post(
        f"/API/v3/surveys/{csat}/permissions/collaborations", json={"permissions": {}}
    )
    message = assert_error(resp, 400)
    assert "userId" in message
    assert "recipientId" in message


async def test_group_member_without_user_id_says_it_is_required(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/API/v3/groups", json={"type": "GT_abc", "name": "Team"})
    group_id = created.json()["result"]["id"]
    resp = await client.post(f"/API/v3/groups/{group_id}/members", json={})
    message = assert_error(resp, 400)
    assert "userId" in message
    assert "None" not in message
