"""`qualflow sandbox serve|seed -f FILE` given a state file that is not one it wrote: one
``error:`` line, exit 1, and the file left exactly as it was (never started empty and then
overwritten)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from qualflow.cli import app

runner = CliRunner()

DEEP = '{"version":1,"extra":' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('{"version":1,"seq":1e400}', id="seq-infinite"),
        pytest.param('{"version":1,"faults":{"rateLimitPerMinute":-5}}', id="bad-rate-limit"),
        pytest.param(DEEP, id="deeply-nested"),
        pytest.param('{"version":1,"name":"my-package"}', id="other-json-with-a-version"),
        pytest.param(
            '{"version":1,"config":[],"users":[],"surveys":[],"responses":[]}',
            id="config-not-an-object",
        ),
        pytest.param(
            '{"version":1,"config":{},"users":[],"surveys":{},"responses":[]}',
            id="surveys-not-a-list",
        ),
    ],
)
@pytest.mark.parametrize("command", ["serve", "seed"])
def test_a_state_file_that_is_not_one_fails_and_is_kept(
    tmp_path: Path, content: str, command: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    args = ["sandbox", command, "-f", str(path)]
    if command == "serve":
        args += ["--port", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "not a sandbox state file" in lines[0]
    assert "Traceback" not in result.output
    assert path.read_text() == content
