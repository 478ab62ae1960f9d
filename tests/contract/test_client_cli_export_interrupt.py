"""Ctrl-C after an incremental export's job completed: the file is untouched, and the user is
told how to get those responses again (the token the job issued would skip them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qualflow.qualtrics.export_result import ExportResult
from qualflow.sandbox.respondents import Simulator
from tests.contract.contract_support import Sandbox
from tests.contract.contract_support import run_cli as _run


def test_ctrl_c_while_converting_says_how_to_get_the_responses_again(
    env: dict[str, str],
    sandbox: Sandbox,
    survey_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Simulator(sandbox.state, survey_id, seed=1).run(2)

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(ExportResult, "write", interrupted)
    target = tmp_path / "x.csv"
    result = _run(["q", "export", survey_id, "-o", str(target), "--incremental"], env)

    assert result.exit_code == 130
    said = " ".join(result.stderr.split())
    assert f"error: export interrupted; {target} is unchanged" in said
    assert "the export completed but was not saved: run it again with the same options" in said
    [token] = list(sandbox.state.continuations)
    assert f"(continuation token {token}, issued for after it, skips them)" in said
    assert not target.exists()
