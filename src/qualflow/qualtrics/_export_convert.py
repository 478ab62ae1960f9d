"""Vectorised conversion of export text cells to typed Arrow arrays.

The fast path lets pyarrow's CSV/JSON readers convert while parsing; these helpers finish that
(local times → UTC) and, on the checked path, convert string arrays while locating the cells
that do not fit, so an error can name them or a lenient run can null them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from qualflow.qualtrics._export_columns import ARROW_TYPES, ColumnKind

NAIVE_TIMESTAMP = pa.timestamp("us")
UTC_TIMESTAMP = ARROW_TYPES["timestamp"]

_ZONE_RE = r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
_DATE_RE = r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?"
# Syntactic pre-filters; a value passing them may still be rejected (overflow, 2024-02-30), which
# the per-cell fallback below catches.
_VALID_RE: dict[ColumnKind, str] = {
    "integer": r"^-?\d+$",
    "float": r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:nan|NaN|inf|Inf|INF)$",
    "timestamp": _DATE_RE + r"(?:" + _ZONE_RE + r"|$)",
}


@dataclass(frozen=True, slots=True)
class CellTyping:
    """How to turn a column's text into its typed value."""

    kind: ColumnKind
    time_zone: str = "UTC"
    decimal_comma: bool = False


def check_time_zone(time_zone: str) -> None:
    """Raise ValueError naming ``time_zone`` if Arrow's tz database does not know it."""
    if time_zone == "UTC":
        return  # the usual case, known everywhere
    # A null is probe enough (the zone is looked up before any value). Not pa.array([0]) or
    # pa.scalar: converting Python values makes pyarrow import pandas when it is installed,
    # ~0.2 CPU s before the first row of an export is read.
    probe = pa.nulls(1, NAIVE_TIMESTAMP)
    try:
        pc.assume_timezone(probe, time_zone)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"unknown time zone {time_zone!r}: {exc}") from None


def localize(naive: pa.Array, time_zone: str) -> pa.Array:
    """Local wall-clock timestamps in ``time_zone`` → UTC timestamps.

    A time repeated by a DST change takes its earlier instant; a time skipped by one (which
    Qualtrics never renders) takes the instant the gap ends, rather than failing the export.
    """
    local = pc.assume_timezone(naive, time_zone, ambiguous="earliest", nonexistent="latest")
    return local.cast(UTC_TIMESTAMP)


def has_zone(values: pa.Array) -> pa.Array:
    """Per cell: does the timestamp text end in ``Z`` or an offset?"""
    return pc.match_substring_regex(values, _ZONE_RE)


def cast_strings(values: pa.Array, typing: CellTyping) -> pa.Array:
    """Convert a string array; raises ``pa.ArrowInvalid`` if any cell does not fit."""
    if typing.kind == "string":
        return values
    if typing.kind == "timestamp":
        return _cast_timestamps(values, typing.time_zone)
    if typing.kind == "float" and typing.decimal_comma:
        values = pc.replace_substring(values, ",", ".")
    return values.cast(ARROW_TYPES[typing.kind])


def _cast_timestamps(values: pa.Array, time_zone: str) -> pa.Array:
    if pc.all(pc.ends_with(values, "Z")).as_py():
        # JSON exports' dates are all UTC ("…Z"): skip the costlier zone pattern.
        return values.cast(UTC_TIMESTAMP)
    zoned = has_zone(values)
    if not pc.any(zoned).as_py():
        return localize(values.cast(NAIVE_TIMESTAMP), time_zone)
    if pc.all(zoned).as_py():
        return values.cast(UTC_TIMESTAMP)
    nulls = pa.nulls(len(values), pa.string())
    aware = pc.if_else(zoned, values, nulls).cast(UTC_TIMESTAMP)
    local = localize(pc.if_else(zoned, nulls, values).cast(NAIVE_TIMESTAMP), time_zone)
    return pc.if_else(zoned, aware, local)


def convert_checked(values: pa.Array, typing: CellTyping) -> tuple[pa.Array, pa.Array | None]:
    """Convert a string array, nulling the cells that do not fit.

    Returns ``(typed, invalid)`` where ``invalid`` is a boolean mask of the nulled cells, or
    None when every cell converted.
    """
    try:
        return cast_strings(values, typing), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    pattern = _VALID_RE[typing.kind]
    candidate = values
    if typing.kind == "float" and typing.decimal_comma:
        candidate = pc.replace_substring(values, ",", ".")
    plausible = pc.fill_null(pc.match_substring_regex(candidate, pattern), True)
    filtered = pc.if_else(plausible, values, pa.nulls(len(values), pa.string()))
    try:
        typed = cast_strings(filtered, typing)
        invalid = pc.and_(pc.invert(plausible), pc.is_valid(values))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        typed, invalid = _convert_cell_by_cell(values, typing)
    return typed, invalid


def _convert_cell_by_cell(values: pa.Array, typing: CellTyping) -> tuple[pa.Array, pa.Array]:
    converted: list[pa.Array] = []
    invalid: list[bool] = []
    target = ARROW_TYPES[typing.kind]
    for index in range(len(values)):
        cell = values.slice(index, 1)
        try:
            converted.append(cast_strings(cell, typing))
            invalid.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            converted.append(pa.nulls(1, target))
            invalid.append(True)
    typed = pa.concat_arrays(converted) if converted else pa.array([], target)
    return typed, pa.array(invalid, pa.bool_())


def first_invalid(invalid: pa.Array) -> int | None:
    """Index of the first True in a boolean mask, or None."""
    if not pc.any(invalid).as_py():
        return None
    return int(pc.index(invalid, True).as_py())


def nan_to_null(values: pa.Array) -> pa.Array:
    """Float NaN → null (for writers of formats without NaN, like JSON)."""
    if not pa.types.is_floating(values.type):
        return values
    return pc.if_else(pc.is_nan(values), pa.nulls(len(values), values.type), values)
