"""What a failed export leaves on disk: nothing the caller was never told about."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from qualflow.qualtrics import ServerError
from qualflow.sandbox.faults import FaultRule
from tests.contract.contract_support import Api, Sandbox

FILE_PATH = "/API/v3/surveys/*/export-responses/*/file"


def test_failed_download_into_a_temporary_file_leaves_no_file(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without dest the client picks a temporary file; the caller never learns its name when
    # the download fails, so the client must remove it.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    sandbox.state.faults.add(FaultRule(path=FILE_PATH, status=500))
    with pytest.raises(ServerError):
        api(api.client.export_responses(survey_id))
    assert list(tmp_path.iterdir()) == []


def test_failed_download_to_a_given_path_leaves_no_file(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path
) -> None:
    sandbox.state.faults.add(FaultRule(path=FILE_PATH, status=500))
    dest = tmp_path / "responses.csv"
    with pytest.raises(ServerError):
        api(api.client.export_responses(survey_id, dest=dest))
    assert list(tmp_path.iterdir()) == []


def test_a_successful_export_into_a_temporary_file_is_kept(
    api: Api, sandbox: Sandbox, survey_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    export = api(api.client.export_responses(survey_id))
    assert [path.name for path in tmp_path.iterdir()] == [export.file_path.name]
