"""REST: incentives, the review queue, providers, platform API keys and the platform endpoint."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi.testclient import TestClient

from qualflow.incentives.emails import NO_EMAIL_MESSAGE
from qualflow.incentives.models import Reward
from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT, DEFAULT_CUSTOMER
from tests.engine.engine_support import SmtpSink
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Person, Tango, body_text, parsed

API = "/api/v1/incentives"
CLEAN_FORM = urlencode(CLEAN_FRAUD_FIELDS).encode()
MakePerson = Callable[..., Person]


def codes(count: int) -> str:
    rows = "".join(f"CODE-{n:05d}-XYZ,10.00,USD,2099-01-01\n" for n in range(count))
    return "code,value,currency,expiry\n" + rows


def gift_incentive(
    hub: TestClient, admin: Person, *, stock: int = 5, **fields: Any
) -> dict[str, Any]:
    pool = hub.post(
        f"{API}/providers/gift-code-pools",
        json={"name": f"pool {time.monotonic_ns()}"},
        headers=admin.headers,
    )
    assert pool.status_code == 201, pool.text
    imported = hub.post(
        f"{API}/providers/gift-code-pools/{pool.json()['id']}/codes",
        content=codes(stock),
        headers={**admin.headers, "Content-Type": "text/csv"},
    )
    assert imported.json() == {"imported": stock, "duplicates": 0, "errors": []}
    body = {
        "name": "Usability study",
        "provider": "gift_codes",
        "gift_code_pool_id": pool.json()["id"],
        "amount": "10.00",
        "currency": "usd",
        "reward_name": "gift card",
        "approval_mode": "automatic",
        **fields,
    }
    created = hub.post(API, json=body, headers=admin.headers)
    assert created.status_code == 201, created.text
    return created.json()


def platform_key(hub: TestClient, admin: Person, platform: str = "acme") -> tuple[str, str]:
    created = hub.post(
        f"{API}/api-keys", json={"platform": platform, "display_name": "Workflow"},
        headers=admin.headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    revealed = hub.post(f"{API}/api-keys/{created.json()['id']}/reveal", headers=admin.headers)
    return revealed.json()["platform"], revealed.json()["key"]


def wait_for(predicate: Callable[[], bool], what: str = "a condition", limit: float = 90.0) -> None:
    # A safety net against hangs, not a timing assertion.
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_incentive_crud_and_permissions(
    hub: TestClient, admin: Person, make_person: MakePerson
) -> None:
    incentive = gift_incentive(hub, admin)
    reference = incentive["reference_id"]
    assert reference.startswith("INC-")
    assert incentive["currency"] == "USD"
    assert incentive["state"] == "open"

    viewer = make_person("viewer")
    assert hub.get(f"{API}/{reference.lower()}", headers=viewer.headers).status_code == 200
    listed = hub.get(API, headers=viewer.headers).json()["items"]
    assert [i["reference_id"] for i in listed] == [reference]
    denied = hub.patch(f"{API}/{reference}", json={"name": "x"}, headers=viewer.headers)
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == "requires Manage permission on incentives"
    assert hub.get(API).status_code == 401

    changed = hub.patch(
        f"{API}/{reference}", json={"max_rewards": 100, "active": False}, headers=admin.headers
    )
    assert changed.status_code == 200
    assert changed.json()["max_rewards"] == 100
    assert changed.json()["state"] == "paused"
    zero = hub.patch(f"{API}/{reference}", json={"max_rewards": 0}, headers=admin.headers)
    assert zero.status_code in (400, 422), zero.text
    assert zero.json()["error"]["message"] == "max_rewards: Input should be greater than 0"

    bad = hub.post(API, json={"name": "x", "provider": "tango"}, headers=admin.headers)
    assert bad.status_code == 422
    assert "needs tango_account_id and utid" in bad.json()["error"]["message"]
    missing_pool = hub.post(
        API,
        json={"name": "x", "provider": "gift_codes", "gift_code_pool_id": 999, "amount": 1,
              "currency": "USD"},
        headers=admin.headers,
    )  # fmt: skip
    assert missing_pool.status_code == 422
    assert missing_pool.json()["error"]["message"] == "gift-code pool 999 does not exist"
    assert hub.get(f"{API}/INC-ZZZZZZ", headers=admin.headers).status_code == 404

    assert hub.delete(f"{API}/{reference}", headers=admin.headers).status_code == 204
    assert hub.get(f"{API}/{reference}", headers=admin.headers).status_code == 404


def test_platform_api_keys_lifecycle(
    hub: TestClient, admin: Person, make_person: MakePerson
) -> None:
    manager, member = make_person("manager"), make_person("member")
    first = hub.post(
        f"{API}/api-keys", json={"platform": "Acme", "display_name": "Workflow A"},
        headers=admin.headers,
    )  # fmt: skip
    assert first.status_code == 201
    assert first.json()["platform"] == "acme"
    assert first.json()["status"] == "active"
    assert "••••" in first.json()["key"]
    hub.post(
        f"{API}/api-keys", json={"platform": "acme", "display_name": "B"}, headers=admin.headers
    )
    third = hub.post(
        f"{API}/api-keys", json={"platform": "acme", "display_name": "C"}, headers=admin.headers
    )
    assert third.status_code == 409
    assert "already has 2 active keys ('Workflow A', 'B')" in third.json()["error"]["message"]
    # Managers may view (reveal) keys but not create them; members may not even list them.
    denied = hub.post(
        f"{API}/api-keys", json={"platform": "acme", "display_name": "D"}, headers=manager.headers
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == "requires Manage permission on API keys"
    assert hub.get(f"{API}/api-keys", headers=member.headers).status_code == 403
    key_id = first.json()["id"]
    for person, action in ((manager, "deactivate"), (member, "reveal")):
        refused = hub.post(f"{API}/api-keys/{key_id}/{action}", headers=person.headers)
        assert refused.status_code == 403, (person.email, action)

    revealed = hub.post(f"{API}/api-keys/{key_id}/reveal", headers=manager.headers)
    assert revealed.status_code == 200
    assert revealed.headers["cache-control"] == "no-store"
    raw = revealed.json()["key"]
    assert raw.startswith("qfk_")
    listed = hub.get(f"{API}/api-keys", headers=manager.headers).json()["items"]
    assert all(raw not in str(item) for item in listed)
    renamed = hub.patch(
        f"{API}/api-keys/{key_id}", json={"display_name": "Qualtrics prod"}, headers=admin.headers
    )
    assert renamed.json()["display_name"] == "Qualtrics prod"
    assert renamed.json()["platform"] == "acme"
    audit = hub.get(f"{API}/api-keys/{key_id}/audit", headers=admin.headers).json()["items"]
    assert [a["action"] for a in audit] == ["renamed", "revealed", "created"]
    assert audit[1]["actor"] == manager.email

    incentive = gift_incentive(hub, admin)
    url = f"{API}/{incentive['reference_id']}/rewards"
    used = hub.post(url, json={"email": "u@example.org"}, auth=("acme", raw))
    assert used.status_code == 201
    assert hub.get(f"{API}/api-keys", headers=admin.headers).json()["items"][0]["last_used_at"]

    gone = hub.post(f"{API}/api-keys/{key_id}/deactivate", headers=admin.headers)
    assert (gone.json()["status"], gone.json()["platform"]) == ("deactivated", "acme")
    again = hub.post(f"{API}/api-keys/{key_id}/deactivate", headers=admin.headers)
    assert again.status_code == 409
    assert "cannot be undone" in again.json()["error"]["message"]
    refused = hub.post(url, json={"email": "v@example.org"}, auth=("acme", raw))
    assert refused.status_code == 401
    # Its slot is free again: a new key can be created.
    assert hub.post(
        f"{API}/api-keys", json={"platform": "acme", "display_name": "C"}, headers=admin.headers
    ).status_code == 201  # fmt: skip


def test_platform_endpoint_outcomes(hub: TestClient, admin: Person, smtp_sink: SmtpSink) -> None:
    incentive = gift_incentive(hub, admin)
    platform, key = platform_key(hub, admin)
    url = f"{API}/{incentive['reference_id']}/rewards"

    assert hub.post(url, json={"email": "a@example.org"}).status_code == 401
    assert (
        hub.post(url, json={"email": "a@example.org"}, auth=(platform, "qfk_nope")).status_code
        == 401
    )
    assert hub.post(url, json={"email": "a@example.org"}, auth=("other", key)).status_code == 401

    body = {
        "email": "Pat@Example.org", "firstName": "Pat", "responseId": "R_1", "surveyId": "SV_1",
        **CLEAN_FRAUD_FIELDS,
    }  # fmt: skip
    created = hub.post(url, json=body, auth=(platform, key))
    assert created.status_code == 201, created.text
    reward = created.json()
    assert reward["status"] == "sent"
    assert reward["reference_id"].startswith("RW-")
    assert len(smtp_sink.messages) == 1
    assert "Hi Pat," in body_text(smtp_sink.messages[0])

    replay = hub.post(url, json=body, auth=(platform, key))
    assert replay.status_code == 200
    assert replay.json()["reference_id"] == reward["reference_id"]
    duplicate = hub.post(
        url, json={"email": "pat@example.org", "responseId": "R_2"}, auth=(platform, key)
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["error"] == {
        "code": "already_rewarded",
        "message": f"already rewarded as {reward['reference_id']}",
    }
    anonymous = hub.post(url, json={"responseId": "R_3"}, auth=(platform, key))
    assert anonymous.status_code == 422
    assert anonymous.json()["error"]["message"] == NO_EMAIL_MESSAGE
    unknown = hub.post(
        f"{API}/INC-ZZZZZZ/rewards", json={"email": "z@example.org"}, auth=(platform, key)
    )
    assert unknown.status_code == 404
    typo = hub.post(url, json={"mail": "z@example.org"}, auth=(platform, key))
    assert typo.status_code == 422
    assert len(smtp_sink.messages) == 1

    detail = hub.get(f"{API}/rewards/{reward['reference_id']}", headers=admin.headers).json()
    assert detail["source"] == "api"
    assert detail["requested_by"] == "API key 'Workflow' of platform acme"
    assert [t["to_status"] for t in detail["transitions"]] == [
        "pending",
        "approved",
        "ordered",
        "sent",
    ]
    assert "CODE-" not in str(detail)  # the code is never returned


def test_platform_endpoint_takes_every_shape_a_qualtrics_web_service_task_sends(
    hub: TestClient, admin: Person, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(hub, admin)
    platform, key = platform_key(hub, admin)
    url = f"{API}/{incentive['reference_id']}/rewards"

    # URL-encoded body.
    form = hub.post(
        url, content=b"email=form%40example.org&firstName=Flo&responseId=R_f&" + CLEAN_FORM,
        auth=(platform, key),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert form.status_code == 201, form.text
    # Query parameters and no body (the task's way to send URL-encoded parameters); piped text
    # that resolved to nothing is an empty value, the same as none.
    query = hub.post(
        url, params={"email": "query@example.org", "firstName": "", "responseId": "R_q",
                     **CLEAN_FRAUD_FIELDS},
        auth=(platform, key),
    )  # fmt: skip
    assert query.status_code == 201, query.text
    # JSON sent as "Plain Text".
    plain = hub.post(
        url, content=json.dumps({"email": "plain@example.org", "responseId": "R_p",
                                 **CLEAN_FRAUD_FIELDS}).encode(), auth=(platform, key),
        headers={"Content-Type": "text/plain"},
    )  # fmt: skip
    assert plain.status_code == 201, plain.text
    # The body's fields win over the query's.
    both = hub.post(
        url, params={"email": "ignored@example.org", **CLEAN_FRAUD_FIELDS},
        json={"email": "body@example.org"},
        auth=(platform, key),
    )  # fmt: skip
    assert both.status_code == 201, both.text
    rewards = hub.get(f"{API}/{incentive['reference_id']}/rewards", headers=admin.headers).json()[
        "items"
    ]
    assert {r["email"] for r in rewards} == {
        "form@example.org", "query@example.org", "plain@example.org", "body@example.org",
    }  # fmt: skip
    greetings = sorted(body_text(m).splitlines()[0] for m in smtp_sink.messages)
    assert greetings == ["Hi Flo,", "Hi there,", "Hi there,", "Hi there,"]

    xml = hub.post(
        url, content=b"<reward><email>x@example.org</email></reward>", auth=(platform, key),
        headers={"Content-Type": "application/xml"},
    )  # fmt: skip
    assert xml.status_code == 415
    assert "not as application/xml" in xml.json()["error"]["message"]
    broken = hub.post(
        url, content=b'{"email": ', auth=(platform, key),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert broken.status_code == 422
    assert broken.json()["error"]["message"].startswith(
        "invalid request: the body is not valid JSON"
    )
    typo = hub.post(
        url, content=b"mail=z%40example.org", auth=(platform, key),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert typo.status_code == 422
    assert "mail: Extra inputs are not permitted" in typo.json()["error"]["message"]
    huge = hub.post(
        url, content=b"email=" + b"a" * 70_000, auth=(platform, key),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert huge.status_code == 413
    assert len(smtp_sink.messages) == 4
    operation = hub.get("/openapi.json").json()["paths"][
        url.replace(incentive["reference_id"], "{reference_id}")
    ]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "application/json", "application/x-www-form-urlencoded",
    }  # fmt: skip


def test_review_queue_release_block_and_bulk(
    hub: TestClient, admin: Person, make_person: MakePerson, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(hub, admin, approval_mode="review_all")
    platform, key = platform_key(hub, admin)
    url = f"{API}/{incentive['reference_id']}/rewards"
    references = []
    for n in range(4):
        answer = hub.post(
            url, json={"email": f"q{n}@example.org", **CLEAN_FRAUD_FIELDS}, auth=(platform, key)
        )
        assert answer.json()["status"] == "held"
        assert answer.json()["message"].startswith("held for review: this incentive reviews")
        references.append(answer.json()["reference_id"])

    queue = hub.get(f"{API}/rewards", params={"status": "held"}, headers=admin.headers).json()
    assert queue["total"] == 4
    viewer = make_person("viewer")
    forbidden = hub.post(f"{API}/rewards/{references[0]}/release", headers=viewer.headers)
    assert forbidden.status_code == 403

    released = hub.post(
        f"{API}/rewards/{references[0]}/release", json={"reason": "checked by hand"},
        headers=admin.headers,
    )  # fmt: skip
    assert released.status_code == 200
    blocked = hub.post(
        f"{API}/rewards/{references[1]}/block", json={"reason": "bot"}, headers=admin.headers
    )
    assert blocked.json()["status"] == "blocked"
    assert blocked.json()["transitions"][-1]["reason"] == f"blocked by {admin.email}: bot"
    conflict = hub.post(f"{API}/rewards/{references[1]}/release", headers=admin.headers)
    assert conflict.status_code == 409

    bulk = hub.post(
        f"{API}/rewards/bulk",
        json={"action": "release", "rewards": [*references[2:], references[1], "RW-22222222"]},
        headers=admin.headers,
    )
    assert bulk.json()["succeeded"] == 2
    assert bulk.json()["failed"] == 2
    wait_for(lambda: len(smtp_sink.messages) == 3, "three reward emails")
    sent = hub.get(f"{API}/rewards", params={"status": "sent"}, headers=admin.headers).json()
    assert {r["reference_id"] for r in sent["items"]} == {references[0], *references[2:]}

    resent = hub.post(
        f"{API}/rewards/{references[0]}/resend", json={"email": "fixed@example.org"},
        headers=admin.headers,
    )  # fmt: skip
    assert resent.status_code == 200
    assert resent.json()["resend_count"] == 1
    assert smtp_sink.messages[-1]["to"] == ["fixed@example.org"]
    not_paid = hub.post(f"{API}/rewards/{references[1]}/resend", headers=admin.headers)
    assert not_paid.status_code == 409


def test_manual_rewards_export_and_mark_paid(
    hub: TestClient, admin: Person, smtp_sink: SmtpSink
) -> None:
    created = hub.post(
        API,
        json={"name": "Diary study", "provider": "manual", "amount": "25", "currency": "EUR",
              "approval_mode": "automatic", "reward_name": "bank transfer"},
        headers=admin.headers,
    )  # fmt: skip
    reference = created.json()["reference_id"]
    platform, key = platform_key(hub, admin)
    answer = hub.post(
        f"{API}/{reference}/rewards",
        json={"email": "d@example.org", **CLEAN_FRAUD_FIELDS},
        auth=(platform, key),
    )
    assert answer.json()["status"] == "ordered"
    assert answer.json()["message"] == "ordered: to be paid by hand, then emailed"
    exported = hub.get(
        f"{API}/{reference}/rewards.csv", params={"status": "ordered"}, headers=admin.headers
    )
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.strip().splitlines()
    assert lines[0].startswith("reward,status,email")
    assert "d@example.org,,25.00,EUR" in lines[1]
    # A respondent's first name that a spreadsheet would run as a formula is exported as text.
    formula = hub.post(
        f"{API}/{reference}/rewards",
        json={
            "email": "e@example.org",
            "firstName": '=HYPERLINK("http://x.test","win")',
            **CLEAN_FRAUD_FIELDS,
        },
        auth=(platform, key),
    )
    assert formula.json()["status"] == "ordered"
    rows = list(csv.reader(io.StringIO(hub.get(
        f"{API}/{reference}/rewards.csv", params={"status": "ordered"}, headers=admin.headers
    ).text)))  # fmt: skip
    assert rows[2][2:4] == ["e@example.org", '\'=HYPERLINK("http://x.test","win")']
    paid = hub.post(
        f"{API}/rewards/{answer.json()['reference_id']}/mark-paid", headers=admin.headers
    )
    assert paid.json()["status"] == "sent"
    assert paid.json()["paid_at"]
    assert "25.00 EUR bank transfer" in body_text(smtp_sink.messages[0])


def test_the_platform_answer_says_what_a_reward_waits_for() -> None:
    from qualflow.incentives.lifecycle import describe

    def reward(**fields: object) -> Reward:
        base = {
            "status": "ordered", "provider": "gift_codes", "amount_minor": 1000,
            "currency": "USD", "email": "a@example.org", "reasons": [], "last_error": None,
        }  # fmt: skip
        return Reward(**{**base, **fields})

    no_smtp = "email is not configured (set QUALFLOW_SMTP_HOST)"
    assert describe(reward(last_error=no_smtp)) == (f"ordered, not emailed yet: {no_smtp}")
    assert describe(reward(status="approved", last_error="Tango answered 503")) == (
        "approved, not paid yet: Tango answered 503"
    )
    assert describe(reward(status="failed", last_error="bad utid")) == "failed: bad utid"
    assert describe(reward(status="held", reasons=["a", "b"])) == ("held for review: a; b")
    assert describe(reward(status="sent")) == "sent: 10.00 USD to a@example.org"
    assert describe(reward()) == "ordered"


def create_tango_account(hub: TestClient, admin: Person, tango: Tango) -> httpx.Response:
    return hub.post(
        f"{API}/providers/tango-accounts",
        json={"name": "Sandbox", "base_url": "http://tango",
              "platform_name": tango.state.platform_name,
              "platform_key": tango.state.platform_key, "customer_id": DEFAULT_CUSTOMER,
              "account_id": DEFAULT_ACCOUNT},
        headers=admin.headers,
    )  # fmt: skip


def test_tango_accounts_never_return_the_key(hub: TestClient, admin: Person, tango: Tango) -> None:
    created = create_tango_account(hub, admin, tango)
    assert created.status_code == 201
    assert created.json()["platform_key"] == "••••" + tango.state.platform_key[-4:]
    incentive = hub.post(
        API,
        json={"name": "Tango", "provider": "tango", "tango_account_id": created.json()["id"],
              "utid": "U442382", "approval_mode": "automatic"},
        headers=admin.headers,
    )  # fmt: skip
    assert incentive.status_code == 201, incentive.text
    assert incentive.json()["amount"] == "10.00"
    in_use = hub.delete(
        f"{API}/providers/tango-accounts/{created.json()['id']}", headers=admin.headers
    )
    assert in_use.status_code == 409
    review = hub.get(f"{API}/{incentive.json()['reference_id']}/review", headers=admin.headers)
    assert review.status_code == 200
    provider = review.json()["provider"]
    assert provider["ok"] is True
    assert provider["balance"] == "1000.00"
    assert provider["key_status"] == "accepted"
    assert any("no automation rewards with this incentive" in w for w in review.json()["warnings"])
    assert tango.state.platform_key not in review.text


def test_a_tango_accounts_catalog_lists_utids_and_allowed_amounts(
    hub: TestClient, admin: Person, make_person: Callable[..., Person], tango: Tango
) -> None:
    account = create_tango_account(hub, admin, tango).json()["id"]
    viewer = make_person("viewer")  # choosing an item is reading: View is enough
    answer = hub.get(f"{API}/providers/tango-accounts/{account}/catalog", headers=viewer.headers)
    assert answer.status_code == 200, answer.text
    items = {item["utid"]: item for item in answer.json()}
    fixed, ranged = items["U442382"], items["U561593"]
    assert fixed["brand"] == "Coffee House"
    assert (fixed["value_type"], fixed["face_value"], fixed["value"]) == (
        "FIXED_VALUE", "10.00", "10.00 USD",
    )  # fmt: skip
    assert (ranged["min_value"], ranged["max_value"], ranged["value"]) == (
        "0.01", "2000.00", "0.01-2000.00 USD",
    )  # fmt: skip
    assert items["U157190"]["status"] == "inactive"

    unknown = hub.get(f"{API}/providers/tango-accounts/4242/catalog", headers=admin.headers)
    assert unknown.status_code == 404
    assert "Tango account 4242 does not exist" in unknown.text
    # A key Tango refuses: Tango's own words, as a 502 (the fault is upstream, not the request).
    wrong = hub.post(
        f"{API}/providers/tango-accounts",
        json={"name": "Wrong key", "base_url": "http://tango",
              "platform_name": tango.state.platform_name, "platform_key": "not-the-key",
              "customer_id": DEFAULT_CUSTOMER, "account_id": DEFAULT_ACCOUNT},
        headers=admin.headers,
    ).json()["id"]  # fmt: skip
    refused = hub.get(f"{API}/providers/tango-accounts/{wrong}/catalog", headers=admin.headers)
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"]["message"].startswith(
        "Tango answered HTTP 401: Invalid platform name or key."
    )


def test_incentives_running_out_of_codes_are_listed_emptiest_first(
    hub: TestClient, admin: Person, make_person: Callable[..., Person]
) -> None:
    low = gift_incentive(hub, admin, stock=3, name="Low", low_stock_threshold=5)
    gift_incentive(hub, admin, stock=6, name="Plenty", low_stock_threshold=5)
    paused = gift_incentive(hub, admin, stock=1, name="Paused", low_stock_threshold=5)
    hub.patch(f"{API}/{paused['reference_id']}", json={"active": False}, headers=admin.headers)
    empty = gift_incentive(hub, admin, stock=0, name="Empty")
    # Codes of another value do not count for a 10.00 USD incentive.
    other = gift_incentive(hub, admin, stock=0, name="Other value", low_stock_threshold=2)
    hub.post(
        f"{API}/providers/gift-code-pools/{other['gift_code_pool_id']}/codes",
        content="code,value,currency,expiry\nFIVE-1,5,USD,\nFIVE-2,5,USD,\n",
        headers={**admin.headers, "Content-Type": "text/csv"},
    )  # fmt: skip

    viewer = make_person("viewer")
    listed = hub.get(f"{API}/providers/low-stock", headers=viewer.headers)
    assert listed.status_code == 200, listed.text
    rows = [(r["incentive_name"], r["unused"], r["threshold"]) for r in listed.json()]
    assert rows == [("Empty", 0, 10), ("Other value", 0, 2), ("Low", 3, 5)]
    by_name = {r["incentive_name"]: r for r in listed.json()}
    assert by_name["Empty"]["message"].startswith(
        f"Empty ({empty['reference_id']}) is out of 10.00 USD codes in pool"
    )
    assert by_name["Low"]["message"] == (
        f"Low ({low['reference_id']}) has 3 unused 10.00 USD code(s) left in pool "
        f"“{by_name['Low']['pool_name']}” (warning below 5)"
    )


def test_limits_read_as_a_sentence() -> None:
    from datetime import UTC, datetime

    from qualflow.incentives.review import limits_summary

    limits = {
        "max_rewards": 100, "committed_rewards": 3, "budget": "500.00 USD",
        "committed_amount": "30.00 USD", "opens_at": None,
        "closes_at": datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
    }  # fmt: skip
    assert limits_summary(limits) == (
        "3 of 100 rewards committed · 30.00 USD of the 500.00 USD budget · "
        "closes 2026-12-31 23:00 UTC"
    )


def test_test_reward_pays_nobody(hub: TestClient, admin: Person, smtp_sink: SmtpSink) -> None:
    incentive = gift_incentive(hub, admin, stock=1)
    result = hub.post(
        f"{API}/{incentive['reference_id']}/test-reward",
        json={"values": {"QID9_TEXT": "x"}, "email": "t@example.org", "first_name": "Tess"},
        headers=admin.headers,
    )
    assert result.status_code == 200, result.text
    report = result.json()
    assert report["paid"] is False
    names = [s["name"] for s in report["steps"]]
    assert names == [
        "respondent email", "one reward per respondent", "fraud rules", "approval",
        "limits and dates", "provider (gift_codes)", "email template", "test email",
    ]  # fmt: skip
    assert report["steps"][3] == {
        "name": "approval", "ok": True,
        "detail": "nothing suspicious: it would be paid without review",
    }  # fmt: skip
    fraud = report["steps"][2]
    assert not fraud["ok"]
    assert "missing from the response" in fraud["detail"]
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0]["to"] == [admin.email]
    assert parsed(smtp_sink.messages[0])["Subject"].startswith("[TEST] Your reward")
    pools = hub.get(f"{API}/providers/gift-code-pools", headers=admin.headers).json()["items"]
    assert pools[0]["stock"][0]["unused"] == 1  # no code was claimed
    rewards = hub.get(f"{API}/rewards", headers=admin.headers).json()
    assert rewards["total"] == 0
    no_email = hub.post(
        f"{API}/{incentive['reference_id']}/test-reward", json={}, headers=admin.headers
    ).json()
    assert no_email["ok"] is False
    assert no_email["steps"][0]["detail"] == NO_EMAIL_MESSAGE


def test_test_reward_says_when_a_reviewer_would_have_to_release_it(
    hub: TestClient, admin: Person, smtp_sink: SmtpSink
) -> None:
    def approval(incentive: dict[str, Any], **body: Any) -> dict[str, Any]:
        result = hub.post(
            f"{API}/{incentive['reference_id']}/test-reward",
            json={"values": CLEAN_FRAUD_FIELDS, **body}, headers=admin.headers,
        )  # fmt: skip
        assert result.status_code == 200, result.text
        [step] = [s for s in result.json()["steps"] if s["name"] == "approval"]
        return dict(step)

    reviewed = gift_incentive(hub, admin, approval_mode="review_all")
    assert approval(reviewed, email="t@example.org") == {
        "name": "approval", "ok": False,
        "detail": "would be held: this incentive reviews every reward before paying it "
        "(release it from the review queue)",
    }  # fmt: skip
    # Many emails from one IP address: held when suspicious rewards are reviewed, a warning
    # when they are paid automatically.
    platform, key = platform_key(hub, admin)
    watched = gift_incentive(hub, admin, approval_mode="review_suspicious", stock=8)
    for n in range(4):
        hub.post(
            f"{API}/{watched['reference_id']}/rewards",
            json={"email": f"s{n}@example.org", "ipAddress": "198.51.100.7", **CLEAN_FRAUD_FIELDS},
            auth=(platform, key),
        )
    ip_values = {**CLEAN_FRAUD_FIELDS, "ipAddress": "198.51.100.7"}
    held = approval(watched, email="new@example.org", values=ip_values)
    assert held["ok"] is False
    assert held["detail"].startswith("would be held as suspicious: 5 different emails came from")
    automatic = gift_incentive(hub, admin, approval_mode="automatic")
    warned = approval(automatic, email="new@example.org", values=ip_values)
    assert warned["ok"] is True
    assert warned["detail"].startswith("paid automatically, with a warning: 5 different emails")


def test_tango_account_edits_include_tangos_own_account_id(
    hub: TestClient, admin: Person, tango: Tango
) -> None:
    created = create_tango_account(hub, admin, tango)
    url = f"{API}/providers/tango-accounts/{created.json()['id']}"
    changed = hub.patch(
        url, json={"account_id": "A-OTHER", "name": "Renamed"}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["account_id"] == "a-other"  # Tango's identifiers are lower case
    assert changed.json()["name"] == "Renamed"
    assert changed.json()["platform_key"] == "••••" + tango.state.platform_key[-4:]


def test_out_of_range_ids_are_a_clear_4xx(hub: TestClient, admin: Person) -> None:
    for method, path in [
        ("PATCH", "providers/tango-accounts/99999999999999999999"),
        ("GET", "providers/gift-code-pools/99999999999999999999"),
        ("DELETE", "providers/gift-code-pools/0"),
        ("GET", "api-keys/99999999999999999999/audit"),
    ]:
        answer = hub.request(method, f"{API}/{path}", json={}, headers=admin.headers)
        assert answer.status_code == 422, (method, path, answer.text)


def test_platform_requests_meet_the_same_fraud_rules(
    hub: TestClient, admin: Person, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(hub, admin, approval_mode="review_suspicious")
    platform, key = platform_key(hub, admin)
    url = f"{API}/{incentive['reference_id']}/rewards"

    bare = hub.post(url, json={"email": "bare@example.org"}, auth=(platform, key))
    assert bare.status_code == 201, bare.text
    assert bare.json()["status"] == "held"
    [missing] = bare.json()["reasons"]
    assert missing.startswith(
        "fraud-detection field(s) missing from the request: Q_RecaptchaScore, "
        "Q_RelevantIDDuplicate, Q_RelevantIDFraudScore (send them with the request, e.g. "
        "Q_RecaptchaScore=${e://Field/Q_RecaptchaScore}"
    )
    # Piped as a form, as a Web Service task sends them: a bot and a duplicate.
    bot = hub.post(
        url,
        content=b"email=bot%40example.org&Q_RecaptchaScore=0.1&Q_RelevantIDDuplicate=true"
        b"&Q_RelevantIDFraudScore=0",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(platform, key),
    )
    assert bot.json()["status"] == "held"
    assert bot.json()["reasons"] == [
        "Q_RecaptchaScore 0.1 is below 0.5 (likely a bot)",
        "Q_RelevantIDDuplicate is true (RelevantID saw this respondent before)",
    ]
    clean = hub.post(
        url, json={"email": "ok@example.org", "Q_RecaptchaScore": 0.9,
                   "Q_RelevantIDDuplicateScore": 0, "Q_RelevantIDFraudScore": 0},
        auth=(platform, key),
    )  # fmt: skip
    assert clean.json()["status"] == "sent", clean.text
    # Many emails from one IP address are suspicious, as for survey responses.
    statuses = [
        hub.post(
            url,
            json={"email": f"ip{n}@example.org", "ipAddress": "203.0.113.9", **CLEAN_FRAUD_FIELDS},
            auth=(platform, key),
        ).json()
        for n in range(5)
    ]
    assert statuses[0]["status"] == "sent"
    assert statuses[-1]["status"] == "held"
    assert any("203.0.113.9" in reason for reason in statuses[-1]["reasons"])
    refused = hub.post(
        url, json={"email": "x@example.org", "ipAddress": "not-an-ip"}, auth=(platform, key)
    )
    assert refused.status_code == 422
    assert "ipAddress" in refused.json()["error"]["message"]
    assert "not an IPv4 or IPv6 address" in refused.json()["error"]["message"]

    # With the rule switched off, a request without the fields is paid.
    relaxed = gift_incentive(
        hub, admin, fraud_rules={"hold_when_fields_missing": False}, name="Relaxed"
    )
    paid = hub.post(
        f"{API}/{relaxed['reference_id']}/rewards", json={"email": "r@example.org"},
        auth=(platform, key),
    )  # fmt: skip
    assert paid.json()["status"] == "sent", paid.text


def test_a_request_refused_for_want_of_an_email_goes_through_once_it_has_one(
    hub: TestClient, admin: Person, smtp_sink: SmtpSink
) -> None:
    incentive = gift_incentive(hub, admin)
    platform, key = platform_key(hub, admin)
    url = f"{API}/{incentive['reference_id']}/rewards"
    anonymous = hub.post(url, json={"responseId": "R_9"}, auth=(platform, key))
    assert anonymous.status_code == 422
    corrected = {"responseId": "R_9", "email": "sam@example.org", **CLEAN_FRAUD_FIELDS}
    created = hub.post(url, json=corrected, auth=(platform, key))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "sent"
    again = hub.post(url, json=corrected, auth=(platform, key))
    assert (again.status_code, again.json()["reference_id"]) == (
        200, created.json()["reference_id"],
    )  # fmt: skip
    # The same request (its response id) retried without its email: answered with its reward.
    lost = hub.post(url, json={"responseId": "R_9"}, auth=(platform, key))
    assert (lost.status_code, lost.json()["reference_id"]) == (
        200, created.json()["reference_id"],
    )  # fmt: skip
