"""``qualflow incentives``: tables, --json, and one-line errors with exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.incentives.service import RewardRequestIn, RewardService
from qualflow.store.secrets import SecretBox
from tests.incentives.support import Db


@pytest.fixture
def cli_env(db: Db, secret_box: SecretBox, tmp_path: Path) -> dict[str, str]:
    return {
        "QUALFLOW_DATABASE_URL": db.url,
        "QUALFLOW_SECRET_KEYS": ",".join(secret_box.keys),
        "QUALFLOW_DATA_DIR": str(tmp_path / "data"),
    }


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["incentives", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_pools_incentives_rewards_and_keys_from_the_command_line(
    cli_env: dict[str, str], db: Db, tmp_path: Path
) -> None:
    code, out, _ = run(cli_env, "pools", "create", "Thank-you cards")
    assert code == 0
    pool_id = out.strip()
    csv_file = tmp_path / "codes.csv"
    csv_file.write_text(
        "code,value,currency,expiry\nAAA-1111,10,USD,\nBBB-2222,10,USD,\nCCC,x,USD,\n"
    )
    code, out, err = run(cli_env, "pools", "import", pool_id, str(csv_file))
    assert code == 0
    assert out.strip() == "imported 2, skipped 0 duplicate(s)"
    assert "rejected line 4: 'x' is not an amount" in err

    code, out, _ = run(
        cli_env, "create", "--name", "Card sort", "--provider", "gift_codes", "--pool", pool_id,
        "--amount", "10", "--currency", "USD", "--approval-mode", "review_all",
        "--alert-email", "ops@example.org", "--alert-email", "Finance@example.org",
    )  # fmt: skip
    assert code == 0, out
    reference = out.strip()
    assert reference.startswith("INC-")
    code, out, _ = run(cli_env, "ls", "--json")
    assert [i["reference_id"] for i in json.loads(out)] == [reference]
    code, out, _ = run(cli_env, "show", reference)
    assert code == 0
    shown = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in out.splitlines()}
    assert shown["Reference id"] == reference
    assert shown["Approval mode"] == "review_all"
    assert shown["Alert emails"] == "ops@example.org, finance@example.org"
    assert shown["Counts"] == "total 0 · held 0 · sent 0 · awaiting 0"
    assert "Tango account id" not in shown  # unset fields are left out
    code, out, _ = run(cli_env, "review", reference)
    assert code == 0
    assert "limits: 0 rewards committed (no limit) · 0.00 USD (no budget limit)" in out
    code, out, err = run(
        cli_env, "update", reference, "--max-rewards", "50", "--paused",
        "--managers-get-alerts",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == f"updated {reference}"
    code, out, _ = run(cli_env, "show", reference, "--json")
    changed = json.loads(out)
    assert (changed["max_rewards"], changed["active"], changed["alert_emails"]) == (50, False, [])
    assert changed["approval_mode"] == "review_all"  # what was not given stays
    code, _, _ = run(cli_env, "update", reference, "--active", "--alert-email", "ops@example.org")
    assert code == 0
    code, _, err = run(cli_env, "update", reference)
    assert (code, err.strip()) == (
        2,
        "error: nothing to change: give --file PATCH.json or an option (see --help)",
    )
    code, _, err = run(cli_env, "update", reference, "--max-rewards", "0")
    assert (code, err.strip()) == (1, "error: max_rewards: Input should be greater than 0")
    code, out, err = run(cli_env, "pools", "ls")
    assert code == 0
    assert err.strip() == (
        f"warning: Card sort ({reference}) has 2 unused 10.00 USD code(s) left in pool "
        "“Thank-you cards” (warning below 10)"
    )

    service = RewardService(db.sessionmaker)
    held = service.submit(
        RewardRequestIn(
            incentive_reference=reference, email="r@example.org", source="manual",
            requested_by="tests", request_key="k",
        )
    )  # fmt: skip
    assert held.reward is not None
    code, out, _ = run(cli_env, "rewards", "ls", "--status", "held", "--json")
    assert [r["reference_id"] for r in json.loads(out)] == [held.reward.reference_id]
    code, out, _ = run(cli_env, "rewards", "block", held.reward.reference_id, "--reason", "bot")
    assert code == 0
    assert "ok (blocked)" in out
    code, out, _ = run(cli_env, "rewards", "release", held.reward.reference_id)
    assert code == 1
    assert "refused (blocked)" in out
    code, out, _ = run(cli_env, "rewards", "show", held.reward.reference_id)
    assert "held → blocked by cli:" in out

    export = tmp_path / "rewards.csv"
    code, out, _ = run(cli_env, "rewards", "export", reference, "-o", str(export))
    assert out.strip() == f"wrote 1 reward(s) to {export}"
    assert "r@example.org" in export.read_text()

    code, out, _ = run(cli_env, "keys", "create", "--platform", "acme", "--name", "Workflow")
    key_id = out.strip()
    code, out, _ = run(cli_env, "keys", "reveal", key_id)
    assert out.startswith("acme:qfk_")
    code, _, err = run(cli_env, "keys", "deactivate", key_id)
    assert code == 1
    assert err.strip() == "error: deactivation cannot be undone; repeat with --yes"
    assert run(cli_env, "keys", "deactivate", key_id, "--yes")[0] == 0
    code, _, err = run(cli_env, "keys", "reveal", key_id)
    assert code == 1
    assert "is deactivated" in err


def test_bad_input_is_one_line_with_exit_code_1(cli_env: dict[str, str]) -> None:
    code, _, err = run(cli_env, "show", "INC-ZZZZZZ")
    assert code == 1
    assert err.strip() == "error: incentive INC-ZZZZZZ does not exist"
    code, _, err = run(cli_env, "create", "--name", "x", "--provider", "tango")
    assert code == 1
    assert "needs tango_account_id and utid" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(
        cli_env, "create", "--name", "x", "--provider", "manual", "--amount", "1",
        "--currency", "USD", "--alert-email", "finance team",
    )  # fmt: skip
    assert code == 1
    assert err.strip() == "error: alert_emails: 'finance team' is not an email address"
    code, _, err = run(cli_env, "rewards", "ls", "--status", "lost")
    assert code == 2  # a bad option value is a usage error
    assert "unknown status lost" in err


def test_tango_catalog_lists_what_an_incentive_may_name(cli_env: dict[str, str]) -> None:
    from qualflow.demo.servers import start_server
    from qualflow.sandbox import create_app
    from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT, DEFAULT_CUSTOMER, TangoState

    app = create_app()
    app.state.tango = TangoState.seeded()
    with start_server(app, name="tango-double") as server:
        add = [
            "tango", "add", "--name", "Sandbox", "--base-url", server.url,
            "--platform-name", app.state.tango.platform_name, "--customer-id", DEFAULT_CUSTOMER,
            "--account-id", DEFAULT_ACCOUNT,
        ]  # fmt: skip
        code, out, err = run({**cli_env, "TANGO_PLATFORM_KEY": app.state.tango.platform_key}, *add)
        assert code == 0, err
        account = out.strip()
        code, out, _ = run({**cli_env, "COLUMNS": "100"}, "tango", "catalog", account)
        assert code == 0
        row = next(line for line in out.splitlines() if "U442382" in line)
        assert "Coffee House $10 eGift" in row
        assert "10.00 USD" in row
        code, out, _ = run(cli_env, "tango", "catalog", account, "--json")
        ranged = next(item for item in json.loads(out) if item["utid"] == "U561593")
        assert ranged["value"] == "0.01-2000.00 USD"

        code, out, err = run({**cli_env, "TANGO_PLATFORM_KEY": "wrong"}, *add[:2], "--name", "Bad",
                             *add[4:])  # fmt: skip
        bad = out.strip()
        code, _, err = run(cli_env, "tango", "catalog", bad)
        assert code == 1
        assert err.startswith("error: Tango answered HTTP 401")
        # Rotating the key mends it.
        key_env = {**cli_env, "TANGO_PLATFORM_KEY": app.state.tango.platform_key}
        code, out, err = run(key_env, "tango", "update", bad, "--new-key", "--name", "Mended")
        assert code == 0, err
        assert out.strip() == f"updated Tango account {bad}"
        assert run(cli_env, "tango", "catalog", bad)[0] == 0
        code, _, err = run(cli_env, "tango", "update", bad)
        assert code == 2
        assert err.strip() == "error: nothing to change: give at least one option (see --help)"
        code, out, _ = run(cli_env, "tango", "rm", bad)
        assert out.strip() == f"deleted Tango account {bad}"
        code, _, err = run(cli_env, "tango", "rm", bad)
        assert code == 1
        assert err.strip() == f"error: Tango account {bad} does not exist"
        code, _, err = run(cli_env, "create", "--name", "Coffee", "--provider", "tango",
                           "--tango-account", account, "--utid", "U442382")  # fmt: skip
        assert code == 0, err
        code, _, err = run(cli_env, "tango", "rm", account)
        assert code == 1
        assert err.strip() == "error: 1 incentive(s) use the Tango account 'Sandbox'"
    code, _, err = run(cli_env, "tango", "catalog", "999")
    assert code == 1
    assert err.strip() == "error: Tango account 999 does not exist"
