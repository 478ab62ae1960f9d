"""A failed or abandoned read must leave the process healthy.

pyarrow readers fed a Python stream keep read-ahead threads that call back into Python; after
a parse error those threads outlive the reader and the interpreter hangs or aborts at exit.
ExportFile parses in-memory chunks instead. These tests run the scenario in a fresh interpreter
and require it to exit normally.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.qualtrics.test_export_file_writer import (
    METADATA,
    csv_bytes,
    ndjson_bytes,
    response,
    save,
)

SCRIPT = textwrap.dedent(
    """
    import sys
    from qualflow.qualtrics.export_file import ExportFile, ExportFileError

    path, fmt, mode = sys.argv[1:]
    export = ExportFile(path, format=fmt, compressed=True)
    if mode == "abandon":
        batches = export.iter_batches(batch_size=100)
        next(batches)
        batches.close()
        print("abandoned")
    else:
        try:
            export.write(path + ".parquet")
        except ExportFileError as exc:
            print("caught", exc.row)
    """
)


def _csv_export(tmp_path: Path, *, broken: bool) -> Path:
    rows = [
        [f"2024-01-01 10:{i % 60:02d}:00", "2024-01-01 11:00:00", "0", "10.0.0.1", "100", "60",
         "1", "2024-01-01 11:00:00", f"R_{i:015d}", "1.5", "2.5", "anonymous", "EN"]
        for i in range(40_000)
    ]  # fmt: skip
    data = csv_bytes(METADATA, rows)
    if broken:
        middle = data.index(b"R_000000000020000")
        data = data[:middle] + b'"unterminated' + data[middle:]
    return save(tmp_path / "big.zip", data, compressed=True)


def _ndjson_export(tmp_path: Path, *, broken: bool) -> Path:
    responses = [response(f"R_{i}", {"QID1": i % 5, "note": "x" * 80}) for i in range(40_000)]
    data = ndjson_bytes(responses)
    if broken:
        middle = data.index(b'"R_20000"')
        data = data[:middle] + b"{{{" + data[middle:]
    return save(tmp_path / "big.zip", data, compressed=True, member="Survey.json")


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
@pytest.mark.parametrize("mode", ["error", "abandon"])
def test_process_exits_cleanly_after_a_failed_or_abandoned_read(
    tmp_path: Path, fmt: str, mode: str
) -> None:
    make = _csv_export if fmt == "csv" else _ndjson_export
    path = make(tmp_path, broken=mode == "error")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), fmt, mode],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    expected = "abandoned" if mode == "abandon" else "caught"
    assert done.stdout.startswith(expected), (done.stdout, done.stderr[-2000:])
    assert "Fatal Python error" not in done.stderr
