"""The pages (and the layers the CLI shares with them) answer text holding a NUL character,
which PostgreSQL cannot store, with a message or store it without the NUL: never a 500."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from qualflow.incentives import api_keys
from qualflow.incentives.manage import IncentiveError, IncentiveManager
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Db, Person, transitions
from tests.incentives.test_api import API, gift_incentive, platform_key
from tests.incentives.test_pages import form, sign_in

NUL = "a\x00b"


def messages(page: str) -> list[str]:
    return [html.unescape(m).strip() for m in re.findall(r'class="flash[^"]*"[^>]*>([^<]*)', page)]


def test_a_pool_or_key_named_with_a_nul_is_refused_with_a_message(
    hub: TestClient, admin: Person
) -> None:
    token = sign_in(hub, admin)

    pool = hub.post("/incentives/providers/pools", data=form(token, name=NUL, description=""))
    key = hub.post("/incentives/api-keys", data=form(token, platform="acme", display_name=NUL))

    assert pool.status_code == 200
    assert "the pool's name must not contain a NUL character" in messages(pool.text)
    assert key.status_code == 200
    assert "a display name must not contain control characters" in messages(key.text)
    assert hub.get(f"{API}/providers/gift-code-pools", headers=admin.headers).json()["total"] == 0
    assert hub.get(f"{API}/api-keys", headers=admin.headers).json()["total"] == 0


def test_the_shared_layers_refuse_it_for_the_command_line_too(manager: IncentiveManager) -> None:
    with pytest.raises(IncentiveError, match="the pool's description must not contain a NUL"):
        manager.create_pool("Fine", description=NUL)
    with pytest.raises(api_keys.ApiKeyError, match="must not contain control characters"):
        api_keys.check_display_name("Work\x07flow")


def test_a_reason_or_reference_with_a_nul_is_no_500(hub: TestClient, admin: Person, db: Db) -> None:
    incentive = gift_incentive(hub, admin, stock=2, approval_mode="review_all")
    platform, key = platform_key(hub, admin)
    held = hub.post(
        f"{API}/{incentive['reference_id']}/rewards",
        json={"email": "held@example.org", **CLEAN_FRAUD_FIELDS},
        auth=(platform, key),
    ).json()["reference_id"]
    token = sign_in(hub, admin)

    unknown = hub.post(
        "/incentives/review-queue", data=form(token, action="block", reward=[f"RW-{NUL}"])
    )
    blocked = hub.post(f"/incentives/rewards/{held}/block", data=form(token, reason=f"bot{NUL}"))

    assert unknown.status_code == 200
    assert "RW-A\x00B: reward RW-A\x00B does not exist" in messages(unknown.text)
    assert blocked.status_code == 200
    assert transitions(db, held)[-1][1:] == ("blocked", f"blocked by {admin.email}: botab")
