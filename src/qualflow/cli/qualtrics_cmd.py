"""`qualflow qualtrics …` (alias `qualflow q …`): the client library from the shell.

Credentials come from flags or the environment: ``QUALTRICS_API_TOKEN`` (or
``QUALTRICS_CLIENT_ID`` + ``QUALTRICS_CLIENT_SECRET``) and ``QUALTRICS_DATACENTER`` or
``QUALTRICS_BASE_URL``. Every command prints a table, or JSON with ``--json``. Failures print a
one-line reason on stderr and exit non-zero (2 for bad input, 1 for API, network or disk
failures).
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.status import Status
from rich.table import Table
from rich.text import Text

from qualflow.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    NoBlankLineProgress,
    fail,
    muted_log,
    print_listing,
)
from qualflow.qualtrics import (
    DATACENTERS,
    Client,
    ConfigurationError,
    DatacenterNotice,
    ExportEvent,
    ExportOptions,
    ExportTimeout,
    OAuthCredentials,
    QualtricsError,
    QualtricsWarning,
    RateLimited,
    RetryEvent,
    TransportError,
)
from qualflow.qualtrics.export_errors import ExportFileError
from qualflow.qualtrics.models import Survey
from qualflow.qualtrics.retry import RetryCallback

app = typer.Typer(
    no_args_is_help=True,
    help="Talk to the Qualtrics API v3 (or the qualflow sandbox).",
    pretty_exceptions_enable=False,
)

T = TypeVar("T")

EXIT_API = 1

_out = Console()
_err = Console(stderr=True)


@dataclass
class Connection:
    """Where and how to connect, gathered from the common options."""

    datacenter: str | None
    base_url: str | None
    api_token: str | None
    client_id: str | None
    client_secret: str | None
    scope: str | None
    #: The API root the client talks to, once made (for messages that name the host).
    root: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.api_token and (self.client_id or self.client_secret):
            # Either would authenticate: picking one silently could act as the wrong user.
            fail(
                "give either an API token (--token or QUALTRICS_API_TOKEN) or OAuth client "
                "credentials (--client-id/--client-secret or QUALTRICS_CLIENT_ID/"
                "QUALTRICS_CLIENT_SECRET), not both",
                EXIT_USAGE,
            )

    def client(self, on_retry: RetryCallback | None = None) -> Client:
        oauth = None
        if self.client_id or self.client_secret:
            oauth = OAuthCredentials(self.client_id or "", self.client_secret or "", self.scope)
        token = self.api_token if oauth is None else None
        if oauth is None and not token:
            raise ConfigurationError(
                "no credentials: set QUALTRICS_API_TOKEN (or --token), or "
                "QUALTRICS_CLIENT_ID and QUALTRICS_CLIENT_SECRET"
            )
        self._check_location()
        client = Client(
            datacenter=self.datacenter,
            base_url=self.base_url,
            api_token=token,
            oauth=oauth,
            on_retry=on_retry,
        )
        self.root = client.location.root
        return client

    def _check_location(self) -> None:
        # The client's own messages name its keyword arguments; a shell user gave a flag or,
        # often without remembering it, an environment variable: name the one in play.
        if self.datacenter and self.base_url:
            datacenter = _given("--datacenter", "QUALTRICS_DATACENTER", self.datacenter)
            base_url = _given("--base-url", "QUALTRICS_BASE_URL", self.base_url)
            fail(f"give either {datacenter} or {base_url}, not both", EXIT_USAGE)
        if not self.datacenter and not self.base_url:
            fail(
                "say where the Qualtrics account lives: --datacenter or QUALTRICS_DATACENTER "
                f"(one of {', '.join(DATACENTERS)}), or --base-url or QUALTRICS_BASE_URL (a "
                "brand host such as https://acme.qualtrics.com, or the URL `qualflow sandbox "
                "serve` prints)",
                EXIT_USAGE,
            )


def _given(flag: str, variable: str, value: str) -> str:
    """``variable`` when the environment holds ``value``, else ``flag`` (which overrides it)."""
    return f"{variable} (set in the environment)" if os.environ.get(variable) == value else flag


def _plain(value: str | None) -> Text:
    """A table cell from API data, shown as it is (never parsed as rich markup)."""
    return Text(value or "-")


@contextmanager
def _reported(connection: Connection | None = None) -> Iterator[None]:
    """Turn every expected failure into a one-line reason and an exit code."""
    try:
        # The client's retries reach the command through its on_retry hook; its log records
        # of them would otherwise be raw lines on stderr (Python's last-resort handler).
        with _warnings_as_lines(), muted_log("qualflow.qualtrics"):
            yield
    except ConfigurationError as exc:
        fail(str(exc), EXIT_USAGE)
    except TransportError as exc:
        fail(_unreachable(exc, connection.root if connection else None), EXIT_API)
    except RateLimited as exc:
        fail(_rate_limited(exc), EXIT_API)
    except QualtricsError as exc:
        fail(str(exc), EXIT_API)
    except ExportFileError as exc:
        fail(f"cannot read the export: {exc}", EXIT_API)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "input"
        message = str(first.get("msg", ""))
        # pydantic's "Value error, " prefix tells the user nothing.
        fail(f"invalid {where}: {message.removeprefix('Value error, ')}", EXIT_USAGE)
    except (ValueError, OSError) as exc:
        fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)


def _rate_limited(exc: RateLimited) -> str:
    """The reason for a 429 the retries did not get past, with the wait Qualtrics asked for
    when it said (the client gives up at once when that is longer than it would wait)."""
    if not exc.retry_after:
        return str(exc)
    return f"{exc}; Qualtrics asks to wait {_duration(exc.retry_after)} before trying again"


def _duration(seconds: float) -> str:
    """``45 s``, ``8 min 20 s``, ``3 h 5 min``: a wait as a person reads it."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours:,} h {minutes} min" if minutes else f"{hours:,} h"


def _unreachable(exc: TransportError, root: str | None) -> str:
    """The reason for a request that got no answer, naming the host it went to."""
    message = str(exc)
    if root is None or root in message:
        return message
    if exc.request_sent:
        return f"no answer from {root}: {message}"
    return f"cannot reach {root}: {message}"


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show the client's warnings as one ``warning: …`` line each, once, instead of Python's
    two-line format that names a source file of the client."""
    shown: set[str] = set()
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if not isinstance(message, QualtricsWarning):
            original(message, category, *args, **kwargs)
            return
        text = _warning_text(message)
        if text not in shown:
            shown.add(text)
            _err.print(Text.assemble(("warning:", "yellow"), " ", text), soft_wrap=True)

    with warnings.catch_warnings():
        warnings.filterwarnings("always", category=QualtricsWarning)
        warnings.showwarning = show
        yield


def _warning_text(warning: QualtricsWarning) -> str:
    if not isinstance(warning, DatacenterNotice):
        return str(warning)
    if warning.datacenter:
        advice = (
            f"give --datacenter {warning.datacenter} (or QUALTRICS_DATACENTER="
            f"{warning.datacenter}) for faster responses"
        )
    elif warning.host:
        advice = f"give --base-url https://{warning.host} for faster responses"
    else:
        return str(warning)
    return f"Qualtrics: {warning.notice.strip()} — {advice}"


def _retry_note(event: RetryEvent, *, with_call: bool) -> str:
    """A short line for a retry (the error itself is the final reason if the retries do not
    help, so it is not repeated here)."""
    cause = "a network error" if isinstance(event.error, TransportError) else event.reason
    note = f"retry {event.attempt} in {event.delay:.1f} s after {cause}"
    return f"{event.method} {event.path}: {note}" if with_call else f"R{note[1:]}"


@contextmanager
def _retry_status() -> Iterator[RetryCallback]:
    """An ``on_retry`` that shows each retry on a spinner line, gone once the command ends
    (nothing is shown when stderr is not a terminal: the final result or reason says it all)."""
    status: Status | None = None

    def show(event: RetryEvent) -> None:
        nonlocal status
        note = Text(_retry_note(event, with_call=True))
        if status is None:
            status = Status(note, console=_err)
            status.start()
        else:
            status.update(note)

    try:
        yield show
    finally:
        if status is not None:
            status.stop()


def _with_client(connection: Connection, work: Callable[[Client], T]) -> T:
    with _reported(connection), _retry_status() as on_retry, connection.client(on_retry) as client:
        return work(client)
    raise AssertionError("unreachable")  # pragma: no cover


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


_CONNECTION = "Connection"

Datacenter = Annotated[
    str | None,
    typer.Option(
        "--datacenter",
        "-d",
        envvar="QUALTRICS_DATACENTER",
        help="Datacenter id of the account, e.g. iad1 (or give --base-url).",
        rich_help_panel=_CONNECTION,
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="QUALTRICS_BASE_URL",
        help="Brand host or sandbox URL, e.g. https://acme.qualtrics.com (or give --datacenter).",
        rich_help_panel=_CONNECTION,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="QUALTRICS_API_TOKEN",
        help="API token (prefer the environment variable: flags show up in process lists).",
        show_default=False,
        show_envvar=True,
        rich_help_panel=_CONNECTION,
    ),
]
ClientId = Annotated[
    str | None,
    typer.Option(
        "--client-id",
        envvar="QUALTRICS_CLIENT_ID",
        help="OAuth client id (with --client-secret, instead of an API token).",
        rich_help_panel=_CONNECTION,
    ),
]
ClientSecret = Annotated[
    str | None,
    typer.Option(
        "--client-secret",
        envvar="QUALTRICS_CLIENT_SECRET",
        help="OAuth client secret.",
        show_default=False,
        rich_help_panel=_CONNECTION,
    ),
]
Scope = Annotated[
    str | None,
    typer.Option(
        "--scope",
        envvar="QUALTRICS_SCOPE",
        help="OAuth scopes to ask for, space-separated, e.g. 'read:surveys read:survey_responses' "
        "(default: the OAuth client's own).",
        rich_help_panel=_CONNECTION,
    ),
]
#: The options every command shares, in their order in its help ("Connection" panel).
_CONNECTION_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("datacenter", Datacenter),
    ("base_url", BaseUrl),
    ("token", Token),
    ("client_id", ClientId),
    ("client_secret", ClientSecret),
    ("scope", Scope),
)


def connection_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the shared connection options, defined once above: it declares a
    ``connection: Connection`` parameter instead and is called with one made from them (made
    first, so a contradiction among them is reported before anything else). They are listed
    before the command's ``--json``, or after its other options when it has none."""
    own = [
        parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for parameter in inspect.signature(command, eval_str=True).parameters.values()
        if parameter.name != "connection"
    ]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option)
        for name, option in _CONNECTION_OPTIONS
    ]
    at = next((i for i, p in enumerate(own) if p.name == "as_json"), len(own))
    parameters = [*own[:at], *shared, *own[at:]]
    names = [name for name, _ in _CONNECTION_OPTIONS]

    @functools.wraps(command)
    def run(**values: Any) -> None:
        connection = Connection(*(values.pop(name) for name in names))
        command(connection=connection, **values)

    # typer reads a command's options from its signature.
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run


Json = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")]
ExportJson = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print a JSON summary (output, format, rows, bytes, continuation token) instead of "
        "the summary line; the progress bar is not kept on stderr.",
    ),
]


@app.command()
@connection_options
def whoami(
    connection: Connection,
    as_json: Json = False,
) -> None:
    """Show the user, brand and datacenter behind the credentials."""
    me = _with_client(connection, lambda client: client.whoami())
    if as_json:
        _print_json(me.model_dump(mode="json", by_alias=True))
        return
    table = Table(show_header=False, box=None)
    for label, value in [
        ("user", f"{me.first_name or ''} {me.last_name or ''}".strip() or "-"),
        ("user id", me.user_id),
        ("username", me.user_name),
        ("email", me.email),
        ("brand", me.brand_id),
        ("account type", me.account_type),
        ("datacenter", me.datacenter),
    ]:
        table.add_row(f"[bold]{label}[/]", _plain(value))
    _out.print(table)


@app.command()
@connection_options
def surveys(
    connection: Connection,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="Show at most N surveys.")
    ] = None,
    active_only: Annotated[bool, typer.Option("--active", help="Only active surveys.")] = False,
    as_json: Json = False,
) -> None:
    """List the surveys the credentials can see."""

    def fetch(client: Client) -> list[Any]:
        found = []
        for survey in client.surveys.iter():
            if active_only and not survey.is_active:
                continue
            found.append(survey)
            if limit is not None and len(found) >= limit:
                break
        return found

    found = _with_client(connection, fetch)
    if as_json:
        _print_json([s.model_dump(mode="json", by_alias=True) for s in found])
        return
    table = Table("name", "active")
    # Dates and ids stay whole on a narrow terminal: a long name wraps instead.
    for column in ("last modified", "created", "id"):
        table.add_column(column, no_wrap=True)
    for survey in found:
        table.add_row(
            _plain(survey.name),
            "yes" if survey.is_active else "no",
            f"{survey.last_modified:%Y-%m-%d %H:%M}" if survey.last_modified else "-",
            f"{survey.creation_date:%Y-%m-%d}" if survey.creation_date else "-",
            _plain(survey.id),
        )
    if active_only:
        empty = "no active surveys (leave out --active to list the inactive ones too)"
    else:
        empty = "no surveys: these credentials see none"
    print_listing(_out, table, empty)
    if found:
        _err.print(f"{len(found)} survey(s)", style="dim")


@app.command()
@connection_options
def survey(
    connection: Connection,
    survey_id: Annotated[str, typer.Argument(help="The survey id, SV_…")],
    as_json: Json = False,
) -> None:
    """Show one survey: status, response counts, availability window and questions."""
    if not survey_id.startswith("SV_"):
        fail(f"{survey_id!r} is not a survey id (they look like SV_…)", EXIT_USAGE)
    found: Survey = _with_client(connection, lambda client: client.surveys.get(survey_id))
    if as_json:
        _print_json(found.model_dump(mode="json", by_alias=True))
        return
    counts = found.response_counts
    window = found.expiration
    summary = Table(show_header=False, box=None)
    for label, value in [
        ("survey", f"{found.name} ({found.id})"),
        ("active", "yes" if found.is_active else "no"),
        ("owner", found.owner_id or "-"),
        ("created", f"{found.creation_date:%Y-%m-%d %H:%M}" if found.creation_date else "-"),
        (
            "modified",
            f"{found.last_modified_date:%Y-%m-%d %H:%M}" if found.last_modified_date else "-",
        ),
        (
            "responses",
            f"{counts.auditable} recorded, {counts.generated} generated, {counts.deleted} deleted",
        ),
        ("open from", f"{window.start_date:%Y-%m-%d %H:%M}" if window.start_date else "-"),
        ("open until", f"{window.end_date:%Y-%m-%d %H:%M}" if window.end_date else "-"),
    ]:
        summary.add_row(f"[bold]{label}[/]", _plain(value))
    _out.print(summary)
    tags = {qid: tag for tag, qid in found.export_tags().items()}
    questions = Table("export tag", "type", "text", "choices")
    questions.add_column("question", no_wrap=True)
    for qid, question in found.questions.items():
        kind = question.question_type
        questions.add_row(
            _plain(question.question_name or tags.get(qid, "-")),
            _plain("/".join(p for p in (kind.type, kind.selector) if p)),
            _plain(question.text[:70] + ("…" if len(question.text) > 70 else "")),
            str(len(question.choices or {})) if question.choices else "-",
            _plain(qid),
        )
    print_listing(_out, questions, "no questions")


class OutputFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"
    ndjson = "ndjson"


class SourceFormat(StrEnum):
    csv = "csv"
    tsv = "tsv"
    json = "json"
    ndjson = "ndjson"


def _time_zone(name: str | None) -> str | None:
    """An IANA zone name as given, or a usage error naming the option."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"--time-zone {name!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
        ) from None
    return name


def _moment(value: str | None, option: str) -> datetime | None:
    """An ISO date or datetime from the command line; without a zone it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            fail(f"{option} must be an ISO date or datetime, e.g. 2025-01-31, not {value!r}", 2)
        parsed = datetime(day.year, day.month, day.day)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_stdout(path: Path) -> bool:
    """Whether ``path`` is this process's stdout under another name (/dev/stdout, /dev/fd/1,
    the terminal's device, the file stdout is redirected to)."""
    try:
        target = os.stat(path)
        stdout = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False
    return (target.st_dev, target.st_ino) == (stdout.st_dev, stdout.st_ino)


def _check_output(output: Path) -> None:
    """Fail now, before any export starts, unless the export can be written to ``output``:
    an existing FIFO or character device we may write to, or a new or regular file in an
    existing folder that takes new files (the export is renamed into place from one)."""
    from qualflow.cli.common import new_file_refused
    from qualflow.qualtrics.export_file import output_target

    try:
        target, stream = output_target(output)
    except ValueError as exc:
        fail(f"--output {exc}", EXIT_USAGE)
    if stream:
        if not os.access(target, os.W_OK):
            fail(f"cannot write --output {output}: permission denied", EXIT_USAGE)
        return
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        fail(f"the folder of --output ({folder}) does not exist", EXIT_USAGE)
    refused = new_file_refused(folder)
    if refused is not None:
        fail(
            f"cannot write --output {output}: its folder {folder} takes no new files ({refused})",
            EXIT_USAGE,
        )


class _AmountColumn(ProgressColumn):
    """What a task has done in its own unit: bytes for the download, responses for the
    conversion, nothing for the export job (its bar and percentage say it all)."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit")
        if unit == "bytes":
            return self._bytes.render(task)
        if unit == "responses" and task.total is not None:
            rows = int(task.fields.get("rows", task.completed))
            return Text(f"{rows:,} responses", style="progress.download")
        return Text("")


def _nothing_matched(where: str, fmt: str | None) -> str:
    """What an export without responses wrote to ``where``: the columns (a CSV header row, a
    Parquet schema), or nothing at all for NDJSON, which has no header."""
    got = "nothing (NDJSON has no header line)" if fmt == "ndjson" else "the columns and no rows"
    return f"no responses matched: {where} got {got}"


@contextmanager
def _erased_on_failure(progress: Progress) -> Iterator[None]:
    """Erase the progress display if the export fails or is interrupted: its bars, frozen
    where the export stopped, would otherwise sit above the one-line reason."""
    try:
        yield
    except BaseException:
        progress.live.transient = True
        raise


class _ExportProgress:
    """One rich progress display across the export's start, polling, download and conversion."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.job = progress.add_task("Qualtrics prepares the export", total=100)
        self.download = progress.add_task("Download", total=None, visible=False, unit="bytes")
        self.retry = progress.add_task("", total=None, visible=False)

    def note(self, text: str | None) -> None:
        """Show a retry note on a row of its own, or hide it (None)."""
        if text is None:
            self.progress.update(self.retry, visible=False)
        else:
            self.progress.update(self.retry, description=escape(text), visible=True)

    def retried(self, event: RetryEvent) -> None:
        """The client's ``on_retry``: the latest retry on the retry row."""
        self.note(_retry_note(event, with_call=False))

    def __call__(self, event: ExportEvent) -> None:
        self.note(None)  # the export moved on: the retry that was waited for went through
        if event.stage in ("started", "polling"):
            self.progress.update(self.job, completed=event.percent_complete)
        elif event.stage == "downloading":
            self.progress.update(self.job, completed=100)
            self.progress.update(
                self.download,
                visible=True,
                completed=event.bytes_downloaded,
                total=event.total_bytes,
            )
        elif event.stage == "downloaded":
            self.progress.update(
                self.download,
                visible=True,
                completed=event.bytes_downloaded,
                total=event.bytes_downloaded,
            )


@app.command()
@connection_options
def export(
    connection: Connection,
    survey_id: Annotated[str, typer.Argument(help="The survey id, SV_…")],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="File to write (its folder must exist and be writable); - for stdout. A file "
            "is replaced only once the export is complete; a symlink is written through to "
            "its target; a FIFO or character device (e.g. /dev/stdout) is written into "
            "directly, never replaced; a folder, socket or block device is refused.",
        ),
    ],
    output_format: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="parquet, csv or ndjson (default: from the output's extension — .parquet, "
            ".csv, .ndjson, .jsonl — or parquet when it has none). A format that contradicts "
            "one of those extensions is refused.",
        ),
    ] = None,
    source: Annotated[
        SourceFormat,
        typer.Option(
            "--qualtrics-format",
            help="File format Qualtrics builds the export in; it is then converted to --format.",
        ),
    ] = SourceFormat.csv,
    labels: Annotated[
        bool, typer.Option("--labels", help="Add <column>_label columns beside choice codes.")
    ] = False,
    join_multi_answers: Annotated[
        bool,
        typer.Option(
            "--join-multi-answers",
            help="Keep each multi-answer question in one column of comma-joined codes (CSV and "
            "TSV exports only), instead of Qualtrics' default: a column per choice (Q4_1, "
            "Q4_2…) holding that choice's code when it was selected.",
        ),
    ] = False,
    start_date: Annotated[
        str | None,
        typer.Option(
            "--start-date",
            help="Only responses recorded at or after this ISO date or datetime, e.g. 2025-01-31 "
            "or 2025-01-31T09:00 (UTC unless it names a zone).",
        ),
    ] = None,
    end_date: Annotated[
        str | None,
        typer.Option(
            "--end-date",
            help="Only responses recorded before this ISO date or datetime (UTC unless it names "
            "a zone).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Export at most N responses.")
    ] = None,
    in_progress: Annotated[
        bool,
        typer.Option(
            "--in-progress",
            help="Export the responses still in progress (not yet recorded) instead.",
        ),
    ] = False,
    continuation_token: Annotated[
        str | None,
        typer.Option(
            "--continuation-token", help="Only responses since the export that gave this token."
        ),
    ] = None,
    questions: Annotated[
        list[str] | None,
        typer.Option(
            "--question",
            help="Only this question's columns (a QID, e.g. QID4); repeat for several. Survey "
            "metadata and embedded data are still exported.",
        ),
    ] = None,
    embedded_data: Annotated[
        list[str] | None,
        typer.Option(
            "--embedded-data",
            help="Only this embedded-data field (repeat for several); others are left out.",
        ),
    ] = None,
    time_zone: Annotated[
        str | None,
        typer.Option(
            "--time-zone",
            help="IANA time zone Qualtrics writes the dates in, e.g. Europe/Berlin (default "
            "UTC); the written file holds them as UTC timestamps either way.",
        ),
    ] = None,
    filter_id: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="Only the responses a saved filter of the survey selects (its filter id).",
        ),
    ] = None,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Ask for a continuation token for the next incremental export (printed).",
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=1,
            help="Give up after this many seconds if Qualtrics has not finished the export.",
        ),
    ] = 3600,
    as_json: ExportJson = False,
) -> None:
    """Export a survey's responses to Parquet, CSV or NDJSON with typed columns.

    Streamed batch by batch: memory stays flat however many responses there are.
    """
    if not survey_id.startswith("SV_"):
        fail(f"{survey_id!r} is not a survey id (they look like SV_…)", EXIT_USAGE)
    from qualflow.qualtrics.export_file import OUTPUT_SUFFIXES, output_format_for

    to_stdout = str(output) == "-"
    named = None if to_stdout else OUTPUT_SUFFIXES.get(output.suffix.lower())
    if output_format is not None and named is not None and output_format.value != named:
        fail(
            f"--format {output_format.value} contradicts the extension of {output.name!r} "
            f"({named}): rename the file or leave out --format",
            EXIT_USAGE,
        )
    fmt = output_format.value if output_format else output_format_for(output)
    if join_multi_answers and source in (SourceFormat.json, SourceFormat.ndjson):
        fail(
            f"--join-multi-answers applies to CSV and TSV exports; a {source.value} export "
            "always keeps a multi-answer question's codes in one list",
            EXIT_USAGE,
        )
    if as_json and (to_stdout or _is_stdout(output)):
        fail(
            f"--json prints a summary on stdout, where -o {output} writes the responses",
            EXIT_USAGE,
        )
    if to_stdout:
        if fmt == "parquet" and sys.stdout.isatty():
            fail(
                "Parquet is binary: redirect stdout to a file or a program, or give --format "
                "csv or ndjson",
                EXIT_USAGE,
            )
    elif fmt is None:
        # Parquet bytes in a file named .xlsx (or .json) would mislead whoever opens it.
        fail(
            f"cannot tell the format from {output.name!r}: name it .parquet, .csv, .ndjson or "
            ".jsonl, or give --format",
            EXIT_USAGE,
        )
    if not to_stdout:
        _check_output(output)
    with _reported():
        options = ExportOptions(
            format=source.value,
            start_date=_moment(start_date, "--start-date"),
            end_date=_moment(end_date, "--end-date"),
            limit=limit,
            export_responses_in_progress=in_progress or None,
            breakout_sets=False if join_multi_answers else None,
            question_ids=questions or None,
            embedded_data_ids=embedded_data or None,
            time_zone=_time_zone(time_zone),
            filter_id=filter_id,
            continuation_token=continuation_token,
            allow_continuation=(incremental or continuation_token is not None) or None,
        )
    progress = NoBlankLineProgress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        _AmountColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=as_json,
    )

    def unsaved(issued: str | None) -> None:
        """The job completed but its responses were not saved: the token it issued resumes
        after them, so say how to get them again rather than lose them."""
        if not issued:
            return
        again = (
            f"with --continuation-token {continuation_token}"
            if continuation_token
            else "with the same options"
        )
        _err.print(
            f"the export completed but was not saved: run it again {again} to get its "
            f"responses (continuation token {issued}, issued for after it, skips them)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    issued: str | None = None  # the completed job's continuation token, once downloaded
    with _reported(connection), tempfile.TemporaryDirectory(prefix="qualflow-export-") as scratch:
        try:
            with progress, _erased_on_failure(progress), connection.client() as client:
                tracker = _ExportProgress(progress)
                client.on_retry = tracker.retried
                result = client.export_responses(
                    survey_id,
                    options=options,
                    dest=Path(scratch),
                    timeout=timeout,
                    on_progress=tracker,
                    labels=labels,
                )
                client.on_retry = None
                issued = result.continuation_token
                tracker.note(None)
                convert = progress.add_task(f"Convert to {fmt}", total=None, unit="responses")
                destination: Path | BinaryIO = sys.stdout.buffer if to_stdout else output
                try:
                    rows = result.write(destination, fmt, labels=labels)
                except BrokenPipeError:
                    if not to_stdout:
                        fail(f"cannot write --output {output}: its reader went away", EXIT_API)
                    # The reader stopped early (`| head`): as for any Unix filter, not an error.
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                    raise typer.Exit(0) from None
                except ExportFileError:
                    unsaved(result.continuation_token)
                    raise
                except OSError as exc:
                    unsaved(result.continuation_token)
                    where = "stdout" if to_stdout else f"--output {output}"
                    fail(f"cannot write {where}: {exc.strerror or exc}", EXIT_API)
                # An empty export is converted too: 100%, not a bar stuck at 0% of nothing.
                progress.update(convert, total=max(rows, 1), completed=max(rows, 1), rows=rows)
        except ExportTimeout as exc:
            fail(
                f"{exc} (--timeout {timeout:g}); Qualtrics may still finish it: try again with "
                "a longer --timeout",
                EXIT_API,
            )
        except QualtricsError as exc:
            unsaved(getattr(exc, "continuation_token", None))
            raise
        except KeyboardInterrupt:
            # The file is only renamed into place once complete, so Ctrl-C leaves it untouched.
            kept = "stdout may have received part of it" if to_stdout else f"{output} is unchanged"
            unsaved(issued)
            fail(f"export interrupted; {kept}", EXIT_INTERRUPTED)
        if to_stdout:
            sys.stdout.flush()
            _err.print(f"{rows} response(s) → stdout ({fmt})", highlight=False, markup=False)
            if not rows:
                _err.print(_nothing_matched("stdout", fmt), highlight=False, markup=False)
            if result.continuation_token:
                _err.print(
                    f"continuation token for the next export: {result.continuation_token}",
                    markup=False,
                )
            return
        summary = {
            "surveyId": survey_id,
            "output": str(output),
            "format": fmt,
            "rows": rows,
            "bytes": output.stat().st_size,
            "downloadedBytes": result.size,
            "continuationToken": result.continuation_token,
        }
    if as_json:
        _print_json(summary)
        return
    _out.print(
        Text.assemble(
            f"{rows} response(s) → ", (str(output), "bold"), f" ({summary['bytes']:,} bytes, {fmt})"
        )
    )
    if not rows:
        _out.print(_nothing_matched(str(output), fmt), highlight=False, markup=False)
    if result.continuation_token:
        _out.print(
            f"continuation token for the next export: {result.continuation_token}", markup=False
        )
