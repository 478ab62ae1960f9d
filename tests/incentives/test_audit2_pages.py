"""Pages that act on many things at once account for each (a page shows five messages): the
pools page's CSV import for every rejected line, the review queue for every refused reward; and
a CSV the API would refuse as too large is refused on the page too."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from tests.incentives.support import CLEAN_FRAUD_FIELDS, Person
from tests.incentives.test_api import API, gift_incentive, platform_key
from tests.incentives.test_pages import form, sign_in

POOLS = "/api/v1/incentives/providers/gift-code-pools"


def _import(hub: TestClient, admin: Person, content: bytes) -> list[str]:
    """The messages the pools page shows after importing ``content`` into a new pool."""
    token = sign_in(hub, admin)
    pool = hub.post(POOLS, json={"name": f"pool {len(content)}"}, headers=admin.headers).json()
    page = hub.post(
        f"/incentives/providers/pools/{pool['id']}/codes",
        data=form(token),
        files={"file": ("codes.csv", content, "text/csv")},
    )
    assert page.status_code == 200, page.text[:300]
    return [
        html.unescape(m)
        for m in re.findall(r"((?:Imported|Rejected|The |\d+ more)[^<]*)", page.text)
    ]


def test_rejected_lines_beyond_those_shown_are_counted(hub: TestClient, admin: Person) -> None:
    bad = "".join(f"BAD-{n},ten,USD,\n" for n in range(10))
    shown = _import(hub, admin, f"code,value,currency,expiry\n{bad}GOOD-1,10,USD,\n".encode())

    assert "Imported 1 code(s); 0 duplicate(s) skipped." in shown
    assert [line for line in shown if line.startswith("Rejected")] == [
        "Rejected line 2: 'ten' is not an amount",
        "Rejected line 3: 'ten' is not an amount",
        "Rejected line 4: 'ten' is not an amount",
    ]
    assert (
        "7 more line(s) rejected: import the file with the API or "
        "'qualflow incentives pools import' to list every reason." in shown
    )


def test_a_file_larger_than_the_api_takes_is_refused_with_its_limit(
    hub: TestClient, admin: Person
) -> None:
    huge = b"code,value,currency,expiry\n" + b"X" * (20 * 1024 * 1024) + b",10,USD,\n"

    shown = _import(hub, admin, huge)

    assert "The CSV is larger than 20 MB; split it." in shown
    codes = hub.get(POOLS, headers=admin.headers).json()["items"][0]["stock"]
    assert codes == []


def test_four_rejected_lines_are_all_shown(hub: TestClient, admin: Person) -> None:
    bad = "".join(f"BAD-{n},ten,USD,\n" for n in range(4))
    shown = _import(hub, admin, f"code,value,currency,expiry\n{bad}".encode())

    assert shown == ["Imported 0 code(s); 0 duplicate(s) skipped."] + [
        f"Rejected line {n}: 'ten' is not an amount" for n in range(2, 6)
    ]


def test_the_api_refuses_the_same_files_with_413(hub: TestClient, admin: Person) -> None:
    pool = hub.post(POOLS, json={"name": "API limit"}, headers=admin.headers).json()
    answer = hub.post(
        f"{POOLS}/{pool['id']}/codes",
        content=b"code,value,currency\n" + b"X" * (20 * 1024 * 1024),
        headers={**admin.headers, "Content-Type": "text/csv"},
    )

    assert answer.status_code == 413
    assert answer.json()["error"]["message"] == "the CSV is larger than 20 MB; split it"


def test_the_review_queue_names_every_reward_it_refused(hub: TestClient, admin: Person) -> None:
    incentive = gift_incentive(hub, admin, stock=1, approval_mode="review_all")
    platform, key = platform_key(hub, admin)
    references = []
    for n in range(7):
        held = hub.post(
            f"{API}/{incentive['reference_id']}/rewards",
            json={"email": f"held{n}@example.org", **CLEAN_FRAUD_FIELDS},
            auth=(platform, key),
        )
        assert held.json()["status"] == "held", held.text
        references.append(held.json()["reference_id"])
    blocked = hub.post(
        f"{API}/rewards/bulk",
        json={"action": "block", "rewards": references[1:]},
        headers=admin.headers,
    )
    assert blocked.json()["succeeded"] == 6
    token = sign_in(hub, admin)

    page = hub.post(
        "/incentives/review-queue",
        data=form(token, action="block", reward=references, reason="bots"),
    )

    shown = [html.unescape(m) for m in re.findall(r"((?:Blocked|RW-|\d+ more)[^<]*)", page.text)]
    refusal = "a reward that is blocked cannot become blocked"
    assert f"Blocked 1 reward(s): {references[0]}." in shown
    assert [line for line in shown if line.endswith(refusal)] == [
        f"{reference}: {refusal}" for reference in references[1:4]
    ]
    assert f"3 more reward(s) refused: {', '.join(references[4:])}." in shown
