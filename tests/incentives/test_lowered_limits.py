"""Lowering an incentive's limit below what is already committed: accepted (nobody is un-paid),
but REST, the UI and the CLI say what it means."""

from __future__ import annotations

import asyncio
import html
import re
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import Incentive
from qualflow.incentives.schemas import IncentivePatch, IncentiveSpec
from qualflow.incentives.service import RewardService
from qualflow.store.secrets import SecretBox
from tests.incentives.support import CLEAN_FRAUD_FIELDS, Db, Person
from tests.incentives.test_api import API, platform_key
from tests.incentives.test_pages import INCENTIVE_FIELDS, form, sign_in
from tests.incentives.test_rewards import request

MAX_BELOW = (
    "max rewards 2 is below the 3 rewards already committed: no new reward will be paid until "
    "fewer than 2 are committed or max rewards is above 3 (rewards already committed are not "
    "taken back)"
)
BUDGET_BELOW = (
    "budget 50.00 EUR is below the 75.00 EUR already committed: no new reward of 25.00 EUR will "
    "be paid until at most 25.00 EUR is committed or the budget is at least 100.00 EUR (rewards "
    "already committed are not taken back)"
)


def committed_manual(manager: IncentiveManager, service: RewardService, count: int) -> Incentive:
    """A manual 25 EUR incentive with ``count`` rewards committed (awaiting payment by hand)."""
    spec = IncentiveSpec(
        name="Diary study", provider="manual", amount=Decimal("25"), currency="EUR",
        approval_mode="automatic",
    )  # fmt: skip
    incentive = asyncio.run(manager.create(spec, actor="tests"))
    for n in range(count):
        submission = service.submit(request(incentive, f"p{n}@example.org"))
        assert submission.reward is not None
        assert submission.reward.counted
    return manager.get(incentive.reference_id)


def test_a_limit_lowered_below_the_committed_is_saved_with_a_warning(
    manager: IncentiveManager, service: RewardService
) -> None:
    incentive = committed_manual(manager, service, 3)
    assert (incentive.committed_count, incentive.committed_minor) == (3, 7500)

    saved, warnings = asyncio.run(
        manager.update_with_warnings(
            incentive.reference_id,
            IncentivePatch(max_rewards=2, budget=Decimal("50")),
            actor="tests",
        )
    )

    assert (saved.max_rewards, saved.budget_minor) == (2, 5000)
    assert warnings == [MAX_BELOW, BUDGET_BELOW]
    # Nothing committed was taken back; a new request is held for the limit.
    assert (saved.committed_count, saved.committed_minor) == (3, 7500)
    held = service.submit(request(saved, "late@example.org"))
    assert held.reward is not None
    assert held.reward.status == "held"


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (IncentivePatch(max_rewards=3), []),  # at the limit, not below it
        (IncentivePatch(max_rewards=4), []),
        (IncentivePatch(max_rewards=None), []),
        (IncentivePatch(budget=Decimal("75")), []),
        (IncentivePatch(budget=Decimal("74.99")), ["budget 74.99 EUR is below"]),
        (IncentivePatch(name="Renamed"), []),  # limits not changed: nothing to say
        (IncentivePatch(max_rewards=1), ["max rewards 1 is below the 3 rewards"]),
    ],
)
def test_only_a_limit_set_below_the_committed_warns(
    manager: IncentiveManager, service: RewardService, patch: IncentivePatch, expected: list[str]
) -> None:
    incentive = committed_manual(manager, service, 3)
    _saved, warnings = asyncio.run(
        manager.update_with_warnings(incentive.reference_id, patch, actor="tests")
    )
    assert len(warnings) == len(expected), warnings
    for warning, start in zip(warnings, expected, strict=True):
        assert warning.startswith(start), warning


def test_rest_answers_the_warnings_with_the_incentive(hub: TestClient, admin: Person) -> None:
    incentive = rest_manual_with_committed(hub, admin, 3)
    url = f"{API}/{incentive}"

    lowered = hub.patch(url, json={"max_rewards": 2, "budget": "50"}, headers=admin.headers)

    assert lowered.status_code == 200, lowered.text
    body = lowered.json()
    assert (body["max_rewards"], body["budget"], body["committed_rewards"]) == (2, "50.00", 3)
    assert body["warnings"] == [MAX_BELOW, BUDGET_BELOW]
    renamed = hub.patch(url, json={"name": "Renamed"}, headers=admin.headers)
    assert renamed.json()["warnings"] == []
    documented = hub.app.openapi()["components"]["schemas"]
    updated = documented[
        hub.app.openapi()["paths"]["/api/v1/incentives/{reference_id}"]["patch"]["responses"][
            "200"
        ]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    ]
    assert "warnings" in updated["properties"]


def test_the_edit_form_saves_and_flashes_the_warnings(hub: TestClient, admin: Person) -> None:
    incentive = rest_manual_with_committed(hub, admin, 3)
    token = sign_in(hub, admin)
    fields = {
        **INCENTIVE_FIELDS, "provider": "manual", "amount": "25", "currency": "EUR",
        "approval_mode": "automatic", "max_rewards": "2", "budget": "50",
    }  # fmt: skip

    saved = hub.post(f"/incentives/{incentive}/edit", data=form(token, **fields))

    assert saved.status_code == 200, saved.text
    shown = html.unescape(re.sub(r"\s+", " ", saved.text))
    assert "Incentive saved." in shown
    for warning in (MAX_BELOW, BUDGET_BELOW):  # as sentences
        assert warning[0].upper() + warning[1:] + "." in shown
    after = hub.get(f"{API}/{incentive}", headers=admin.headers).json()
    assert (after["max_rewards"], after["budget"]) == (2, "50.00")


def test_the_cli_saves_and_prints_the_warnings_on_stderr(
    db: Db, secret_box: SecretBox, tmp_path: Path, manager: IncentiveManager,
    service: RewardService,
) -> None:  # fmt: skip
    incentive = committed_manual(manager, service, 3)
    env = {
        "QUALFLOW_DATABASE_URL": db.url,
        "QUALFLOW_SECRET_KEYS": ",".join(secret_box.keys),
        "QUALFLOW_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(
        app,
        ["incentives", "update", incentive.reference_id, "--max-rewards", "2", "--budget", "50"],
        env=env,
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stdout.strip() == f"updated {incentive.reference_id}"
    assert result.stderr.strip().splitlines() == [
        f"warning: {MAX_BELOW}",
        f"warning: {BUDGET_BELOW}",
    ]
    assert manager.get(incentive.reference_id).max_rewards == 2

    quiet = CliRunner().invoke(
        app, ["incentives", "update", incentive.reference_id, "--name", "Renamed"], env=env
    )
    assert quiet.exit_code == 0
    assert quiet.stderr.strip() == ""


def rest_manual_with_committed(hub: TestClient, admin: Person, count: int) -> str:
    created = hub.post(
        API,
        json={"name": "Diary study", "provider": "manual", "amount": "25", "currency": "EUR",
              "approval_mode": "automatic"},
        headers=admin.headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    reference: str = created.json()["reference_id"]
    platform, key = platform_key(hub, admin)
    for n in range(count):
        asked = hub.post(
            f"{API}/{reference}/rewards",
            json={"email": f"p{n}@example.org", **CLEAN_FRAUD_FIELDS}, auth=(platform, key),
        )  # fmt: skip
        assert asked.status_code == 201, asked.text
        assert asked.json()["status"] == "ordered", asked.text  # to be paid by hand: committed
    assert hub.get(f"{API}/{reference}", headers=admin.headers).json()["committed_rewards"] == count
    return reference
