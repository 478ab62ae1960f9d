"""Incremental exports end to end against the sandbox, as a nightly sync runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from qualflow.qualtrics.errors import BadRequest, QualtricsError
from qualflow.qualtrics.export_file import ExportFile
from qualflow.qualtrics.resources.exports import ExportEvent
from qualflow.sandbox import seed
from qualflow.sandbox.errors import ApiError as SandboxApiError
from qualflow.sandbox.faults import FaultRule
from qualflow.sandbox.state import SandboxState
from tests.contract.contract_support import Api, Sandbox
from tests.contract.contract_support import run_cli as _run


def _respond(sandbox: Sandbox, survey_id: str, count: int) -> list[str]:
    return [
        sandbox.state.record_response(survey_id, {"QID1": 1 + i % 5, "finished": 1}).id
        for i in range(count)
    ]


def _export(api: Api, survey_id: str, dest: Path, **fields: Any) -> tuple[list[str], str | None]:
    result = api(api.client.export_responses(survey_id, dest=dest, **fields))
    return [row["ResponseId"] for row in result.iter_rows()], result.continuation_token


def test_each_token_gives_exactly_what_was_recorded_since(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    first = _respond(sandbox, survey_id, 3)
    during: list[str] = []

    def record_while_running(event: ExportEvent) -> None:
        if event.stage == "started":
            during.extend(_respond(sandbox, survey_id, 2))

    result = api(
        api.client.export_responses(
            survey_id, dest=tmp_path, allow_continuation=True, on_progress=record_while_running
        )
    )
    got = [row["ResponseId"] for row in result.iter_rows()]
    token = result.continuation_token
    assert token
    later = _respond(sandbox, survey_id, 1)
    # What the first export had not covered comes next: none twice, none missing.
    assert sorted(got + _export(api, survey_id, tmp_path, continuation_token=token)[0]) == sorted(
        first + during + later
    )
    second, next_token = _export(api, survey_id, tmp_path, continuation_token=token)
    assert set(second).isdisjoint(got)
    # A token can be used again (a re-run of a failed night) and gives the same responses.
    again, _ = _export(api, survey_id, tmp_path, continuation_token=token)
    assert again == second
    assert next_token
    assert _export(api, survey_id, tmp_path, continuation_token=next_token)[0] == []


def test_a_token_of_another_survey_or_garbage_is_a_bad_request(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    other = seed.customer_satisfaction(sandbox.state).id
    _respond(sandbox, other, 1)
    _, token = _export(api, other, tmp_path, allow_continuation=True)
    for wrong in (token, "not-a-token"):
        with pytest.raises(BadRequest, match="continuationToken"):
            _export(api, survey_id, tmp_path, continuation_token=wrong)


def test_a_download_that_fails_after_the_export_completed_keeps_its_token(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    _respond(sandbox, survey_id, 1)
    _, token = _export(api, survey_id, tmp_path, allow_continuation=True)
    newer = _respond(sandbox, survey_id, 2)
    rule = sandbox.state.faults.add(FaultRule(path="*/file", status=500))
    with pytest.raises(QualtricsError) as caught:
        _export(api, survey_id, tmp_path, continuation_token=token)
    issued = getattr(caught.value, "continuation_token", None)
    file_id = getattr(caught.value, "file_id", None)
    assert issued
    assert issued != token
    assert any(issued in note for note in getattr(caught.value, "__notes__", []))
    sandbox.state.faults.remove(rule.id)
    # The completed export's file can still be fetched, and its token resumes after it.
    target = tmp_path / "again.zip"
    api(api.client.exports.download(survey_id, file_id, target))
    fetched = ExportFile(target, format="csv", compressed=True)
    assert [row["ResponseId"] for row in fetched.iter_rows()] == newer
    assert _export(api, survey_id, tmp_path, continuation_token=issued)[0] == []


def test_cli_download_failure_still_prints_the_token(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    _respond(sandbox, survey_id, 1)
    first = _run(
        ["q", "export", survey_id, "-o", str(tmp_path / "a.csv"), "--incremental", "--json"], env
    )
    token = json.loads(first.stdout)["continuationToken"]
    _respond(sandbox, survey_id, 1)
    sandbox.state.faults.add(FaultRule(path="*/file", status=500))
    out = tmp_path / "b.csv"
    result = _run(["q", "export", survey_id, "-o", str(out), "--continuation-token", token], env)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert not out.exists()
    issued = [line for line in result.stderr.splitlines() if "continuation token" in line]
    assert issued, result.stderr
    assert token in issued[0]  # run again with the token given: nothing is skipped


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_cli_an_export_with_nothing_new_is_a_valid_empty_file(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path, fmt: str
) -> None:
    _respond(sandbox, survey_id, 2)
    full = tmp_path / f"full.{fmt}"
    first = _run(["q", "export", survey_id, "-o", str(full), "--incremental", "--json"], env)
    assert first.exit_code == 0, first.output
    token = json.loads(first.stdout)["continuationToken"]
    empty = tmp_path / f"empty.{fmt}"
    result = _run(
        ["q", "export", survey_id, "-o", str(empty), "--continuation-token", token, "--json"], env
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 0
    assert summary["continuationToken"]
    if fmt == "parquet":
        assert pq.read_schema(empty) == pq.read_schema(full)
        assert pq.read_table(empty).num_rows == 0
    elif fmt == "csv":
        assert empty.read_text().splitlines() == full.read_text().splitlines()[:1]
    else:
        assert empty.read_bytes() == b""


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2025-01-01", "2025-01-01"),
        ("2025-01-02", "2025-01-01"),
        ("2025-01-01T03:00+02:00", "2025-01-01T00:30"),
    ],
)
def test_cli_an_empty_or_reversed_window_is_a_usage_error(
    env: dict[str, str], survey_id: str, tmp_path: Path, start: str, end: str
) -> None:
    result = _run(
        [
            "q",
            "export",
            survey_id,
            "-o",
            str(tmp_path / "x.csv"),
            "--start-date",
            start,
            "--end-date",
            end,
        ],
        env,
    )
    assert result.exit_code == 2
    assert "start_date must be before end_date" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a full disk)")
def test_cli_write_failure_still_prints_the_token(
    env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    _respond(sandbox, survey_id, 1)
    first = _run(
        ["q", "export", survey_id, "-o", str(tmp_path / "a.csv"), "--incremental", "--json"], env
    )
    token = json.loads(first.stdout)["continuationToken"]
    _respond(sandbox, survey_id, 1)
    result = _run(
        ["q", "export", survey_id, "-f", "csv", "-o", "/dev/full", "--continuation-token", token],
        env,
    )
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.output
    issued = [line for line in result.stderr.splitlines() if "continuation token" in line]
    assert issued, result.stderr
    assert token in issued[0]


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_token_is_refused_not_a_full_export(
    api: Api, env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path, blank: str
) -> None:
    # A nightly job whose saved token came back empty must not append every response again.
    _respond(sandbox, survey_id, 2)
    with pytest.raises(BadRequest, match="continuationToken"):
        _export(api, survey_id, tmp_path, continuation_token=blank)
    out = tmp_path / "x.csv"
    result = _run(["q", "export", survey_id, "-o", str(out), "--continuation-token", blank], env)
    assert result.exit_code == 1
    assert "continuationToken" in result.stderr
    assert not out.exists()


def test_window_bounds_in_any_zone_are_instants(
    api: Api, env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    at = {
        hour: sandbox.state.record_response(
            survey_id, {"QID1": 1, "finished": 1, "recordedDate": f"2025-01-01T{hour:02d}:00:00Z"}
        ).id
        for hour in (0, 1, 2)
    }
    berlin = timezone(timedelta(hours=1))
    # Start inclusive, end exclusive; an offset is converted. The client refuses a naive
    # bound (which zone?); the CLI reads one as UTC, as its help says.
    got, _ = _export(
        api,
        survey_id,
        tmp_path,
        start_date=datetime(2025, 1, 1, 1, 0, tzinfo=berlin),
        end_date=datetime(2025, 1, 1, 2, 0, tzinfo=UTC),
    )
    assert got == [at[0], at[1]]
    with pytest.raises(ValueError, match="timezone"):
        _export(api, survey_id, tmp_path, start_date=datetime(2025, 1, 1))
    out = tmp_path / "w.csv"
    result = _run(
        [
            "q", "export", survey_id, "-o", str(out), "--json",
            "--start-date", "2025-01-01T02:00+01:00", "--end-date", "2025-01-01T02:00",
        ],
        env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 1
    assert at[1] in out.read_text()


def test_a_capped_chain_of_exports_gets_every_response_once(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    recorded = _respond(sandbox, survey_id, 5)
    got, token = _export(api, survey_id, tmp_path, allow_continuation=True, limit=2)
    seen = list(got)
    while got:
        got, token = _export(api, survey_id, tmp_path, continuation_token=token, limit=2)
        assert len(got) <= 2
        seen += got
    assert seen == recorded


def test_by_last_modified_a_changed_response_comes_again(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    old, untouched = _respond(sandbox, survey_id, 2)
    opts: dict[str, Any] = {"sort_by_last_modified_date": True}
    _, token = _export(api, survey_id, tmp_path, allow_continuation=True, **opts)
    sandbox.state.update_response_embedded(old, survey_id, {"channel": "web"})
    newer = _respond(sandbox, survey_id, 1)
    got, _ = _export(api, survey_id, tmp_path, continuation_token=token, **opts)
    assert sorted(got) == sorted([old, *newer])
    assert untouched not in got


def test_a_token_expires_after_a_week(
    api: Api, env: dict[str, str], sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    _respond(sandbox, survey_id, 1)
    _, token = _export(api, survey_id, tmp_path, allow_continuation=True)
    assert token
    continuation = sandbox.state.continuations[token]
    continuation.issued_at -= 6 * 24 * 3600  # six days old: still good
    assert _export(api, survey_id, tmp_path, continuation_token=token)[0] == []
    continuation.issued_at -= 2 * 24 * 3600  # eight days old: Qualtrics keeps a token for a week
    with pytest.raises(BadRequest, match="expired"):
        _export(api, survey_id, tmp_path, continuation_token=token)
    result = _run(
        ["q", "export", survey_id, "-o", str(tmp_path / "x.csv"), "--continuation-token", token],
        env,
    )
    assert result.exit_code == 1
    assert "expired" in result.stderr
    assert "Traceback" not in result.output


def test_a_saved_sandbox_keeps_when_its_tokens_were_issued(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    _respond(sandbox, survey_id, 1)
    _, token = _export(api, survey_id, tmp_path, allow_continuation=True)
    assert token
    sandbox.state.continuations[token].issued_at -= 8 * 24 * 3600
    path = tmp_path / "state.json"
    sandbox.state.save(path)
    loaded = SandboxState.load(path)
    assert loaded.continuations == sandbox.state.continuations
    with pytest.raises(SandboxApiError, match="expired"):
        loaded.start_export(survey_id, {"format": "csv", "continuationToken": token})
