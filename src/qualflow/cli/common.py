"""What every hub command shares: the one-line failure, the settings read from the
environment (each bad variable named), and the hub's database opened for a command."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from pydantic import ValidationError
from rich.progress import Progress

from qualflow.settings import Settings
from qualflow.validation import MAX_ID
from qualflow.validation import first_line as one_line

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "MAX_ID",
    "MAX_INPUT_BYTES",
    "NoBlankLineProgress",
    "captured_log",
    "fail",
    "hub_store",
    "load_settings",
    "muted_log",
    "new_file_refused",
    "one_line",
    "parse_statuses",
    "print_listing",
    "read_input_file",
    "register_actions",
    "replace_file",
    "require_migrated",
    "secret_from_stdin",
    "shown_url",
]

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from qualflow.store.runtime import Store


#: The exit code of a command stopped with Ctrl-C: 128 + SIGINT, as a shell reports it.
EXIT_INTERRUPTED = 130
#: The exit code of a command given options that cannot go together or say nothing to do: the
#: code typer gives its own usage errors.
EXIT_USAGE = 2

#: The most a command reads from an input file (JSON definitions, CSV code pools): enough for
#: any real one, and a file that never ends (``/dev/zero``) fails instead of filling memory.
MAX_INPUT_BYTES = 64 * 1024 * 1024


class _Captured(logging.Handler):
    def __init__(self, on_record: Callable[[logging.LogRecord], None]) -> None:
        super().__init__(logging.WARNING)
        self.on_record = on_record

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.on_record(record)
        except Exception:  # pragma: no cover - a display failure must not end the command
            self.handleError(record)


@contextmanager
def captured_log(
    logger_name: str, on_record: Callable[[logging.LogRecord], None]
) -> Iterator[None]:
    """While the block runs, the warnings of ``logger_name`` go to ``on_record`` only. Left to
    Python's last-resort handler, each would be a raw line on stderr beside the command's own
    one-line report."""
    logger = logging.getLogger(logger_name)
    handler = _Captured(on_record)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def muted_log(logger_name: str) -> AbstractContextManager[None]:
    """While the block runs, the warnings of ``logger_name`` go nowhere: for a logger whose
    news the command gets another way (the Qualtrics client's retries: its ``on_retry``)."""
    return captured_log(logger_name, lambda record: None)


class NoBlankLineProgress(Progress):
    """rich's progress display, minus the empty line it ends with on a non-terminal even when
    it showed nothing there (transient): stderr then holds only what the command says."""

    def stop(self) -> None:
        if self.live.transient and not self.console.is_interactive:
            self.live.stop()
        else:
            super().stop()


def print_listing(console: Console, table: Table, empty: str) -> None:
    """``table``, or, when it has no rows, the one line ``empty`` saying what to do next
    (an empty frame of column headers tells a newcomer nothing)."""
    if table.row_count:
        console.print(table)
    else:
        console.print(empty, markup=False, highlight=False, soft_wrap=True)


def parse_statuses(
    values: Sequence[str] | None, check: Callable[[list[str]], list[str]]
) -> list[str]:
    """The statuses a ``--status`` option was given, as stored: each value comma-split
    ('failed,cancelled', what a person may type, as other tools take lists), lower case, blanks
    dropped, then passed to ``check``; the ValueError it raises for an unknown one is a usage
    error (exit 2), said on one line."""
    given = [part.strip().lower() for value in values or [] for part in value.split(",")]
    try:
        return check([status for status in given if status])
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with ``error: message`` on stderr and exit ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def secret_from_stdin(what: str, option: str, max_length: int) -> str:
    """The secret (``what``: "API token", "platform key") on the first line of stdin, or a
    one-line failure. At most ``max_length + 1`` characters are read, so a stream that never
    ends a line (``/dev/zero``) or a binary file fails at once instead of filling memory."""
    try:
        line = sys.stdin.readline(max_length + 1)
    except (OSError, UnicodeDecodeError):
        fail(f"cannot read the {what} from stdin: it is not text")
    secret = line.strip()
    if len(line.rstrip("\r\n")) > max_length or not secret.isprintable():
        fail(f"the first line of stdin is not {_with_article(what)} (too long, or not text)")
    if not secret:
        fail(f"no {what} on stdin ({option} reads its first line)")
    return secret


def _with_article(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def read_input_file(path: Path, *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of an input file the command was given, or a one-line failure that says why
    not (missing, a directory, unreadable, larger than ``limit``)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except IsADirectoryError:
        fail(f"{path}: is a directory, not a file")
    except OSError as exc:
        fail(f"{path}: cannot read it: {exc.strerror or one_line(exc)}")
    if len(data) > limit:
        fail(f"{path}: larger than {limit // (1024 * 1024)} MB; is it the right file?")
    return data


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to the file ``path`` as ``qualflow qualtrics export`` writes its output:
    through a temporary file renamed into place once complete (a failed write never leaves a
    truncated file, nor loses the one it would replace), private (0600) when new since outputs
    hold respondents' data, with its mode kept when written over. A FIFO or character device
    (``/dev/stdout``) is written into directly. Raises OSError, or ValueError for a folder."""
    from qualflow.qualtrics.export_file import output_target

    target, stream = output_target(path)
    if stream:
        with open(target, "wb") as sink:
            sink.write(data)
        return
    handle, temporary = tempfile.mkstemp(
        prefix=".qualflow-", suffix=".part", dir=os.path.dirname(target)
    )
    try:
        with os.fdopen(handle, "wb") as sink:
            sink.write(data)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def new_file_refused(folder: str | Path) -> str | None:
    """Why no new file can be made in ``folder`` (tried with a real one, removed at once), or
    None when one can: a command checks where it will write before doing the work."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".qualflow-", suffix=".probe", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(handle)
    os.unlink(probe)
    return None


def load_settings() -> Settings:
    """The hub's settings; a bad ``QUALFLOW_*`` variable fails the command, named."""
    try:
        return Settings()
    except ValidationError as exc:
        from qualflow.store.readiness import invalid_settings_reason

        fail(invalid_settings_reason(exc))


def register_actions() -> None:
    """Make the engine know every action (built-in and ``incentives.send_reward``) now, for the
    commands that run automations or read their definitions. The engine's registry loads them
    by itself when first asked for one (``load_builtin_actions``); this only does it up front,
    so a broken action module fails the command at start, not in the middle of a run."""
    from qualflow.engine.actions import load_builtin_actions

    load_builtin_actions()


def shown_url(url: str) -> str:
    """A database URL as a message may show it (no password)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def require_migrated(settings: Settings) -> None:
    """Fail in one line, saying what was found and what to do, when the settings' database
    cannot be used as it is: not migrated by itself (``QUALFLOW_AUTO_MIGRATE`` off, the
    PostgreSQL default) and not at the current revision, newer, foreign or unreachable."""
    from qualflow.store.readiness import DatabaseNotReady, refuse_unready_database

    try:
        refuse_unready_database(settings)
    except DatabaseNotReady as exc:
        fail(str(exc))


@contextmanager
def hub_store(settings: Settings | None = None) -> Iterator[Store]:
    """The hub's database for one command: the embedded SQLite default is migrated; a database
    that is not migrated by itself (PostgreSQL) must be at the current revision already, or the
    command fails saying to run ``qualflow migrate``, instead of on a missing table."""
    from qualflow.store.readiness import DatabaseNotReady, open_ready_store

    try:
        store = open_ready_store(settings or load_settings())
    except DatabaseNotReady as exc:
        fail(str(exc))
    try:
        yield store
    finally:
        store.close()
