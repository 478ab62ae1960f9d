"""`qualflow sandbox seed --token T` (offline and against a running sandbox) adds surveys owned
by T's user: the sandbox shows a user only its own and shared surveys, so surveys seeded for
the sandbox's first user were invisible to everyone else's token."""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.sandbox import SandboxState

runner = CliRunner()


def _visible(url: str, token: str) -> set[str]:
    answer = httpx.get(f"{url}/API/v3/surveys", headers={"X-API-TOKEN": token})
    assert answer.status_code == 200, answer.text
    return {survey["id"] for survey in answer.json()["result"]["elements"]}


def test_seeding_a_running_sandbox_for_a_token_gives_that_user_the_surveys(
    live_sandbox: tuple[str, SandboxState],
) -> None:
    url, state = live_sandbox
    first_token = state.default_user()[1]
    first = runner.invoke(app, ["sandbox", "seed", "--url", url])
    assert first.exit_code == 0, first.output
    other, other_token = state.create_user("second@example.com")

    seeded = runner.invoke(
        app, ["sandbox", "seed", "--url", url, "--token", other_token, "--surveys", "1"]
    )

    assert seeded.exit_code == 0, seeded.output
    # The first user's built-in surveys are not reused for the second: it could not see them.
    assert "seeded 5 surveys and 0 responses" in seeded.stdout
    theirs = {s.id for s in state.surveys.values() if s.owner_id == other.id}
    assert len(theirs) == 5
    assert _visible(url, other_token) == theirs
    assert not theirs & _visible(url, first_token)
    again = runner.invoke(app, ["sandbox", "seed", "--url", url, "--token", other_token])
    assert "seeded 4 surveys (0 new, 4 already there)" in again.stdout


def test_seeding_a_state_file_for_a_token_gives_that_user_the_surveys(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    state = SandboxState(path=path)
    state.create_user("first@example.com")
    other, other_token = state.create_user("second@example.com")
    state.save()

    seeded = runner.invoke(
        app, ["sandbox", "seed", "--state-file", str(path), "--token", other_token]
    )

    assert seeded.exit_code == 0, seeded.output
    owners = {s.owner_id for s in SandboxState.load(path).surveys.values()}
    assert owners == {other.id}


def test_an_unknown_or_malformed_token_is_refused_in_one_line(
    tmp_path: Path, live_sandbox: tuple[str, SandboxState]
) -> None:
    url, _state = live_sandbox
    path = tmp_path / "sandbox.json"
    SandboxState(path=path).save()
    unknown = "x" * 40
    for target in (["--url", url], ["--state-file", str(path)]):
        refused = runner.invoke(app, ["sandbox", "seed", *target, "--token", unknown])
        assert refused.exit_code == 1, refused.output
        assert "no sandbox user has this API token" in refused.stderr
        malformed = runner.invoke(app, ["sandbox", "seed", *target, "--token", "short"])
        assert malformed.exit_code == 2, malformed.output
        assert "--token" in malformed.stderr


def test_the_control_api_refuses_an_unknown_owner(live_sandbox: tuple[str, SandboxState]) -> None:
    url, state = live_sandbox
    answer = httpx.post(f"{url}/_sandbox/seed", json={"ownerId": "UR_nobody"})
    assert answer.status_code == 400, answer.text
    assert "ownerId" in answer.json()["meta"]["error"]["errorMessage"]
    assert not state.surveys
