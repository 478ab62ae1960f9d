"""The client tour of `qualflow demo`: a real sandbox on a loopback port, the real client."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from qualflow.cli import app


def test_demo_tour_exports_seeded_responses_to_parquet(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--tour", "--data-dir", str(tmp_path), "--responses", "12"]
    )

    assert result.exit_code == 0, result.output
    assert "Customer Satisfaction & NPS" in result.output
    exported = list((tmp_path / "demo").glob("SV_*.parquet"))
    assert len(exported) == 1
    table = pq.read_table(exported[0])
    assert table.num_rows == 12
    assert "ResponseId" in table.column_names
    assert str(table.schema.field("RecordedDate").type).startswith("timestamp")
    assert len(set(table.column("ResponseId").to_pylist())) == 12
    assert "Tour complete" in result.output


def test_demo_rejects_a_negative_response_count(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--tour", "--data-dir", str(tmp_path), "--responses", "-1"]
    )

    assert result.exit_code != 0
    assert not (tmp_path / "demo").exists()
