"""The `qualflow` command line: one typer app with a sub-app per area."""

from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Sequence
from typing import IO, Annotated, Any, cast

import typer

try:  # recent typer releases carry their own copy of click, and raise that copy's errors
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

from qualflow import __version__
from qualflow.cli.demo_cmd import demo as demo_command
from qualflow.cli.engine_cmd import app as engine_app
from qualflow.cli.hub_cmd import app as hub_app
from qualflow.cli.incentives_cmd import app as incentives_app
from qualflow.cli.qualtrics_cmd import app as qualtrics_app
from qualflow.cli.sandbox_cmd import app as sandbox_app

app = typer.Typer(
    name="qualflow",
    help="Self-hosted hub that connects a Qualtrics account to the rest of your stack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Every command's context inherits these from the root's.
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(qualtrics_app, name="qualtrics", help="Talk to the Qualtrics API (alias: q).")
app.add_typer(qualtrics_app, name="q", hidden=True)
app.add_typer(sandbox_app, name="sandbox", help="Run the Qualtrics-compatible sandbox.")
app.command("demo")(demo_command)
app.add_typer(hub_app)  # migrate, users, secrets, connections
app.add_typer(engine_app)  # serve, worker, runs, automations
app.add_typer(incentives_app, name="incentives", help="Incentives: reward respondents.")


@app.command()
def version() -> None:
    """Print the qualflow version."""
    typer.echo(__version__)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the qualflow version and exit.",
        ),
    ] = False,
) -> None:
    pass


def run(args: Sequence[str] | None = None, *, prog_name: str | None = None) -> int:
    """Run the command line and return its exit code. A usage error (unknown command or option,
    a value of the wrong type, a missing argument) is one line on stderr and exit code 2, like
    every other error, instead of click's usage block and framed message."""
    try:
        result = app(args=args, prog_name=prog_name, standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        # A group run without a command: its help is the answer (typer's rich help prints
        # itself, click's plain help comes back as the message).
        if exc.format_message():
            typer.echo(exc.format_message(), err=True)
        return exc.exit_code
    except click_errors.ClickException as exc:
        typer.echo(usage_error_line(exc), err=True)
        return exc.exit_code
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return 1
    except OSError as exc:
        # A closed pipe is click's (a quiet exit 1); a full disk or an I/O error under stdout
        # (`> /dev/full`) would otherwise end in a traceback.
        if exc.errno not in _OUTPUT_FAILURES:
            raise
        sys.stdout = cast(Any, _FlushFailureIgnored(sys.stdout))
        typer.echo(f"error: cannot write the output: {exc.strerror or exc}", err=True)
        return 1
    # Without standalone mode, click returns typer.Exit's code, or the command's return value.
    return result if isinstance(result, int) else 0


#: Why writing the output failed without a closed pipe: the disk is full, or its device failed.
_OUTPUT_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


class _FlushFailureIgnored:
    """stdout after its write failed: what it still buffers cannot be written either, and the
    interpreter's last flush would print the same failure again as an ignored exception."""

    def __init__(self, wrapped: IO[str]) -> None:
        self.wrapped = wrapped

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self.wrapped.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def usage_error_line(exc: click_errors.ClickException) -> str:
    """``error: <what is wrong> (see 'qualflow … --help')`` on one line."""
    # A parameter checked by a pydantic validator carries pydantic's "Value error, " prefix.
    message = " ".join(exc.format_message().split()).replace(": Value error, ", ": ")
    context = getattr(exc, "ctx", None)
    if context is None:
        return f"error: {message}"
    return f"error: {message} (see '{context.command_path} --help')"


def main() -> None:
    sys.exit(run())
