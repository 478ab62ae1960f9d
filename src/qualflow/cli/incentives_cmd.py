"""``qualflow incentives``: incentives, the review queue, gift-code pools, Tango accounts, keys.

Every command works on the configured database (``QUALFLOW_*``), prints a table (or ``--json``)
and fails with exit code 1 and a one-line reason. Actions are recorded as done by the operating
system user (``cli:<user>``).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from qualflow.cli.common import (
    EXIT_USAGE,
    MAX_ID,
    NoBlankLineProgress,
    captured_log,
    fail,
    hub_store,
    load_settings,
    one_line,
    parse_statuses,
    print_listing,
    read_input_file,
    replace_file,
    secret_from_stdin,
)
from qualflow.validation import describe_errors

if TYPE_CHECKING:
    from qualflow.incentives.service import ActionResult

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Incentives: reward respondents.")
rewards_app = typer.Typer(no_args_is_help=True, help="Rewards and the review queue.")
pools_app = typer.Typer(no_args_is_help=True, help="Gift-code pools.")
tango_app = typer.Typer(no_args_is_help=True, help="Tango RaaS accounts.")
keys_app = typer.Typer(no_args_is_help=True, help="Platform API keys (HTTP Basic for callers).")
app.add_typer(rewards_app, name="rewards")
app.add_typer(pools_app, name="pools")
app.add_typer(tango_app, name="tango")
app.add_typer(keys_app, name="keys")

# Names, reasons and emails are people's text: read as rich markup, a '[/]' in one ended the
# command in a MarkupError traceback and a '[bold]' vanished. Styles are given as Text instead.
_out = Console(markup=False)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ActiveOption = Annotated[bool, typer.Option("--active", help="Open ones only.")]
PausedOption = Annotated[bool, typer.Option("--paused", help="Paused ones only.")]
KeyIdArgument = Annotated[
    int, typer.Argument(min=1, max=MAX_ID, help="Key id (see 'keys ls').", show_default=False)
]


def _not_blank(value: str | None) -> str | None:
    # An empty id (an unset shell variable) would otherwise end in "incentive  does not exist".
    if value is not None and not value.strip():
        fail("an empty reference id was given (an unset shell variable?)", EXIT_USAGE)
    return value


IncentiveArgument = Annotated[
    str,
    typer.Argument(
        help="Incentive reference id, e.g. INC-7F3K2Q (see 'incentives ls'; any case).",
        callback=_not_blank,
        show_default=False,
    ),
]
RewardArgument = Annotated[
    str,
    typer.Argument(
        help="Reward reference id, e.g. RW-7F3K2QMX (see 'rewards ls'; any case).",
        callback=_not_blank,
        show_default=False,
    ),
]
_APPROVAL_MODES = (
    "automatic: pay unless a fraud rule holds it; review_suspicious: also hold what the "
    "cross-response signals flag; review_all: hold every reward for review."
)
_MAX_REWARDS = "The most rewards it pays (more are held)."
_BUDGET = "The most it pays in all, in its currency (more is held)."
_OPENS_AT = (
    "When it starts rewarding (earlier requests are held): ISO 8601 with a time zone, "
    "e.g. 2025-06-01T00:00:00Z."
)
_CLOSES_AT = (
    "When it stops rewarding (later requests are held): ISO 8601 with a time zone, "
    "e.g. 2025-06-30T23:59:00Z."
)


def _id_column(header: str, width: int) -> Column:
    return Column(header, no_wrap=True, min_width=width)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@contextmanager
def _runtime() -> Iterator[Any]:
    """The incentives runtime over the configured database; one-line errors on failure."""
    from qualflow.incentives.runtime import IncentiveOptions, build_runtime

    settings = load_settings()
    with hub_store(settings) as store:
        try:
            yield build_runtime(store.sessionmaker, settings, IncentiveOptions())
        except typer.Exit:
            raise
        except KeyError as exc:  # str() of a KeyError is the repr of its argument
            fail(str(exc.args[0]) if exc.args else "not found")
        except (LookupError, ValueError) as exc:
            fail(str(exc))
        except Exception as exc:
            message = getattr(exc, "message", None)  # an API error's readable message
            if isinstance(message, str) and message:
                fail(message)
            fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _load_json(path: Path) -> dict[str, Any]:
    raw = read_input_file(path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text")
    except ValueError as exc:
        fail(f"{path} is not JSON: {exc}")
    if not isinstance(data, dict):
        fail(f"{path} must hold a JSON object")
    return data


def _file_and_options(path: Path | None, **options: Any) -> dict[str, Any]:
    """The JSON object in ``path`` (if given), with the options that were given on top."""
    data = _load_json(path) if path else {}
    data.update({key: value for key, value in options.items() if value is not None})
    return data


# -- incentives -----------------------------------------------------------------------------------


@app.command("ls")
def incentives_ls(
    as_json: JsonOption = False,
    only_active: ActiveOption = False,
    only_paused: PausedOption = False,
) -> None:
    """List incentives with their reward counts."""
    from qualflow.incentives.views import IncentiveOut

    active = _active_or_paused(only_active, only_paused)
    with _runtime() as runtime:
        incentives = runtime.manager.list_incentives(active=active)
        counts = runtime.manager.counts([i.id for i in incentives])
        rows = [IncentiveOut.of(i, counts[i.id]) for i in incentives]
    if as_json:
        _json([row.model_dump(mode="json") for row in rows])
        return
    table = Table(
        _id_column("Reference", 10), "Name", "Provider", "Value", "State", "Held", "Sent", "Total"
    )
    for row in rows:
        counted = row.counts
        table.add_row(
            row.reference_id, row.name, row.provider, f"{row.amount} {row.currency}", row.state,
            str(counted.held if counted else 0), str(counted.sent if counted else 0),
            str(counted.total if counted else 0),
        )  # fmt: skip
    print_listing(
        _out,
        table,
        "No incentives match." if active is not None
        else "No incentives yet: create one with qualflow incentives create (or in the web UI).",
    )  # fmt: skip


@app.command("show")
def incentives_show(reference: IncentiveArgument, as_json: JsonOption = False) -> None:
    """Show one incentive."""
    from qualflow.incentives.views import IncentiveOut

    with _runtime() as runtime:
        incentive = runtime.manager.get(reference)
        out = IncentiveOut.of(incentive, runtime.manager.counts([incentive.id])[incentive.id])
    if as_json:
        _json(out.model_dump(mode="json"))
        return
    record = out.model_dump(mode="json", exclude={"email_body", "fraud_rules"})
    for money in ("amount", "budget", "committed_amount"):
        # "Budget 100.00" alone leaves the reader to find the currency a few lines up.
        if record.get(money) is not None:
            record[money] = f"{record[money]} {record['currency']}"
    _out.print(_fields(record))


def _active_or_paused(active: bool, paused: bool) -> bool | None:
    """True for --active, False for --paused, None for neither; both is a contradiction."""
    if active and paused:
        fail("give --active or --paused, not both", EXIT_USAGE)
    return True if active else False if paused else None


def _fields(record: dict[str, Any]) -> Table:
    """A record as label/value rows; unset fields are left out."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in record.items():
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, dict):
            shown = " · ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            shown = ", ".join(str(v) for v in value) or "—"
        else:
            shown = str(value)
        grid.add_row(key.replace("_", " ").capitalize(), shown)
    return grid


@app.command("create")
def incentives_create(
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="JSON incentive spec (the REST API's fields, e.g. email_body, fraud_rules); "
            "the options given override its fields.",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Its name, shown to people (required).")] = None,
    provider: Annotated[
        str | None, typer.Option(help="tango, gift_codes or manual (required).")
    ] = None,
    amount: Annotated[
        str | None,
        typer.Option(
            help="Value of each reward, e.g. 10 or 12.50 (a fixed-value Tango item: "
            "optional, its face value)."
        ),
    ] = None,
    currency: Annotated[
        str | None, typer.Option(help="ISO 4217 code of the amount, e.g. USD.")
    ] = None,
    pool: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_ID, help="Gift-code pool id (gift_codes; see 'pools ls')."),
    ] = None,
    tango_account: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_ID, help="Tango account id (tango; see 'tango ls')."),
    ] = None,
    utid: Annotated[
        str | None, typer.Option(help="Tango catalog item (tango; see 'tango catalog ID').")
    ] = None,
    approval_mode: Annotated[
        str | None, typer.Option(help=f"{_APPROVAL_MODES} Default: review_suspicious.")
    ] = None,
    max_rewards: Annotated[
        int | None, typer.Option(help=f"{_MAX_REWARDS} Default: no limit.")
    ] = None,
    budget: Annotated[str | None, typer.Option(help=f"{_BUDGET} Default: no limit.")] = None,
    opens_at: Annotated[str | None, typer.Option(help=f"{_OPENS_AT} Default: at once.")] = None,
    closes_at: Annotated[str | None, typer.Option(help=f"{_CLOSES_AT} Default: never.")] = None,
    alert_email: Annotated[
        list[str] | None,
        typer.Option(help="Who gets its alerts (repeat for several). Default: the managers."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an incentive from a JSON spec and/or options; prints its reference id."""
    from qualflow.incentives.manage import IncentiveError
    from qualflow.incentives.schemas import IncentiveSpec
    from qualflow.incentives.views import IncentiveOut

    data = _file_and_options(
        spec_file,
        name=name, provider=provider, amount=amount, currency=currency,
        gift_code_pool_id=pool, tango_account_id=tango_account, utid=utid,
        approval_mode=approval_mode, max_rewards=max_rewards, budget=budget,
        opens_at=opens_at, closes_at=closes_at, alert_emails=alert_email,
    )  # fmt: skip
    try:
        spec = IncentiveSpec.model_validate(data)
    except ValidationError as exc:
        fail(describe_errors(exc))
    with _runtime() as runtime:
        try:
            incentive = asyncio.run(runtime.manager.create(spec, actor=_actor()))
        except IncentiveError as exc:
            fail(str(exc))
    if as_json:
        _json(IncentiveOut.of(incentive).model_dump(mode="json"))
    else:
        typer.echo(incentive.reference_id)


@app.command("update")
def incentives_update(
    reference: IncentiveArgument,
    patch_file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help='JSON with the fields to change (null clears one, e.g. {"max_rewards": '
            "null}); the options given override its fields.",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Its new name.")] = None,
    amount: Annotated[
        str | None, typer.Option(help="New value of each reward (in its currency).")
    ] = None,
    approval_mode: Annotated[str | None, typer.Option(help=_APPROVAL_MODES)] = None,
    max_rewards: Annotated[int | None, typer.Option(help=_MAX_REWARDS)] = None,
    budget: Annotated[str | None, typer.Option(help=_BUDGET)] = None,
    opens_at: Annotated[str | None, typer.Option(help=_OPENS_AT)] = None,
    closes_at: Annotated[str | None, typer.Option(help=_CLOSES_AT)] = None,
    make_active: Annotated[bool, typer.Option("--active", help="Open it.")] = False,
    make_paused: Annotated[bool, typer.Option("--paused", help="Pause it.")] = False,
    alert_email: Annotated[
        list[str] | None,
        typer.Option(help="Who gets its alerts from now on (repeat for several)."),
    ] = None,
    managers_get_alerts: Annotated[
        bool,
        typer.Option(
            "--managers-get-alerts", help="Clear its alert recipients: the managers get them."
        ),
    ] = False,
) -> None:
    """Change an incentive from a JSON patch and/or options; the rest stays as it is.

    The result is validated again with its provider (e.g. a Tango item's range).

    A max rewards or budget below what is already committed is saved, with a warning on stderr.
    """
    from qualflow.incentives.manage import IncentiveError
    from qualflow.incentives.schemas import IncentivePatch

    if alert_email and managers_get_alerts:
        fail("give --alert-email or --managers-get-alerts, not both", EXIT_USAGE)
    active = _active_or_paused(make_active, make_paused)
    data = _file_and_options(
        patch_file,
        name=name, amount=amount, approval_mode=approval_mode, max_rewards=max_rewards,
        budget=budget, opens_at=opens_at, closes_at=closes_at, active=active,
        alert_emails=[] if managers_get_alerts else alert_email,
    )  # fmt: skip
    if not data:
        fail("nothing to change: give --file PATCH.json or an option (see --help)", EXIT_USAGE)
    try:
        patch = IncentivePatch.model_validate(data)
    except ValidationError as exc:
        fail(describe_errors(exc))
    with _runtime() as runtime:
        try:
            incentive, warnings = asyncio.run(
                runtime.manager.update_with_warnings(reference, patch, actor=_actor())
            )
        except IncentiveError as exc:
            fail(str(exc))
    for warning in warnings:  # saved all the same: exit code 0
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"updated {incentive.reference_id}")


@app.command("delete")
def incentives_delete(reference: IncentiveArgument) -> None:
    """Delete an incentive that has no rewards."""
    with _runtime() as runtime:
        runtime.manager.delete(reference)
    typer.echo(f"deleted {reference.upper()}")


@app.command("review")
def incentives_review(reference: IncentiveArgument, as_json: JsonOption = False) -> None:
    """Configuration review: survey, email source, provider health, limits, fraud rules."""
    from qualflow.incentives.review import load_review
    from qualflow.incentives.views import review_out

    with _runtime() as runtime:
        review = review_out(asyncio.run(load_review(runtime, reference)))
    if as_json:
        _json(review.model_dump(mode="json"))
        return
    health = review.provider
    _out.print(Text.assemble((review.incentive.reference_id, "bold"), " ", review.incentive.name))
    _out.print(f"provider: {'OK' if health.ok else 'PROBLEM'} — {health.summary}")
    _out.print(f"approval: {review.incentive.approval_mode}")
    for automation in review.automations:
        _out.print(
            f"automation {automation.name}: survey "
            f"{automation.survey_name or automation.survey_id}, "
            f"email from {automation.email_source} {automation.email_field or ''}"
        )
    _out.print(f"limits: {review.limits['summary']}")
    for rule in review.fraud_rules:
        _out.print(f"rule: {rule}")
    for warning in review.warnings:
        _out.print(Text.assemble(("warning", "yellow"), f": {warning}"))
    if not review.warnings:
        _out.print(Text("no warnings", style="green"))


#: The statuses a reward's reasons explain; in any other (released or retried since), they are
#: why it was held or failed earlier.
_STATUSES_WITH_A_REASON = ("pending", "held", "blocked", "failed", "cancelled")


def _listed_reasons(status: str, reasons: list[str]) -> str:
    joined = "; ".join(reasons)
    if not joined or status in _STATUSES_WITH_A_REASON:
        return joined
    return f"earlier: {joined}"


@app.command("fulfil")
def incentives_fulfil() -> None:
    """Pay every reward that is due now (approved, retries), then exit."""
    with _runtime() as runtime:
        handled = _drain(runtime)
    typer.echo(f"handled {handled} reward(s)")


# -- rewards --------------------------------------------------------------------------------------


def _check_statuses(statuses: list[str] | None) -> list[str]:
    """The statuses given, as stored: lower case, and one each of 'held,approved' (what a
    person may type, as other tools take lists); an unknown one is a usage error."""
    from qualflow.incentives.models import check_statuses

    return parse_statuses(statuses, check_statuses)


StatusOption = Annotated[
    list[str] | None,
    typer.Option(
        help="Only rewards in this status (repeat or comma-separate for several): pending, "
        "held, approved, ordered, sent, blocked, failed or cancelled. Default: all.",
        show_default=False,
    ),
]


@rewards_app.command("ls")
def rewards_ls(
    incentive: Annotated[
        str | None,
        typer.Option(
            help="Only this incentive's rewards (reference id, e.g. INC-7F3K2Q).",
            callback=_not_blank,
        ),
    ] = None,
    status: StatusOption = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10000, help="Show at most this many, the newest first.")
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """List rewards, newest first (the review queue: --status held)."""
    # Before the database is opened: a bad --status is refused at once.
    status = _check_statuses(status)

    from qualflow.incentives.service import get_incentive
    from qualflow.incentives.views import reward_page

    with _runtime() as runtime, runtime.factory() as session:
        incentive_id = None if incentive is None else get_incentive(session, incentive).id
        page = reward_page(session, incentive_id=incentive_id, statuses=status, limit=limit)
    rows, total = page.items, page.total
    if total > len(rows):
        # Otherwise a long review queue looks like it has exactly --limit rewards in it.
        typer.echo(
            f"note: showing the newest {len(rows)} of {total} rewards; "
            "--limit shows more (up to 10000)",
            err=True,
        )
    if as_json:
        _json([row.model_dump(mode="json") for row in rows])
        return
    # The ids are what a reader copies into the next command: never cut, whatever the width.
    table = Table(
        _id_column("Reward", 11), _id_column("Incentive", 10), _id_column("Status", 9),
        Column("Email", overflow="fold"), _id_column("Value", 9), "Reasons",
        Column("Created", overflow="fold"),
    )  # fmt: skip
    for row in rows:
        table.add_row(
            row.reference_id, row.incentive, row.status, row.email,
            f"{row.amount} {row.currency}",
            _shortened(_listed_reasons(row.status, row.reasons), 80),
            row.created_at.strftime("%Y-%m-%d %H:%M"),
        )  # fmt: skip
    print_listing(
        _out,
        table,
        "No rewards match." if incentive or status
        else "No rewards yet: they come from an automation's incentives.send_reward step or "
        "the platform API (see 'incentives review').",
    )  # fmt: skip


def _shortened(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis that says it was cut
    ('rewards show' has it all)."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


@rewards_app.command("show")
def rewards_show(reference: RewardArgument, as_json: JsonOption = False) -> None:
    """Show a reward and its transitions (who, why, when)."""
    from qualflow.incentives.views import reward_detail

    with _runtime() as runtime, runtime.factory() as session:
        try:
            detail = reward_detail(session, reference)
        except Exception as exc:
            fail(getattr(exc, "message", str(exc)))
    if as_json:
        _json(detail.model_dump(mode="json"))
        return
    _out.print(Text.assemble((detail.reference_id, "bold"), f" {detail.status} — {detail.email}"))
    _out.print(
        f"  {detail.amount} {detail.currency} from {detail.incentive} ({detail.provider})"
        + (f", {detail.delivery}" if detail.delivery else "")
    )
    # Why it is held, blocked, failed or cancelled; once released or retried (and paid), that
    # is its history, not its state.
    if detail.status in _STATUSES_WITH_A_REASON:
        label = "reason"
    elif any(t.to_status == "held" for t in detail.transitions):
        label = "was held"
    else:
        label = "earlier"
    for reason in detail.reasons:
        _out.print(f"  {label}: {reason}")
    for warning in detail.warnings:
        _out.print(f"  warning: {warning}")
    if detail.last_error and detail.status not in ("sent", "blocked", "cancelled"):
        # A reward paid but not emailed says why only here.
        _out.print(f"  last error: {detail.last_error}")
    for t in detail.transitions:
        _out.print(
            f"  {t.at:%Y-%m-%d %H:%M:%S} {t.from_status or '∅'} → {t.to_status} by {t.actor}"
            + (f": {t.reason}" if t.reason else "")
        )


@dataclass(frozen=True)
class _Outcome:
    """What a bulk action did to one reward, as it is after the payment attempt that follows."""

    result: ActionResult
    #: "ok", "refused", or why an accepted action still left the respondent without a reward.
    mark: str


def _references(references: list[str]) -> list[str]:
    """The reward ids given, each once: the same reward named twice would be refused the second
    time ("cannot become blocked"), which reads as a failure of the whole command."""
    from qualflow.incentives.ids import normalize_reference

    kept: list[str] = []
    for reference in references:
        normalized = normalize_reference(reference)
        if not normalized:
            fail("an empty reward reference id was given (an unset shell variable?)")
        if normalized not in kept:
            kept.append(normalized)
    return kept


def _outcomes(results: list[ActionResult]) -> list[_Outcome]:
    return [_Outcome(r, "ok" if r.ok else "refused") for r in results]


def _after_payment(runtime: Any, results: list[ActionResult]) -> list[_Outcome]:
    """Each accepted action as the payment attempt left its reward. The service answers before
    paying, so its status alone would call a released reward that the pool cannot pay
    "ok (approved)" although it is held again."""
    from sqlalchemy import select

    from qualflow.incentives.models import Reward

    accepted = [r.reference_id for r in results if r.ok]
    now: dict[str, _Outcome] = {}
    with runtime.factory() as session:
        query = select(Reward).where(Reward.reference_id.in_(accepted))
        for reward in session.scalars(query) if accepted else ():
            result = next(r for r in results if r.reference_id == reward.reference_id)
            now[reward.reference_id] = _settled(result.message, reward)
    return [now.get(o.result.reference_id, o) for o in _outcomes(results)]


def _settled(done: str, reward: Any) -> _Outcome:
    from qualflow.incentives.service import ActionResult

    ref, status, error = reward.reference_id, reward.status, reward.last_error
    if status in ("held", "failed", "blocked", "cancelled"):
        why = "; ".join(reward.reasons or []) or error or ""
        message = f"{done}, then {status}" + (f": {why}" if why else "")
        return _Outcome(ActionResult(ref, False, status, message), "not paid")
    awaiting_payment = reward.provider == "manual" and reward.paid_at is None
    if status == "ordered" and error and reward.next_attempt_at is None and not awaiting_payment:
        # The email failed for good: nothing retries it, a person has to resend it.
        message = f"{done}, but {error}; send it with 'qualflow incentives rewards resend {ref}'"
        return _Outcome(ActionResult(ref, False, status, message), "not emailed")
    if error and reward.next_attempt_at is not None:
        done += f"; to be tried again by a worker ({error})"
    return _Outcome(ActionResult(ref, True, status, done), "ok")


def _report(outcomes: list[_Outcome], what: str, as_json: bool) -> None:
    """One line per reward on stdout (or the REST bulk answer's JSON), then, if any did not go
    through, one ``error:`` line saying how many and exit code 1."""
    from qualflow.incentives.views import bulk_outcome

    bulk = bulk_outcome([o.result for o in outcomes])
    if as_json:
        _json(bulk.model_dump(mode="json"))
    else:
        for o in outcomes:
            r = o.result
            status = f" ({r.status})" if r.status else ""
            message = f"{' ' if r.ok else ': '}{r.message}" if r.message else ""
            typer.echo(f"{r.reference_id}: {o.mark}{status}{message}")
    if bulk.failed:
        fail(f"{bulk.failed} of {len(outcomes)} reward(s) not {what}")


def _drain_note(notes: list[tuple[int, str]], record: logging.LogRecord) -> None:
    """What paying a reward ran into, as (reward row id, reason); a raw ``reward 9: …`` line
    would name the row id, which no command takes."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], int):
        notes.append((args[0], str(getattr(args[1], "reason", args[1]))))
    else:
        notes.append((0, record.getMessage()))


def _drain(runtime: Any, *, reported: frozenset[str] = frozenset()) -> int:
    """Pay every reward due now; a problem with one not in ``reported`` (which the command
    reports itself) is one ``warning:`` line naming the reward."""
    from sqlalchemy import select

    from qualflow.incentives.models import Reward

    notes: list[tuple[int, str]] = []
    with captured_log("qualflow.incentives.service", lambda r: _drain_note(notes, r)):
        handled: int = asyncio.run(runtime.fulfiller.drain())
    ids = {row_id for row_id, _ in notes if row_id}
    with runtime.factory() as session:
        query = select(Reward.id, Reward.reference_id).where(Reward.id.in_(ids))
        names = {row_id: ref for row_id, ref in session.execute(query)} if ids else {}
    for row_id, reason in notes:
        reference = names.get(row_id, "")
        if reference in reported:
            continue
        named = not reference or reason.startswith(reference)
        typer.echo(f"warning: {reason if named else f'{reference}: {reason}'}", err=True)
    return handled


ReasonOption = Annotated[
    str, typer.Option(help="Why, recorded with each reward's transition (shown in 'rewards show').")
]
RewardsArgument = Annotated[
    list[str], typer.Argument(help="Reward reference ids (RW-…), one or more.", show_default=False)
]


@rewards_app.command("release")
def rewards_release(
    references: RewardsArgument, reason: ReasonOption = "", as_json: JsonOption = False
) -> None:
    """Release held rewards: they are approved and paid at once (each line says how it ended)."""
    wanted = _references(references)
    with _runtime() as runtime:
        results = runtime.service.release(wanted, actor=_actor(), note=reason)
        _drain(runtime, reported=frozenset(wanted))
        outcomes = _after_payment(runtime, results)
    _report(outcomes, "released and paid", as_json)


def _not_to_pay(
    operation: Literal["block", "cancel"], done: str, summary: str
) -> Callable[..., None]:
    """The command ``rewards <operation>``: ``block`` and ``cancel`` both end rewards nobody is
    paid for, with the same options, one line per reward and exit code 1 if any was refused;
    only the service's operation and the words differ."""

    def command(
        references: RewardsArgument, reason: ReasonOption = "", as_json: JsonOption = False
    ) -> None:
        wanted = _references(references)
        with _runtime() as runtime:
            act = runtime.service.block if operation == "block" else runtime.service.cancel
            results = act(wanted, actor=_actor(), reason=reason)
        _report(_outcomes(results), done, as_json)

    command.__name__ = command.__qualname__ = f"rewards_{operation}"
    command.__doc__ = summary
    return rewards_app.command(operation)(command)


rewards_block = _not_to_pay(
    "block", "blocked", "Block held rewards: those respondents are not paid."
)
rewards_cancel = _not_to_pay("cancel", "cancelled", "Cancel rewards nobody was paid for yet.")


@rewards_app.command("retry")
def rewards_retry(references: RewardsArgument, as_json: JsonOption = False) -> None:
    """Try paying failed rewards again, at once (each line says how it ended)."""
    wanted = _references(references)
    with _runtime() as runtime:
        results = runtime.service.retry(wanted, actor=_actor())
        _drain(runtime, reported=frozenset(wanted))
        outcomes = _after_payment(runtime, results)
    _report(outcomes, "paid", as_json)


@rewards_app.command("mark-paid")
def rewards_mark_paid(references: RewardsArgument, as_json: JsonOption = False) -> None:
    """Record manual rewards as paid by hand; their emails go out at once."""
    wanted = _references(references)
    with _runtime() as runtime:
        results = runtime.service.mark_paid(wanted, actor=_actor())
        _drain(runtime, reported=frozenset(wanted))
        outcomes = _after_payment(runtime, results)
    _report(outcomes, "marked paid and emailed", as_json)


@rewards_app.command("resend")
def rewards_resend(
    reference: RewardArgument,
    email: Annotated[
        str | None,
        typer.Option(help="Send it to this address instead, this once (the reward keeps its own)."),
    ] = None,
) -> None:
    """Email a paid reward again."""
    from qualflow.incentives.lifecycle import TransitionError
    from qualflow.incentives.service import RewardFailed

    with _runtime() as runtime:
        try:
            resent = asyncio.run(runtime.service.resend(reference, actor=_actor(), new_email=email))
        except RewardFailed as exc:
            fail(exc.reason)
        except TransitionError as exc:  # else "error: TransitionError: only rewards that …"
            fail(str(exc))
    reward = resent.reward
    # As the UI says it: "sent" when this was the first email to reach the respondent.
    verb = "sent" if resent.first else "resent"
    typer.echo(f"{verb} {reward.reference_id} to {email or reward.email}")


@rewards_app.command("export")
def rewards_export(
    incentive: IncentiveArgument,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="CSV file to write (replaced if it exists); '-' writes to stdout.",
            show_default=False,
        ),
    ],
    status: StatusOption = None,
) -> None:
    """Write an incentive's rewards to CSV (e.g. manual rewards to pay by hand)."""
    from qualflow.incentives.export import rewards_csv
    from qualflow.incentives.service import get_incentive

    status = _check_statuses(status)
    with _runtime() as runtime, runtime.factory() as session:
        text, count = rewards_csv(session, get_incentive(session, incentive), status or None)
    if str(output) == "-":
        # As 'qualflow qualtrics export -o -': the CSV alone on stdout, for a pipe.
        sys.stdout.write(text)
        sys.stdout.flush()
        typer.echo(f"wrote {count} reward(s) to stdout", err=True)
        return
    try:
        replace_file(output, text.encode("utf-8"))
    except ValueError as exc:  # a folder, a socket: never a file to replace
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or one_line(exc)}")
    typer.echo(f"wrote {count} reward(s) to {output}")


# -- pools ----------------------------------------------------------------------------------------


@pools_app.command("ls")
def pools_ls(as_json: JsonOption = False) -> None:
    """List gift-code pools and their stock; incentives running low are warned about."""
    from qualflow.incentives.views import LowStockOut

    with _runtime() as runtime:
        pools = [(p, runtime.manager.pool_stock(p.id)) for p in runtime.manager.pools()]
        running_out = runtime.manager.low_stock()
    if as_json:
        # The text listing's low-stock warnings go to stderr; a script reads them here.
        _json([
            {
                "id": p.id, "name": p.name, "description": p.description, "stock": stock,
                "low_stock": [
                    LowStockOut(
                        **{field: getattr(item, field) for field in LowStockOut.model_fields}
                    ).model_dump(mode="json")
                    for item in running_out if item.pool_id == p.id
                ],
            }
            for p, stock in pools
        ])  # fmt: skip
        return
    table = Table("Id", "Name", "Value", "Unused", "Used", "Expired")
    for pool, stock in pools:
        for entry in stock or [
            {"value": "—", "currency": "", "unused": 0, "used": 0, "expired": 0}
        ]:
            table.add_row(
                str(pool.id), pool.name, f"{entry['value']} {entry['currency']}".strip(),
                str(entry["unused"]), str(entry["used"]), str(entry["expired"]),
            )  # fmt: skip
    print_listing(
        _out,
        table,
        "No gift-code pools yet: create one with qualflow incentives pools create NAME.",
    )
    for item in running_out:
        typer.echo(f"warning: {item.message}", err=True)


@pools_app.command("create")
def pools_create(
    name: Annotated[str, typer.Argument(help="Its name (unique).", show_default=False)],
    description: Annotated[
        str, typer.Option(help="A note for people, e.g. where the codes came from.")
    ] = "",
) -> None:
    """Create a gift-code pool; prints its id."""
    with _runtime() as runtime:
        typer.echo(str(runtime.manager.create_pool(name, description).id))


@pools_app.command("import")
def pools_import(
    pool_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="Pool id (see 'pools ls').")],
    csv_file: Annotated[
        Path,
        typer.Argument(
            help="UTF-8 CSV with a header row code,value,currency[,expiry]; a code already in "
            "the pool (or the file) is skipped, or rejected if its value or expiry differs.",
            show_default=False,
        ),
    ],
) -> None:
    """Import codes from a CSV file (code,value,currency,expiry; expiry YYYY-MM-DD or empty).

    Bad lines are listed on stderr and the rest imported; it fails if nothing could be."""
    raw = read_input_file(csv_file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{csv_file} is not UTF-8 text")
    # On stderr, as every progress display: stdout carries only the result.
    spinner = NoBlankLineProgress(transient=True, console=Console(stderr=True))
    with _runtime() as runtime:
        runtime.manager.pool(pool_id)  # an unknown pool fails before the spinner draws
        with spinner as progress:
            progress.add_task(f"importing {escape(csv_file.name)}", total=None)
            report = runtime.manager.import_codes(pool_id, text)
    typer.echo(f"imported {report.imported}, skipped {report.duplicates} duplicate(s)")
    for error in report.errors:
        typer.echo(f"rejected {error}", err=True)
    if report.errors and not report.imported:
        fail(f"no code imported: {len(report.errors)} line(s) of {csv_file} rejected")
    if not (report.imported or report.duplicates):
        fail(f"{csv_file} has no codes below its header row")


# -- Tango accounts -------------------------------------------------------------------------------


@tango_app.command("ls")
def tango_ls(as_json: JsonOption = False) -> None:
    """List Tango accounts (keys masked)."""
    from qualflow.incentives.views import TangoAccountOut

    with _runtime() as runtime:
        rows = [TangoAccountOut.of(a) for a in runtime.manager.tango_accounts()]
    if as_json:
        _json([row.model_dump(mode="json") for row in rows])
        return
    table = Table("Id", "Name", "Base URL", "Platform", "Key", "Customer", "Account")
    for r in rows:
        table.add_row(
            str(r.id), r.name, r.base_url, r.platform_name, r.platform_key, r.customer_id,
            r.account_id,
        )  # fmt: skip
    print_listing(_out, table, "No Tango accounts yet: add one with qualflow incentives tango add.")


@tango_app.command("catalog")
def tango_catalog(
    account: Annotated[
        int, typer.Argument(min=1, max=MAX_ID, help="Tango account id (see 'tango ls').")
    ],
    as_json: JsonOption = False,
) -> None:
    """List the catalog items an account can order: the utid and amount an incentive needs."""
    from qualflow.incentives.providers.tango_client import TangoError
    from qualflow.incentives.views import CatalogItemOut

    with _runtime() as runtime:
        try:
            items = asyncio.run(runtime.manager.tango_catalog(account))
        except (LookupError, TangoError) as exc:
            fail(str(exc))
    if as_json:
        _json([CatalogItemOut.of(item).model_dump(mode="json") for item in items])
        return
    table = Table("Brand", "Item", Column("UTID", no_wrap=True), Column("Value", no_wrap=True))
    table.add_column("Status")
    for item in items:
        table.add_row(item.brand, item.reward_name, item.utid, item.value, item.status)
    _out.print(table)


TangoNameOption = Annotated[
    str, typer.Option(help="Its name in qualflow (unique).", show_default=False)
]
TangoPlatformOption = Annotated[
    str | None,
    typer.Option(help="Tango platform name (the API user name).", show_default=False),
]
TangoCustomerOption = Annotated[
    str | None, typer.Option(help="Tango customer identifier.", show_default=False)
]
TangoAccountOption = Annotated[
    str | None,
    typer.Option(help="Tango account identifier: the account that pays.", show_default=False),
]


def _key_from_stdin() -> str:
    from qualflow.incentives.manage import MAX_PLATFORM_KEY_LENGTH

    return secret_from_stdin("platform key", "--platform-key-stdin", MAX_PLATFORM_KEY_LENGTH)


def _prompt_key(no_terminal: str) -> str:
    """The platform key typed at a terminal; without one, fail with ``no_terminal``."""
    if not sys.stdin.isatty():
        fail(no_terminal)
    key = str(typer.prompt("Platform key", hide_input=True)).strip()
    if not key:
        fail("the platform key must not be empty")
    return key


@tango_app.command("add")
def tango_add(
    name: TangoNameOption,
    platform_name: TangoPlatformOption,
    customer_id: TangoCustomerOption,
    account_id: TangoAccountOption,
    base_url: Annotated[
        str, typer.Option(help="Tango's API (https://api.tangocard.com for production).")
    ] = "https://integration-api.tangocard.com",
    platform_key: Annotated[
        str | None,
        typer.Option(
            help="The platform key (prefer the prompt, TANGO_PLATFORM_KEY or "
            "--platform-key-stdin: shell history)."
        ),
    ] = None,
    platform_key_stdin: Annotated[
        bool, typer.Option("--platform-key-stdin", help="Read the platform key from stdin.")
    ] = False,
) -> None:
    """Add a Tango account; prints its id.

    The platform key is prompted for, read from TANGO_PLATFORM_KEY, or from stdin with --platform-key-stdin.
    """  # noqa: E501  (one line: typer keeps a later paragraph's line breaks)
    if platform_key is not None and platform_key_stdin:
        fail("give --platform-key or --platform-key-stdin, not both", EXIT_USAGE)
    if platform_key_stdin:
        platform_key = _key_from_stdin()
    elif platform_key is None:
        platform_key = os.environ.get("TANGO_PLATFORM_KEY") or _prompt_key(
            "no platform key given: use --platform-key-stdin, TANGO_PLATFORM_KEY or --platform-key"
        )
    with _runtime() as runtime:
        account = runtime.manager.create_tango_account(
            name=name, base_url=base_url, platform_name=platform_name,
            platform_key=platform_key, customer_id=customer_id, account_id=account_id,
        )  # fmt: skip
    typer.echo(str(account.id))


@tango_app.command("update")
def tango_update(
    account: Annotated[
        int, typer.Argument(min=1, max=MAX_ID, help="Tango account id (see 'tango ls').")
    ],
    name: Annotated[str | None, typer.Option(help="Its new name in qualflow.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Tango's API (https://api.tangocard.com for production).")
    ] = None,
    platform_name: TangoPlatformOption = None,
    customer_id: TangoCustomerOption = None,
    account_id: TangoAccountOption = None,
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key", help="Replace the platform key (prompted for, or TANGO_PLATFORM_KEY)."
        ),
    ] = False,
    platform_key_stdin: Annotated[
        bool,
        typer.Option(
            "--platform-key-stdin", help="Replace the platform key with the one on stdin."
        ),
    ] = False,
) -> None:
    """Change a Tango account, e.g. rotate its platform key; unset options stay as they are."""
    from qualflow.incentives.manage import IncentiveError

    key = None
    if platform_key_stdin:
        key = _key_from_stdin()
    elif new_key:
        key = os.environ.get("TANGO_PLATFORM_KEY") or _prompt_key(
            "no platform key given: use --platform-key-stdin or TANGO_PLATFORM_KEY with --new-key"
        )
    changes = {
        "name": name, "base_url": base_url, "platform_name": platform_name,
        "customer_id": customer_id, "account_id": account_id, "platform_key": key,
    }  # fmt: skip
    if all(value is None for value in changes.values()):
        fail("nothing to change: give at least one option (see --help)", EXIT_USAGE)
    with _runtime() as runtime:
        try:
            runtime.manager.update_tango_account(account, **changes)
        except IncentiveError as exc:
            fail(str(exc))
    typer.echo(f"updated Tango account {account}")


@tango_app.command("rm")
def tango_rm(
    account: Annotated[
        int, typer.Argument(min=1, max=MAX_ID, help="Tango account id (see 'tango ls').")
    ],
) -> None:
    """Delete a Tango account that no incentive uses."""
    from qualflow.incentives.manage import InUse

    with _runtime() as runtime:
        try:
            runtime.manager.delete_tango_account(account)
        except InUse as exc:
            fail(str(exc))
    typer.echo(f"deleted Tango account {account}")


# -- platform API keys ----------------------------------------------------------------------------


@keys_app.command("ls")
def keys_ls(as_json: JsonOption = False) -> None:
    """List platform API keys (masked) and their last use."""
    from qualflow.incentives import api_keys
    from qualflow.incentives.views import ApiKeyOut

    with _runtime() as runtime, runtime.factory() as session:
        rows = [ApiKeyOut.of(key, name) for key, name in api_keys.list_keys(session)]
    if as_json:
        _json([row.model_dump(mode="json") for row in rows])
        return
    table = Table("Id", "Platform", "Name", "Key", "Status", "Last used")
    for r in rows:
        used = r.last_used_at.strftime("%Y-%m-%d %H:%M") if r.last_used_at else "never"
        table.add_row(str(r.id), r.platform, r.display_name, r.key, r.status, used)
    print_listing(
        _out,
        table,
        "No platform API keys yet: create one with qualflow incentives keys create "
        "--platform NAME --name LABEL.",
    )


@keys_app.command("create")
def keys_create(
    platform: Annotated[
        str,
        typer.Option(
            help="The platform calling, e.g. qualtrics: the user name of its HTTP Basic auth.",
            show_default=False,
        ),
    ],
    name: Annotated[
        str, typer.Option(help="A display name, e.g. 'Survey workflow'.", show_default=False)
    ],
) -> None:
    """Create a key (at most two active per platform); prints its id, for 'keys reveal'."""
    from qualflow.incentives import api_keys

    with _runtime() as runtime, runtime.factory() as session:
        key, _raw = api_keys.create_key(
            session, platform=platform, display_name=name, actor=_actor()
        )
        session.commit()
        typer.echo(str(key.id))


@keys_app.command("rename")
def keys_rename(
    key_id: KeyIdArgument,
    name: Annotated[str, typer.Argument(help="The new display name.", show_default=False)],
) -> None:
    """Change a key's display name."""
    from qualflow.incentives import api_keys

    with _runtime() as runtime, runtime.factory() as session:
        api_keys.rename_key(session, key_id, name, actor=_actor())
        session.commit()
    typer.echo(f"renamed key {key_id}")


@keys_app.command("deactivate")
def keys_deactivate(
    key_id: KeyIdArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
) -> None:
    """Deactivate a key for good (callers using it are refused from now on)."""
    from qualflow.incentives import api_keys

    if not yes:
        fail("deactivation cannot be undone; repeat with --yes")
    with _runtime() as runtime, runtime.factory() as session:
        api_keys.deactivate_key(session, key_id, actor=_actor())
        session.commit()
    typer.echo(f"deactivated key {key_id}")


@keys_app.command("reveal")
def keys_reveal(key_id: KeyIdArgument) -> None:
    """Print platform:key for copying (the reveal is audited)."""
    from qualflow.incentives import api_keys

    with _runtime() as runtime, runtime.factory() as session:
        platform, key = api_keys.reveal_key(session, key_id, actor=_actor())
        session.commit()
    typer.echo(f"{platform}:{key}")
