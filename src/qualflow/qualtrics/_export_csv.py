"""CSV/TSV response exports: the three header rows, then pyarrow streaming for the data rows.

Row 1 holds export tags, row 2 question texts (quoted, may span lines), row 3 ImportId JSON.
The header is read with the stdlib ``csv`` module line by line, so the stream stops exactly at
the first data row; pyarrow's own ``skip_rows`` counts physical lines, which breaks on the
quoted newlines of row 2.

Data rows are cut into chunks of whole records (see ``record_chunks``) and each chunk takes a
fast path (pyarrow converts while parsing). A cell that does not fit its type makes that path
fail for its chunk only; the chunk is then parsed as text and converted column by column, which
finds the exact cell to report or null.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from qualflow.qualtrics._export_columns import (
    ExportColumn,
    HeaderError,
    kind_for_import_id,
    parse_import_id_cell,
    unique_names,
)
from qualflow.qualtrics._export_convert import (
    NAIVE_TIMESTAMP,
    UTC_TIMESTAMP,
    CellTyping,
    convert_checked,
    first_invalid,
    has_zone,
    localize,
)
from qualflow.qualtrics._export_io import (
    ExportFileError,
    Member,
    Prefetch,
    Utf8Stream,
    open_utf8,
    ordered_map,
    parse_workers,
    record_chunks,
)

Errors = Literal["raise", "null"]

_MAX_HEADER_BYTES = 64 << 20
_SAMPLE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class CsvHeader:
    tags: list[str]
    texts: list[str]
    import_ids: list[str]
    time_zones: list[str | None]
    label_flags: list[bool]
    choice_ids: list[str | None]

    @property
    def signature(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return tuple(self.tags), tuple(self.import_ids)


def read_header(stream: Utf8Stream, member: Member, delimiter: str) -> CsvHeader:
    """Consume the three header rows from ``stream``, leaving it at the first data row."""
    consumed = 0

    def lines() -> Iterator[str]:
        nonlocal consumed
        while True:
            line = stream.readline(_MAX_HEADER_BYTES)
            if not line:
                return
            consumed += len(line)
            if consumed >= _MAX_HEADER_BYTES:
                raise ExportFileError(
                    f"{member.label}: header rows exceed {_MAX_HEADER_BYTES >> 20} MB; "
                    "not a Qualtrics export?",
                    path=member.path,
                )
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ExportFileError(
                    f"{member.label}: header is not UTF-8 text ({exc})", path=member.path
                ) from None

    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    try:
        for _ in range(3):
            rows.append(next(reader))
    except StopIteration:
        what = "empty" if not rows else f"only {len(rows)} of its 3 header rows"
        raise ExportFileError(
            f"{member.label}: not a Qualtrics CSV export: file is {what}", path=member.path
        ) from None
    except csv.Error as exc:
        raise ExportFileError(
            f"{member.label}: malformed header row {len(rows) + 1}: {exc}", path=member.path
        ) from None
    tags, texts, ids = rows
    if not tags or len(texts) != len(tags) or len(ids) != len(tags):
        raise ExportFileError(
            f"{member.label}: header rows have {len(tags)}, {len(texts)} and {len(ids)} "
            "cells; a Qualtrics export has the same number in all three",
            path=member.path,
        )
    import_ids: list[str] = []
    time_zones: list[str | None] = []
    label_flags: list[bool] = []
    choice_ids: list[str | None] = []
    for position, cell in enumerate(ids):
        try:
            parsed = parse_import_id_cell(cell)
        except HeaderError as exc:
            raise ExportFileError(
                f"{member.label}: header row 3, column {position + 1} ({tags[position]!r}) "
                f"is {exc}; exports need the ImportId row (Qualtrics API v3 format)",
                path=member.path,
            ) from None
        import_ids.append(parsed.import_id)
        time_zones.append(parsed.time_zone)
        label_flags.append(parsed.is_label_column)
        choice_ids.append(parsed.choice_id)
    return CsvHeader(tags, texts, import_ids, time_zones, label_flags, choice_ids)


def build_columns(
    header: CsvHeader, *, names: Literal["export_tag", "import_id"]
) -> list[ExportColumn]:
    """All columns of the file, in file order, typed from their ImportIds.

    Named by ImportId, one choice of a split multi-answer question is ``<ImportId>_<choiceId>``
    (``QID4_2``), as its export tag is ``Q4_2``: the ImportId alone is its question's."""
    if names == "export_tag":
        raw_names = header.tags
    else:
        raw_names = [
            import_id if choice_id is None else f"{import_id}_{choice_id}"
            for import_id, choice_id in zip(header.import_ids, header.choice_ids, strict=True)
        ]
    base_names = unique_names(
        name for name, is_label in zip(raw_names, header.label_flags, strict=True) if not is_label
    )
    # A label column labels the value column of the same ImportId (and choiceId).
    owners: dict[tuple[str, str | None], str] = {}
    base_iter = iter(base_names)
    columns: list[ExportColumn] = []
    pending_labels: list[int] = []
    for position in range(len(header.tags)):
        import_id = header.import_ids[position]
        if header.label_flags[position]:
            pending_labels.append(position)
            columns.append(_placeholder(header, position))
            continue
        name = next(base_iter)
        owners.setdefault((import_id, header.choice_ids[position]), name)
        time_zone = header.time_zones[position]
        columns.append(
            ExportColumn(
                name=name,
                export_tag=header.tags[position],
                question_text=header.texts[position],
                import_id=import_id,
                time_zone=time_zone,
                kind=kind_for_import_id(import_id, has_time_zone=time_zone is not None),
                choice_id=header.choice_ids[position],
            )
        )
    taken = {c.name for c in columns if not c.is_label}
    for position in pending_labels:
        import_id = header.import_ids[position]
        choice_id = header.choice_ids[position]
        owner = owners.get((import_id, choice_id))
        stem = owner if owner is not None else raw_names[position]
        name = unique_names([*taken, f"{stem}_label"])[-1]
        taken.add(name)
        columns[position] = ExportColumn(
            name=name,
            export_tag=header.tags[position],
            question_text=header.texts[position],
            import_id=import_id,
            time_zone=None,
            kind="string",
            is_label=True,
            label_of=owner,
            choice_id=choice_id,
        )
    return columns


def _placeholder(header: CsvHeader, position: int) -> ExportColumn:
    return ExportColumn(
        name="",
        export_tag=header.tags[position],
        question_text=None,
        import_id=header.import_ids[position],
        time_zone=None,
        kind="string",
        is_label=True,
    )


# --- reading ----------------------------------------------------------------------------------

TimestampFlavor = Literal["local", "zoned", "mixed"]


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """How one file column is read (fast path type) and finished into its output type."""

    position: int
    column: ExportColumn
    typing: CellTyping
    flavor: TimestampFlavor = "local"

    @property
    def field(self) -> str:
        return f"c{self.position}"

    @property
    def read_type(self) -> pa.DataType:
        if self.column.kind != "timestamp":
            return self.column.arrow_type
        return {"local": NAIVE_TIMESTAMP, "zoned": UTC_TIMESTAMP, "mixed": pa.string()}[self.flavor]


def _read_options(field_count: int, block_size: int) -> pacsv.ReadOptions:
    # One block per chunk, parsed on the calling thread: chunks already end on record
    # boundaries and run in parallel (see iter_csv_batches), which costs about a third less
    # CPU than pyarrow splitting quoted-newline CSV into blocks itself.
    return pacsv.ReadOptions(
        column_names=[f"c{i}" for i in range(field_count)],
        block_size=block_size,
        use_threads=False,
    )


def _parse_options(delimiter: str) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(
        delimiter=delimiter, quote_char='"', double_quote=True, newlines_in_values=True
    )


def _convert_options(
    plans: Sequence[ColumnPlan], *, as_strings: bool, decimal_comma: bool
) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types={p.field: pa.string() if as_strings else p.read_type for p in plans},
        include_columns=[p.field for p in plans],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=[""],
        true_values=["__never_true__"],
        false_values=["__never_false__"],
        decimal_point="," if decimal_comma else ".",
    )


@dataclass(frozen=True, slots=True)
class CsvRead:
    """Everything needed to parse data chunks of one export."""

    header: CsvHeader
    plans: Sequence[ColumnPlan]
    delimiter: str
    decimal_comma: bool = False

    def parse(self, chunk: pa.Buffer, *, as_strings: bool) -> pa.Table | None:
        """Parse a chunk of whole records; None if it holds no rows. Raises ArrowInvalid."""
        try:
            return pacsv.read_csv(
                pa.BufferReader(chunk),
                read_options=_read_options(len(self.header.tags), len(chunk) + 1),
                parse_options=_parse_options(self.delimiter),
                convert_options=_convert_options(
                    self.plans,
                    as_strings=as_strings,
                    decimal_comma=self.decimal_comma and not as_strings,
                ),
            )
        except pa.ArrowInvalid as exc:
            if _is_empty(exc):
                return None
            raise


def _is_empty(exc: pa.ArrowInvalid) -> bool:
    """pyarrow's way of saying a chunk holds no data rows (e.g. only blank lines)."""
    return "Empty CSV file" in str(exc)


def sample_strings(member: Member, read: CsvRead) -> pa.RecordBatch | None:
    """The first ~1 MB of data rows, every column as strings (None if there are no rows)."""
    with open_utf8(member) as stream:
        read_header(stream, member, read.delimiter)
        for chunk in record_chunks(stream, _SAMPLE_BYTES):
            try:
                table = read.parse(chunk, as_strings=True)
            except pa.ArrowInvalid as exc:
                raise ExportFileError(
                    f"{member.label}: unreadable CSV data: {exc}", path=member.path
                ) from None
            if table is None or table.num_rows == 0:
                return None
            return table.combine_chunks().to_batches()[0]
    return None


def refine_with_sample(plans: list[ColumnPlan], sample: pa.RecordBatch | None) -> list[ColumnPlan]:
    """Settle per-column details the ImportId cannot tell, from the first block of rows.

    A typed column whose sampled cells do not fit its type becomes a string column (exports made
    with ``useLabels`` carry "Extremely likely" where recodes were expected); a timestamp column
    is read local, zoned or mixed depending on whether its texts carry an offset.
    """
    if sample is None:
        return plans
    refined: list[ColumnPlan] = []
    for plan in plans:
        kind = plan.column.kind
        if kind == "string":
            refined.append(plan)
            continue
        values = sample.column(plan.field)
        _, invalid = convert_checked(values, plan.typing)
        if invalid is not None and pc.any(invalid).as_py():
            column = replace(plan.column, kind="string")
            refined.append(ColumnPlan(plan.position, column, CellTyping("string")))
            continue
        if kind == "timestamp":
            zoned = has_zone(values.drop_null())
            flavor: TimestampFlavor = "local"
            if len(zoned) and pc.all(zoned).as_py():
                flavor = "zoned"
            elif pc.any(zoned).as_py():
                flavor = "mixed"
            refined.append(ColumnPlan(plan.position, plan.column, plan.typing, flavor))
            continue
        refined.append(plan)
    return refined


def iter_csv_batches(
    members: Sequence[Member],
    read: CsvRead,
    *,
    chunk_size: int,
    errors: Errors,
    invalid_counts: dict[str, int],
) -> Iterator[pa.RecordBatch]:
    """Typed batches (output column names, plan order) over every member of the export.

    A helper thread decompresses and cuts chunks, a pool parses and finishes them (fast path),
    and this thread takes the results in order; a chunk whose fast path failed is converted
    here, where the row numbers for an error message are known.
    """
    names = [p.column.name for p in read.plans]

    def fast(chunk: pa.Buffer) -> tuple[pa.Buffer, list[pa.RecordBatch] | None]:
        try:
            table = read.parse(chunk, as_strings=False)
            if table is None:
                return chunk, []
            return chunk, [_finish_fast(b, read.plans, names) for b in table.to_batches()]
        except pa.ArrowInvalid:
            return chunk, None

    for member in members:
        rows_done = 0
        with open_utf8(member) as stream:
            _check_same_layout(read_header(stream, member, read.delimiter), read.header, member)
            with (
                Prefetch(record_chunks(stream, chunk_size)) as chunks,
                ordered_map(fast, chunks, parse_workers()) as results,
            ):
                for chunk, batches in results:
                    if batches is None:
                        batches = _checked_chunk(
                            chunk, read, names, member, rows_done + 1, errors, invalid_counts
                        )
                    for batch in batches:
                        yield batch
                        rows_done += batch.num_rows


def _checked_chunk(
    chunk: pa.Buffer,
    read: CsvRead,
    names: list[str],
    member: Member,
    first_row: int,
    errors: Errors,
    invalid_counts: dict[str, int],
) -> list[pa.RecordBatch]:
    """The chunk parsed as text and converted column by column, to report or null bad cells."""
    try:
        table = read.parse(chunk, as_strings=True)
    except pa.ArrowInvalid as exc:
        raise ExportFileError(
            f"{member.label}: unreadable CSV data at or after data row {first_row}: {exc}",
            path=member.path,
            row=first_row,
        ) from None
    if table is None:
        return []
    converted = []
    for batch in table.to_batches():
        converted.append(
            _convert_batch(
                batch,
                read.plans,
                names,
                member,
                first_row=first_row,
                errors=errors,
                invalid_counts=invalid_counts,
            )
        )
        first_row += batch.num_rows
    return converted


def _check_same_layout(found: CsvHeader, expected: CsvHeader, member: Member) -> None:
    if found.signature != expected.signature:
        raise ExportFileError(
            f"{member.label}: header differs from the export's first file; "
            "the files of one export must share their columns",
            path=member.path,
        )


def _finish_fast(
    batch: pa.RecordBatch, plans: Sequence[ColumnPlan], names: list[str]
) -> pa.RecordBatch:
    arrays = []
    for plan in plans:
        values = batch.column(plan.field)
        if plan.column.kind == "timestamp":
            if plan.flavor == "local":
                values = localize(values, plan.typing.time_zone)
            elif plan.flavor == "mixed":
                typed, invalid = convert_checked(values, plan.typing)
                if invalid is not None:
                    # Not reported here: the caller re-reads the chunk on the checked path.
                    raise pa.ArrowInvalid(f"timestamp conversion failed in {plan.field}")
                values = typed
        arrays.append(values)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _convert_batch(
    batch: pa.RecordBatch,
    plans: Sequence[ColumnPlan],
    names: list[str],
    member: Member,
    *,
    first_row: int,
    errors: Errors,
    invalid_counts: dict[str, int],
) -> pa.RecordBatch:
    arrays = []
    for plan in plans:
        values = batch.column(plan.field)
        typed, invalid = convert_checked(values, plan.typing)
        if invalid is not None:
            index = first_invalid(invalid)
            if index is not None:
                if errors == "raise":
                    column = plan.column
                    raise ExportFileError(
                        f"{member.label}: data row {first_row + index}, column "
                        f"{column.name!r} (ImportId {column.import_id}): "
                        f"{values[index].as_py()!r} is not a valid {column.kind}. "
                        "Pass column_types={"
                        f"{column.name!r}: 'string'}} to keep the column as text, "
                        "or errors='null' to null cells that do not fit.",
                        path=member.path,
                        row=first_row + index,
                        column=column.name,
                    )
                count = int(pc.sum(invalid).as_py() or 0)
                invalid_counts[plan.column.name] = invalid_counts.get(plan.column.name, 0) + count
        arrays.append(typed)
    return pa.RecordBatch.from_arrays(arrays, names=names)
