"""`qualflow sandbox serve --token T` seeds the built-in surveys for T's user: the sandbox shows a
user only its own and shared surveys, so seeding them for another user of the state file
printed a token that saw none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qualflow.sandbox.state import SandboxState
from tests.sandbox.test_sandbox_cli import _check_served

TOKEN = "T0kenForTheServedSandbox0123456789abcdef"


def test_serve_with_a_new_token_seeds_the_surveys_for_that_token(tmp_path: Path) -> None:
    path = tmp_path / "served.json"
    earlier = SandboxState(path=path)
    earlier.create_user("someone.else@example.com")
    earlier.save()
    with subprocess.Popen(
        [
            sys.executable, "-c", "from qualflow.cli import main; main()",
            "sandbox", "serve", "--port", "0", "--state-file", str(path), "--token", TOKEN,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:  # fmt: skip
        try:
            _check_served(proc)  # the printed token lists the 4 built-in surveys
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    state = SandboxState.load(path)
    owner = state.user_for_token(TOKEN)
    assert owner is not None
    assert {survey.owner_id for survey in state.surveys.values()} == {owner.id}
