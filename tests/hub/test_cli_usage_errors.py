"""Usage errors (unknown commands and options, wrong-typed values, missing arguments) end the
command line with one line on stderr and exit code 2, as every other error does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qualflow.cli import run


def _ran(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args), prog_name="qualflow")
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["runs", "ls", "--bogus"], "No such option: --bogus (see 'qualflow runs ls --help')"),
        (
            ["runs", "ls", "--limit", "abc"],
            "Invalid value for '--limit': Input should be a valid integer",
        ),
        (
            ["runs", "ls", "--limit", "0"],
            "Invalid value for '--limit': Input should be greater than or equal to 1",
        ),
        (["runs", "lss"], "No such command 'lss'. Did you mean 'ls'? (see 'qualflow runs --help')"),
        (["connections", "add"], "Missing option '--name'."),
        (["q", "export"], "Missing argument 'survey_id'."),
        (["version", "extra"], "Got unexpected extra argument(s) (extra)"),
        (
            ["q", "export", "SV_1", "--format", "xlsx"],
            "Invalid value for '--format' / '-f': 'xlsx' is not one of",
        ),
    ],
)
def test_a_usage_error_is_one_line_on_stderr_with_exit_code_2(
    capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    code, out, err = _ran(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert says in err
    assert "╭" not in err
    assert "Usage:" not in err


def test_a_group_without_a_command_shows_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _ran(capsys, "runs")
    assert code == 2
    assert "ls" in out
    assert "recover" in out
    assert err == ""


def test_help_and_commands_keep_their_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _ran(capsys, "--help")
    assert code == 0
    assert "Usage" in out
    code, out, err = _ran(capsys, "version")
    assert (code, err) == (0, "")
    assert out.strip()
    # A command's own failure (typer.Exit(1)) keeps its code and message.
    code, _, err = _ran(capsys, "incentives", "create", "-f", "/nonexistent/incentive.json")
    assert code == 1
    assert err == "error: /nonexistent/incentive.json: no such file\n"


def test_the_installed_command_ends_with_the_code() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "qualflow", "runs", "ls", "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        done.stderr == "error: No such option: --bogus (see 'python -m qualflow runs ls --help')\n"
    )


def test_version_as_an_option_and_as_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    from qualflow import __version__

    assert _ran(capsys, "--version") == (0, f"{__version__}\n", "")
    assert _ran(capsys, "version") == (0, f"{__version__}\n", "")


@pytest.mark.parametrize(
    "args", [["-h"], ["runs", "ls", "-h"], ["incentives", "tango", "add", "-h"]]
)
def test_dash_h_is_help_everywhere(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = _ran(capsys, *args)
    assert (code, err) == (0, "")
    assert f"Usage: qualflow {' '.join(args[:-1])}".rstrip() in " ".join(out.split())
