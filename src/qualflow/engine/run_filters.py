"""The run statuses, and the check a run listing's filters get before any query.

This module imports neither the tables nor the database layer: ``qualflow runs ls`` refuses a
bad ``--status``, ``--since`` or ``--until`` (exit code 2) with the same check ``Runs.query``
makes, before the tables are loaded or the database opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "skipped")


class RunFilterError(ValueError):
    """A run filter refused; ``field`` names it (``status`` or ``until``)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class RunFilters:
    """Filters that passed :func:`check_run_filters`: bounds in UTC."""

    statuses: list[str]
    since: datetime | None
    until: datetime | None


def _as_utc(moment: datetime | None) -> datetime | None:
    """A bound without an offset (a plain date, as the CLI's ``--since`` parses one) is read
    as UTC, the zone every stored time is in."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def check_run_filters(
    status: str | list[str] | None,
    since: datetime | None,
    until: datetime | None,
    *,
    as_options: bool = False,
) -> RunFilters:
    """The filters, or a :class:`RunFilterError` naming the first bad one: a status that is none of
    :data:`RUN_STATUSES`, or an ``until`` not after ``since``. ``as_options`` names them as
    the command line's options (``--status``, ``--since``, ``--until``)."""
    statuses = [status] if isinstance(status, str) else list(status or [])
    unknown = [s for s in statuses if s not in RUN_STATUSES]
    if unknown:
        where = " for --status:" if as_options else ";"
        raise RunFilterError(
            f"unknown status {unknown[0]!r}{where} one of {', '.join(RUN_STATUSES)}", field="status"
        )
    since, until = _as_utc(since), _as_utc(until)
    if since is not None and until is not None and until <= since:
        dashes = "--" if as_options else ""
        bounds = f"{dashes}until ({until.isoformat()}) must be after {dashes}since"
        raise RunFilterError(f"{bounds} ({since.isoformat()})", field="until")
    return RunFilters(statuses=statuses, since=since, until=until)
