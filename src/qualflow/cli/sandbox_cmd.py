"""`qualflow sandbox …`: serve, seed and drive the Qualtrics-compatible sandbox."""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import stat
import threading
import time
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from qualflow.cli.common import (
    EXIT_INTERRUPTED,
    NoBlankLineProgress,
    fail,
    new_file_refused,
    read_input_file,
)
from qualflow.qualtrics.datacenters import resolve_location
from qualflow.qualtrics.errors import ConfigurationError
from qualflow.sandbox.fault_limits import MAX_DELAY, MAX_RATE_LIMIT, MAX_RETRY_AFTER, HttpMethod

app = typer.Typer(
    no_args_is_help=True, help="Run, seed and drive the Qualtrics-compatible sandbox."
)
err = Console(stderr=True)

StateFile = Annotated[
    Path | None,
    typer.Option(
        "--state-file", "-f", help="JSON file the sandbox state is loaded from / saved to."
    ),
]
_URL_HELP = "Base URL of a running sandbox (e.g. http://127.0.0.1:8765)."
Url = Annotated[str | None, typer.Option("--url", help=_URL_HELP)]

#: Bounds on the counts a command takes, so a typo fails at once instead of running for hours.
MAX_SURVEYS = 1000
MAX_RESPONSES = 10_000  # per survey
MAX_TOTAL_RESPONSES = 1_000_000  # per seed or respond command
MAX_RATE = 10_000  # responses per second `respond` paces to (0 = unpaced)


class LogLevel(StrEnum):
    """uvicorn's log levels."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"
    TRACE = "trace"


#: A survey id as a command accepts it.
SURVEY_ID = re.compile(r"SV_[A-Za-z0-9]{1,60}")


def _progress() -> Progress:
    return NoBlankLineProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,  # an error then stays the only line; a summary line follows success
    )


def _load_state(path: Path | None) -> Any:
    """The state in ``path`` (a fresh one bound to it if it does not exist yet), after checking
    it can be saved there; a one-line failure otherwise."""
    from qualflow.sandbox import SandboxState
    from qualflow.sandbox.state import MAX_STATE_BYTES

    if path is None:
        return SandboxState()
    if path.exists() and path.is_dir():
        fail(f"{path} is a directory, not a state file")
    if not path.exists():
        _check_writable(path)
        return SandboxState.load(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    if not stat.S_ISREG(mode):
        fail(f"{path} is not a regular file, so not a sandbox state file")
    raw = read_input_file(path, limit=MAX_STATE_BYTES)
    _check_writable(path)
    try:
        return SandboxState.from_bytes(raw, path=path)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        fail(f"cannot load sandbox state: {exc}")


def _check_writable(path: Path) -> None:
    """Fail now, naming ``path``, if the state could not be saved there later."""
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent  # saving creates the missing directories
    if not directory.is_dir():
        fail(f"cannot save the state to {path}: {directory} is not a directory")
    refused = new_file_refused(directory)
    if refused is not None:
        fail(f"cannot save the state to {path}: {directory} is not writable ({refused})")


def _interrupted(url: str | None, state_file: Path | None, kept_at_url: str) -> NoReturn:
    """Ctrl-C: say what stays (a server keeps what it got; a state file is only written at
    the end) and exit with the interrupted code."""
    kept = kept_at_url if url is not None else f"nothing was saved to {state_file}"
    fail(f"interrupted; {kept}", EXIT_INTERRUPTED)


class _StopBetweenRecords:
    """Ctrl-C while records are made into a state file: stop after the record being made and
    save what was made (an interrupt inside one could leave it half made). A second Ctrl-C
    stops at once, saving nothing."""

    def __enter__(self) -> _StopBetweenRecords:
        self.asked = threading.Event()
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._ask)
        return self

    def _ask(self, _signum: int, _frame: FrameType | None) -> None:
        self.asked.set()
        signal.signal(signal.SIGINT, self._previous)

    def __exit__(self, *_exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def pace(self, started: float, due: float) -> None:
        """Wait until ``due`` seconds after ``started``, or until Ctrl-C."""
        delay = started + due - time.monotonic()
        if delay > 0:
            self.asked.wait(delay)


def _save(state: Any) -> None:
    try:
        state.save()
    except OSError as exc:
        fail(f"cannot write {state.path}: {exc.strerror}")


@app.command()
def serve(
    port: Annotated[
        int, typer.Option(help="TCP port (0 = any free port).", min=0, max=65535)
    ] = 8765,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    state_file: StateFile = None,
    seed: Annotated[
        bool, typer.Option("--seed/--no-seed", help="Add the built-in surveys to an empty sandbox.")
    ] = True,
    responses: Annotated[
        int,
        typer.Option(
            help=f"Simulated responses per seeded survey (at most {MAX_RESPONSES:,}).",
            min=0,
            max=MAX_RESPONSES,
        ),
    ] = 25,
    token: Annotated[
        str | None,
        typer.Option(help="Use this API token for the default user (40 ASCII letters and digits)."),
    ] = None,
    export_duration: Annotated[
        float,
        typer.Option(
            help="Seconds each export stays inProgress before it completes (to watch a client "
            "poll).",
            min=0,
        ),
    ] = 0.0,
    log_level: Annotated[
        LogLevel, typer.Option(case_sensitive=False, help="uvicorn log level.")
    ] = LogLevel.WARNING,
) -> None:
    """Serve the sandbox; prints the base URL and an API token to use."""
    import uvicorn

    from qualflow.sandbox import create_app
    from qualflow.sandbox.respondents import Simulator
    from qualflow.sandbox.seed import seed_builtin

    _check_token(token)
    state = _load_state(state_file)
    state.config.export_duration = export_duration
    if token is not None:
        owner = (
            state.user_for_token(token)
            or state.create_user("sandbox.cli@example.com", api_token=token)[0]
        )
        api_token = token
    else:
        owner, api_token = state.default_user()
    if seed and not state.surveys:
        # Owned by the printed token's user: a user sees only its own and shared surveys.
        for i, survey in enumerate(seed_builtin(state, owner_id=owner.id)):
            if responses:
                Simulator(state, survey.id, seed=i).run(responses)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}"
    typer.echo(f"qualflow sandbox listening on {url}")
    typer.echo(f"  API token (X-API-TOKEN): {api_token}")
    typer.echo(f"  brand: {state.config.brand_id}  datacenter: {state.config.datacenter}")
    typer.echo(f"  surveys: {len(state.surveys)}  state file: {state_file or '(memory only)'}")
    typer.echo(f"  try: curl -H 'X-API-TOKEN: {api_token}' {url}/API/v3/surveys", nl=True)
    typer.echo(
        f"  or:  export QUALTRICS_BASE_URL={url} QUALTRICS_API_TOKEN={api_token}"
        "  # then: qualflow qualtrics surveys"
    )
    config = uvicorn.Config(
        create_app(state),
        log_level=log_level.value,
        lifespan="on",
        timeout_graceful_shutdown=10,  # a slow request cannot hold off SIGTERM for long
    )
    server = _server(config, state)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if state.path is not None and state.dirty:
            _save(state)


def _server(config: Any, state: Any) -> Any:
    """uvicorn's server, whose SIGTERM / SIGINT also cuts injected latencies and hangs short
    (a request hanging on a fault would otherwise hold off the shutdown for its whole hang)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            state.faults.cut_short()
            super().handle_exit(sig, frame)

    return Server(config)


@contextmanager
def _remote(url: str) -> Any:
    # Read as the Qualtrics client reads its base URL, so whatever URL a client is given for
    # the sandbox (with or without /API/v3) reaches the control API beside it too.
    if not url.startswith(("http://", "https://")):
        fail(f"--url must be an http(s) URL, got {url!r}", 2)
    try:
        root = resolve_location(datacenter=None, base_url=url).root
    except ConfigurationError as exc:
        fail(f"--url is not a sandbox URL: {exc}", 2)
    with httpx.Client(base_url=root, timeout=60.0) as client:
        try:
            yield client
        except httpx.ConnectError as exc:
            fail(
                f"cannot reach the sandbox at {url}: {exc} (is `qualflow sandbox serve` "
                "running there?)"
            )
        except httpx.TransportError as exc:
            fail(f"cannot reach the sandbox at {url}: {exc}")


def _remote_user(client: httpx.Client, token: str) -> str:
    """The id of the running sandbox's user with this API token (Qualtrics' whoami)."""
    answer = client.get("/API/v3/whoami", headers={"X-API-TOKEN": token})
    if answer.status_code in (400, 401, 403):
        fail(_NO_SUCH_TOKEN)
    return str(_result(client, answer)["userId"])


def _control(
    client: httpx.Client, path: str, body: dict[str, Any] | None = None, method: str = "POST"
) -> Any:
    return _result(client, client.request(method, f"/_sandbox/{path}", json=body))


def _result(client: httpx.Client, resp: httpx.Response) -> Any:
    try:
        payload = resp.json()
    except ValueError:
        fail(f"{client.base_url} did not answer like a qualflow sandbox (HTTP {resp.status_code})")
    if resp.status_code != 200:
        message = payload.get("meta", {}).get("error", {}).get("errorMessage", resp.text)
        fail(str(message))
    return payload.get("result")


def _check_token(token: str | None) -> None:
    if token is not None and (len(token) != 40 or not (token.isascii() and token.isalnum())):
        fail("--token must be 40 ASCII letters and digits", 2)


_NO_SUCH_TOKEN = (
    "no sandbox user has this API token (`qualflow sandbox serve --token T` creates one, "
    "`qualflow sandbox serve` prints the first user's)"
)


def _one_target(state_file: Path | None, url: str | None) -> None:
    if state_file is not None and url is not None:
        fail("give either --state-file or --url, not both", 2)
    if state_file is None and url is None:
        fail("give --state-file PATH (offline) or --url URL (a running sandbox)", 2)


@app.command("seed")
def seed_cmd(
    surveys: Annotated[
        int,
        typer.Option(
            "--surveys",
            help=f"Generated surveys to add (at most {MAX_SURVEYS:,}).",
            min=0,
            max=MAX_SURVEYS,
        ),
    ] = 0,
    responses: Annotated[
        int,
        typer.Option(
            "--responses",
            help=(
                f"Simulated responses per survey (at most {MAX_RESPONSES:,}, and "
                f"{MAX_TOTAL_RESPONSES:,} in all)."
            ),
            min=0,
            max=MAX_RESPONSES,
        ),
    ] = 0,
    builtin: Annotated[
        bool, typer.Option("--builtin/--no-builtin", help="Also add the four built-in surveys.")
    ] = True,
    rng_seed: Annotated[
        int, typer.Option("--seed", help="Random seed: the same seed adds the same data.", min=0)
    ] = 0,
    state_file: StateFile = None,
    url: Url = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Give the surveys to the user of this API token (default: the sandbox's first "
            "user); a user sees only its own and shared surveys."
        ),
    ] = None,
) -> None:
    """Add realistic surveys and simulated responses (to a state file or a running sandbox)."""
    _one_target(state_file, url)
    _check_token(token)
    if not builtin and surveys == 0:
        fail("nothing to seed: use --surveys N and/or --builtin", 2)
    from qualflow.sandbox.seed import BUILTIN_SURVEYS

    planned = (surveys + (len(BUILTIN_SURVEYS) if builtin else 0)) * responses
    if planned > MAX_TOTAL_RESPONSES:
        fail(
            f"{planned:,} responses in all is more than {MAX_TOTAL_RESPONSES:,}; "
            "ask for fewer --surveys or --responses",
            2,
        )
    try:
        _seed(surveys, responses, builtin, rng_seed, state_file, url, token)
    except KeyboardInterrupt:
        _interrupted(url, state_file, f"what was added so far stays in the sandbox at {url}")


def _seed(
    surveys: int,
    responses: int,
    builtin: bool,
    rng_seed: int,
    state_file: Path | None,
    url: str | None,
    token: str | None,
) -> None:
    from qualflow.sandbox.seed import BUILTIN_SURVEYS

    if url is not None:
        with _remote(url) as client, _progress() as progress:
            owner = {} if token is None else {"ownerId": _remote_user(client, token)}
            ids: list[str] = []
            created = 0
            task = progress.add_task("surveys", total=surveys + (4 if builtin else 0))
            if builtin:
                made = _control(client, "seed", {"builtin": True, **owner})
                ids += made["surveyIds"]
                created += len(made.get("created", made["surveyIds"]))
                progress.advance(task, 4)
            for i in range(surveys):
                made = _control(
                    client,
                    "seed",
                    {"builtin": False, "surveys": 1, "seed": rng_seed + i, **owner},
                )
                ids += made["surveyIds"]
                created += len(made["surveyIds"])
                progress.advance(task)
            total = 0
            if responses:
                rtask = progress.add_task("responses", total=responses * len(ids))
                for n, sid in enumerate(ids):
                    left = responses
                    while left:
                        chunk = min(left, 200)
                        body = {
                            "surveyId": sid,
                            "count": chunk,
                            "seed": rng_seed * 7919 + n * 104729 + left,
                        }
                        _control(client, "respond", body)
                        left -= chunk
                        total += chunk
                        progress.advance(rtask, chunk)
        typer.echo(f"seeded {_surveys(len(ids), created)} and {total} responses at {url}")
        return
    from qualflow.sandbox.respondents import Simulator
    from qualflow.sandbox.seed import generated_survey, seed_builtin

    state = _load_state(state_file)
    if token is None:
        owner_id = state.default_user()[0].id
    else:
        user = state.user_for_token(token)
        if user is None:
            fail(_NO_SUCH_TOKEN)
        owner_id = user.id
    before = set(state.surveys)
    made_surveys = []
    made_responses = 0
    with _progress() as progress, _StopBetweenRecords() as stop:
        task = progress.add_task(
            "surveys", total=surveys + (len(BUILTIN_SURVEYS) if builtin else 0)
        )
        if builtin:
            # Seeding again reuses the built-in surveys already there instead of adding copies.
            made_surveys += seed_builtin(state, owner_id=owner_id, reuse_existing=True)
            progress.advance(task, len(BUILTIN_SURVEYS))
        rng = random.Random(rng_seed)  # one generator for them all, as seed_generated uses
        for _ in range(surveys):
            if stop.asked.is_set():
                break
            made_surveys.append(generated_survey(state, rng, owner_id=owner_id))
            progress.advance(task)
        if responses:
            rtask = progress.add_task("responses", total=responses * len(made_surveys))
            for n, survey in enumerate(made_surveys):
                sim = Simulator(state, survey.id, seed=rng_seed + n)
                for _ in range(responses):
                    if stop.asked.is_set():
                        break
                    sim.run(1)
                    made_responses += 1
                    progress.advance(rtask)
    _save(state)
    if stop.asked.is_set():
        fail(
            f"interrupted; {_surveys(len(made_surveys), len(set(state.surveys) - before))} and "
            f"{made_responses} responses made so far were saved to {state_file}",
            EXIT_INTERRUPTED,
        )
    created = sum(1 for survey in made_surveys if survey.id not in before)
    typer.echo(
        f"seeded {_surveys(len(made_surveys), created)} and "
        f"{made_responses} responses into {state_file}"
    )


def _surveys(seeded: int, created: int) -> str:
    if seeded == created:
        return f"{seeded} surveys"
    return f"{seeded} surveys ({created} new, {seeded - created} already there)"


@app.command()
def respond(
    survey_id: Annotated[str, typer.Argument(help="Survey id (SV_…).")],
    count: Annotated[
        int,
        typer.Option(
            "--count",
            "-n",
            help=f"Respondents to simulate (at most {MAX_TOTAL_RESPONSES:,}).",
            min=1,
            max=MAX_TOTAL_RESPONSES,
        ),
    ] = 10,
    rate: Annotated[
        float,
        typer.Option(
            "--rate",
            "-r",
            help=f"Responses per second (0 = as fast as possible; at most {MAX_RATE:,}).",
            min=0,
            max=MAX_RATE,
        ),
    ] = 0.0,
    rng_seed: Annotated[
        int | None,
        typer.Option("--seed", help="Random seed for the same answers every run (default: new)."),
    ] = None,
    abandon_rate: Annotated[
        float,
        typer.Option(
            help="Share (0-1) who abandon part-way, recorded as partial responses.", min=0, max=1
        ),
    ] = 0.15,
    bot_rate: Annotated[
        float,
        typer.Option(
            help="Share (0-1) of bots: straight-lined answers, low Q_RecaptchaScore, high "
            "Q_RelevantIDFraudScore (fraud fields only where the survey enables them).",
            min=0,
            max=1,
        ),
    ] = 0.05,
    duplicate_rate: Annotated[
        float,
        typer.Option(
            help="Share (0-1) reusing an earlier respondent's email (Q_RelevantIDDuplicate).",
            min=0,
            max=1,
        ),
    ] = 0.05,
    state_file: StateFile = None,
    url: Url = None,
) -> None:
    """Simulate respondents completing or abandoning SURVEY_ID (webhooks fire on a live sandbox)."""
    _one_target(state_file, url)
    _check_survey_id(survey_id)
    if state_file is not None and not state_file.exists():
        fail(
            f"cannot respond to {survey_id}: state file {state_file} does not exist "
            f"(create it with `qualflow sandbox seed -f {state_file}`)"
        )
    profile = {"abandonRate": abandon_rate, "botRate": bot_rate, "duplicateRate": duplicate_rate}
    # Paced in batches: one batch per tick keeps the achieved rate close to the asked one; under
    # 1/s a tick is one response (a batch of 200 would send them all at once, then wait).
    batch = max(1, min(200, int(rate))) if rate else 200
    interval = batch / rate if rate else 0.0
    completed = partial = done = 0
    started = time.monotonic()
    try:
        with _progress() as progress:
            task = progress.add_task(f"responding to {survey_id}", total=count)
            if url is not None:
                with _remote(url) as client:
                    while done < count:
                        chunk = min(batch, count - done)
                        body: dict[str, Any] = {"surveyId": survey_id, "count": chunk, **profile}
                        if rng_seed is not None:
                            body["seed"] = rng_seed + done
                        result = _control(client, "respond", body)
                        completed += result["completed"]
                        partial += result["partial"]
                        done += chunk
                        progress.advance(task, chunk)
                        if rate and done < count:
                            _pace(started, done / batch * interval)
            else:
                from qualflow.sandbox.errors import ApiError
                from qualflow.sandbox.respondents import Profile, Simulator

                state = _load_state(state_file)
                try:
                    sim = Simulator(
                        state, survey_id, seed=rng_seed, profile=Profile.from_json(profile)
                    )
                except ApiError as exc:
                    fail(exc.message)
                with _StopBetweenRecords() as stop:
                    while done < count and not stop.asked.is_set():
                        (response,) = sim.run(1)
                        completed += response.finished
                        partial += not response.finished
                        done += 1
                        progress.advance(task)
                        if rate and done < count:
                            stop.pace(started, done / rate)
                _save(state)
                if stop.asked.is_set():
                    fail(
                        f"interrupted; {done} of {count} responses were recorded and saved "
                        f"to {state_file}",
                        EXIT_INTERRUPTED,
                    )
    except KeyboardInterrupt:
        _interrupted(url, state_file, f"{done} of {count} responses were recorded")
    typer.echo(f"{completed} completed and {partial} partial responses recorded for {survey_id}")


def _check_survey_id(survey_id: str) -> None:
    if not SURVEY_ID.fullmatch(survey_id):
        fail(f"{survey_id!r} is not a survey id (expected SV_ and letters and digits)", 2)


def _pace(started: float, due: float) -> None:
    delay = started + due - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# -- fault injection -------------------------------------------------------------------------

faults_app = typer.Typer(
    no_args_is_help=True,
    help="Make a running sandbox fail on purpose: errors, latency, hangs, the brand rate limit.",
)
app.add_typer(faults_app, name="faults")
LiveUrl = Annotated[str, typer.Option("--url", help=_URL_HELP)]


@faults_app.command("ls")
def faults_ls(
    url: LiveUrl,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print JSON for scripts: the rules and rateLimitPerMinute, as the sandbox's "
            "control API (GET /_sandbox/faults) answers them.",
        ),
    ] = False,
) -> None:
    """List the fault rules (with how many calls each has hit) and the brand rate limit."""
    with _remote(url) as client:
        faults = _control(client, "faults", method="GET")
    if as_json:
        typer.echo(json.dumps(faults, indent=2))
        return
    if faults["rules"]:
        Console().print(_fault_table(faults["rules"]))
    else:
        err.print("no fault rules")
    limit = faults["rateLimitPerMinute"]
    err.print(f"brand rate limit: {f'{limit:,}/min' if limit else 'off'}", highlight=False)


def _fault_table(rules: list[dict[str, Any]]) -> Table:
    table = Table("Id", "Method")
    # The pattern is what a rule is about: fold it on a narrow terminal rather than cut it.
    table.add_column("Path", overflow="fold")
    for name in ("Status", "Rate", "Retry-After", "Latency", "Hang", "Calls left", "Hits"):
        table.add_column(name)
    for rule in rules:
        table.add_row(
            # A glob's [ab] is not rich markup.
            str(rule["id"]), rule["method"] or "any", Text(rule["path"]),
            str(rule["status"] or "—"), f"{rule['rate']:g}",
            "—" if rule["retryAfter"] is None else f"{rule['retryAfter']} s",
            f"{rule['latency']:g} s", f"{rule['hang']:g} s",
            "no limit" if rule["count"] is None else str(rule["count"]), str(rule["hits"]),
        )  # fmt: skip
    return table


@faults_app.command("add")
def faults_add(
    url: LiveUrl,
    path: Annotated[
        str,
        typer.Option(
            help="Shell-style pattern over the request path, e.g. /API/v3/surveys* or "
            "/raas/v2/orders."
        ),
    ] = "*",
    method: Annotated[
        HttpMethod | None, typer.Option(case_sensitive=False, help="Only this HTTP method.")
    ] = None,
    status: Annotated[
        int | None, typer.Option(help="Answer this error: 429, 500, 503 or 504.")
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of matching calls affected.")
    ] = 1.0,
    retry_after: Annotated[
        int | None,
        typer.Option(min=0, max=MAX_RETRY_AFTER, help="Retry-After seconds (429: 1 unless given)."),
    ] = None,
    latency: Annotated[
        float,
        typer.Option(
            min=0.0, max=MAX_DELAY, help=f"Seconds added to each call (at most {MAX_DELAY:g})."
        ),
    ] = 0.0,
    hang: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=MAX_DELAY,
            help=f"Seconds to stall, then answer 504 (a timeout; at most {MAX_DELAY:g}).",
        ),
    ] = 0.0,
    count: Annotated[
        int | None, typer.Option(min=1, help="Affect this many calls, then stop.")
    ] = None,
) -> None:
    """Add a fault rule; prints its id. Give at least one of --status, --latency, --hang."""
    body = {
        "path": path, "method": method and method.value, "status": status, "rate": rate,
        "retryAfter": retry_after, "latency": latency, "hang": hang, "count": count,
    }  # fmt: skip
    with _remote(url) as client:
        rule = _control(client, "faults", body)
    typer.echo(str(rule["id"]))


@faults_app.command("rm")
def faults_rm(url: LiveUrl, rule_id: Annotated[int, typer.Argument(help="The rule's id.")]) -> None:
    """Remove one fault rule."""
    with _remote(url) as client:
        _control(client, f"faults/{rule_id}", method="DELETE")
    typer.echo(f"removed fault rule {rule_id}")


@faults_app.command("clear")
def faults_clear(url: LiveUrl) -> None:
    """Remove every fault rule and pending export failure (the rate limit stays as it is).

    Pending Tango order failures (tango-fail) and email refusals (tango-refuse) end too.
    """
    with _remote(url) as client:
        _control(client, "faults", method="DELETE")
    typer.echo("removed every fault rule and pending export failure")


@faults_app.command("rate-limit")
def faults_rate_limit(
    url: LiveUrl,
    per_minute: Annotated[
        int | None,
        typer.Argument(
            min=1, max=MAX_RATE_LIMIT, help="Requests per minute for the brand (Qualtrics: 3000)."
        ),
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Switch the limit off.")] = False,
) -> None:
    """Switch the brand rate limit on (429 with Retry-After beyond it) or --off."""
    if off == (per_minute is not None):
        fail("give the requests per minute (e.g. 3000) or --off", 2)
    with _remote(url) as client:
        _control(client, "faults/rate-limit", {"perMinute": per_minute}, method="PUT")
    typer.echo(
        "brand rate limit: off" if per_minute is None
        else f"brand rate limit: {per_minute} requests per minute"
    )  # fmt: skip


@faults_app.command("fail-exports")
def faults_fail_exports(
    url: LiveUrl,
    survey_id: Annotated[
        str | None, typer.Option("--survey", help="Only this survey's exports (SV_…).")
    ] = None,
    count: Annotated[int, typer.Option(min=1, max=1000, help="How many exports fail.")] = 1,
) -> None:
    """Make the next exports end with status "failed"."""
    if survey_id is not None:
        _check_survey_id(survey_id)
    with _remote(url) as client:
        _control(client, "faults/exports", {"surveyId": survey_id, "count": count})
    which = f"export(s) of {survey_id}" if survey_id else "export(s)"
    typer.echo(f"the next {count} {which} will fail")


def _tango_control(url: str, path: str, body: dict[str, Any]) -> None:
    with _remote(url) as client:
        resp = client.post(f"/_sandbox/tango/{path}", json=body)
    if resp.status_code == 200:
        return
    try:
        problems = resp.json()["errors"]
        message = "; ".join(str(problem["message"]) for problem in problems)
    except (ValueError, KeyError, TypeError):
        message = f"{url} did not answer like a qualflow sandbox (HTTP {resp.status_code})"
    fail(message, 2 if resp.status_code == 400 else 1)


@faults_app.command("tango-fail")
def faults_tango_fail(
    url: LiveUrl,
    status: Annotated[
        int, typer.Option(min=400, max=599, help="Answer the orders with this status, e.g. 503.")
    ],
    count: Annotated[int, typer.Option(min=1, max=1000, help="How many orders fail.")] = 1,
    message: Annotated[
        str | None, typer.Option(help="The error message in Tango's error body.")
    ] = None,
    retry_after: Annotated[
        int | None, typer.Option(min=0, max=MAX_RETRY_AFTER, help="Retry-After seconds to send.")
    ] = None,
    after_placing: Annotated[
        bool,
        typer.Option(
            "--after-placing",
            help="Place and charge each order first, then fail its answer (a retry with the "
            "same externalRefID must find it, not order again).",
        ),
    ] = False,
) -> None:
    """Make the Tango double answer its next orders (POST /raas/v2/orders) with an error."""
    body: dict[str, Any] = {"status": status, "count": count, "afterPlacing": after_placing}
    if message is not None:
        body["message"] = message
    if retry_after is not None:
        body["retryAfter"] = retry_after
    _tango_control(url, "failures", body)
    placed = ", after placing and charging them," if after_placing else ""
    typer.echo(f"the next {count} Tango order(s) will{placed} answer HTTP {status}")


@faults_app.command("tango-refuse")
def faults_tango_refuse(
    url: LiveUrl,
    email: Annotated[str, typer.Argument(help="The recipient email to refuse (any case).")],
    status: Annotated[
        int, typer.Option(min=400, max=499, help="Refuse with this 4xx status.")
    ] = 400,
    message: Annotated[
        str | None, typer.Option(help="The error message in Tango's error body.")
    ] = None,
) -> None:
    """Make the Tango double refuse every order for one recipient email with a 4xx.

    'qualflow sandbox faults clear' ends the refusal.
    """
    body: dict[str, Any] = {"email": email, "status": status}
    if message is not None:
        body["message"] = message
    _tango_control(url, "refusals", body)
    typer.echo(f"Tango orders for {email.strip().lower()} will be refused with HTTP {status}")
