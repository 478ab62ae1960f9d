"""The incentives lists that grow without bound (incentives, gift-code pools, platform API keys,
a key's audit) answer the hub's page envelope: ``items``, ``total``, ``limit``, ``offset``; two
pages cover every row once, in a stable order, and a ``limit`` out of range is a 422 naming it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.hub.hub_support import assert_limit_out_of_range_refused, read_two_pages
from tests.incentives.support import Person

API = "/api/v1/incentives"
POOLS = f"{API}/providers/gift-code-pools"
KEYS = f"{API}/api-keys"


def _pool(client: TestClient, admin: Person, name: str) -> int:
    created = client.post(POOLS, json={"name": name}, headers=admin.headers)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def _key(client: TestClient, admin: Person, platform: str, name: str) -> int:
    created = client.post(
        KEYS, json={"platform": platform, "display_name": name}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def test_incentives_page_newest_first(hub: TestClient, admin: Person) -> None:
    pool = _pool(hub, admin, "Shared")
    created = []
    for number in range(5):
        body = {
            "name": f"Study {number}",
            "provider": "gift_codes",
            "gift_code_pool_id": pool,
            "amount": "10.00",
            "currency": "USD",
            "reward_name": "gift card",
        }
        answer = hub.post(API, json=body, headers=admin.headers)
        assert answer.status_code == 201, answer.text
        created.append(answer.json()["reference_id"])
    assert read_two_pages(hub, API, admin.headers, "reference_id") == created[::-1]
    filtered = hub.get(f"{API}?q=study 1&limit=1", headers=admin.headers).json()
    assert [i["reference_id"] for i in filtered["items"]] == [created[1]]
    assert filtered["total"] == 1
    assert_limit_out_of_range_refused(hub, API, admin.headers)


def test_gift_code_pools_page_by_name(hub: TestClient, admin: Person) -> None:
    # Named against id order, so that an order by id would show.
    ids = {name: _pool(hub, admin, name) for name in ("pool e", "pool d", "pool c", "pool b")}
    ids["pool a"] = _pool(hub, admin, "pool a")
    assert read_two_pages(hub, POOLS, admin.headers, "id") == [ids[name] for name in sorted(ids)]
    assert_limit_out_of_range_refused(hub, POOLS, admin.headers)


def test_api_keys_page_by_platform_active_first_then_by_id(hub: TestClient, admin: Person) -> None:
    retired = _key(hub, admin, "beta", "old")
    kept = _key(hub, admin, "beta", "kept")
    gone = hub.post(f"{KEYS}/{retired}/deactivate", headers=admin.headers)
    assert gone.status_code == 200, gone.text
    replacement = _key(hub, admin, "beta", "new")
    first_alpha = _key(hub, admin, "alpha", "one")
    second_alpha = _key(hub, admin, "alpha", "two")
    expected = [first_alpha, second_alpha, kept, replacement, retired]
    assert read_two_pages(hub, KEYS, admin.headers, "id") == expected
    beta = hub.get(f"{KEYS}?platform=beta&limit=2", headers=admin.headers).json()
    assert [k["id"] for k in beta["items"]] == [kept, replacement]
    assert beta["total"] == 3
    assert_limit_out_of_range_refused(hub, KEYS, admin.headers)


def test_a_keys_audit_pages_newest_first(hub: TestClient, admin: Person) -> None:
    key = _key(hub, admin, "acme", "name 0")
    for number in range(1, 4):
        renamed = hub.patch(
            f"{KEYS}/{key}", json={"display_name": f"name {number}"}, headers=admin.headers
        )
        assert renamed.status_code == 200, renamed.text
    revealed = hub.post(f"{KEYS}/{key}/reveal", headers=admin.headers)
    assert revealed.status_code == 200, revealed.text
    audit = f"{KEYS}/{key}/audit"
    assert read_two_pages(hub, audit, admin.headers, "detail") == [
        "",
        "'name 2' → 'name 3'",
        "'name 1' → 'name 2'",
        "'name 0' → 'name 1'",
        "display name 'name 0'",
    ]
    assert_limit_out_of_range_refused(hub, audit, admin.headers)
