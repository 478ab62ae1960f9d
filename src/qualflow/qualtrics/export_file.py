"""Stream a downloaded Qualtrics response export into typed rows, Arrow batches or files.

An export (``POST /surveys/{id}/export-responses`` → file) is a ZIP holding one data file, or
the raw file when requested with ``compress: false``. :class:`ExportFile` reads it without ever
holding it in memory: ZIP members are decompressed as a stream and parsed block by block
(``pyarrow.csv`` / ``pyarrow.json``), so memory stays flat whatever the number of responses.

Typing
    Column types are decided before the first data row, from each column's ImportId and the
    survey-metadata names (see :func:`kind_for_import_id`): ``startDate``/``endDate``/
    ``recordedDate`` and any column whose ImportId carries a ``timeZone`` are UTC timestamps
    (CSV/TSV dates are wall-clock times in that zone, or in ``time_zone`` when the header names
    none); ``status``/``progress``/``duration``/``finished`` are integers; latitude/longitude,
    scores and question recodes (MC, matrix, NPS, slider, rank, timing) floats; ``_TEXT`` answers,
    ids, labels, embedded data and unknown columns strings. Empty cells are null.

    The first block of rows (about 1 MB) refines that guess once: a typed column whose sampled
    cells do not fit becomes a string column (so exports made with ``useLabels`` just work), and
    date columns learn whether their texts carry an offset. ``column_types`` overrides any
    column, ``typed=False`` reads every column as text.

    A later cell that does not fit its column's type (say, a label after 100,000 recodes) is
    handled by ``errors``: ``"raise"`` (default) stops with an :class:`ExportFileError` naming the
    data row, column, ImportId and value; ``"null"`` stores null there and counts the cell in
    :attr:`ExportFile.invalid_cells` (the downloaded file keeps the original text).

Labels
    ``labels=True`` adds ``<column>_label`` string columns right after the columns they label:
    from the label columns of exports made with ``includeLabelColumns``, from the ``labels``
    object of JSON/NDJSON responses, or from ``label_map`` (keyed by column name, export tag or
    ImportId, mapping a recode's text to its label).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import json
import os
import queue
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, Any, Literal, Self

import anyio
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from qualflow.qualtrics import _export_csv as csv_reader
from qualflow.qualtrics import _export_json as json_reader
from qualflow.qualtrics._export_columns import (
    ColumnKind,
    ExportColumn,
    kind_for_import_id,
    resolve_overrides,
    text_import_ids_from_survey,
    unique_names,
)
from qualflow.qualtrics._export_convert import CellTyping, check_time_zone, nan_to_null
from qualflow.qualtrics._export_io import (
    ExportFileError,
    Member,
    StrPath,
    list_members,
    open_utf8,
)

__all__ = [
    "ColumnKind",
    "ExportColumn",
    "ExportFile",
    "ExportFileError",
    "ExportFormat",
    "OutputFormat",
    "kind_for_import_id",
    "output_target",
]

ExportFormat = Literal["csv", "tsv", "json", "ndjson"]
OutputFormat = Literal["parquet", "csv", "ndjson"]
Errors = Literal["raise", "null"]

_EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "tsv", "json", "ndjson")
_OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("parquet", "csv", "ndjson")
#: The format :meth:`ExportFile.write` gives a destination named with each extension.
OUTPUT_SUFFIXES: dict[str, OutputFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
_BLOCK_SIZE = 1 << 20  # JSON: pyarrow parses the blocks of a chunk in parallel
_CHUNK_SIZE = 1 << 20  # CSV: bytes of whole records parsed by one pool thread at a time
_ROW_GROUP_ROWS = 64 * 1024
# Low-cardinality text worth dictionary-encoding in Parquet; free text is not (it costs time).
_DICTIONARY_IMPORT_IDS = frozenset({"distributionChannel", "userLanguage"})


@dataclass(frozen=True, slots=True)
class _LabelSource:
    """A ``<column>_label`` output column computed from ``label_map``."""

    name: str
    of: str
    keys: pa.Array
    labels: pa.Array


def _labelled(values: pa.Array, source: _LabelSource) -> pa.Array:
    """The labels of a column's codes. A multi-answer cell (``"2,4"``) gets its codes' labels
    joined as a JSON export gives them (``"Delivery,Product questions"``); a cell with a code
    the map lacks gets none."""
    labels = pc.take(source.labels, pc.index_in(values, value_set=source.keys))
    if labels.null_count == values.null_count or not pa.types.is_string(values.type):
        return labels  # every cell labelled (the usual case): no multi-answer cells to split
    multi = pc.and_(pc.is_null(labels), pc.match_substring(values, ","))
    if not pc.any(multi).as_py():
        return labels
    parts = pc.split_pattern(pc.filter(values, multi), ",")
    codes = pc.utf8_trim_whitespace(pc.list_flatten(parts))
    part_labels = pc.take(source.labels, pc.index_in(codes, value_set=source.keys))
    joined = pc.binary_join(pa.ListArray.from_arrays(parts.offsets, part_labels), ",")
    return pc.replace_with_mask(labels, multi, joined)


class ExportFile:
    """A downloaded response export on disk, read as a stream of typed rows.

    Args:
        path: the downloaded file (ZIP when ``compressed``, else the data file itself).
        format: the export's ``format``: ``"csv"``, ``"tsv"``, ``"json"`` or ``"ndjson"``.
        compressed: whether the export was requested with ``compress: true`` (a ZIP).
        label_map: labels for recodes, ``{column: {recode_text: label}}``; the column is named
            by output name, export tag or ImportId (e.g. ``{"QID1": {"1": "Yes", "2": "No"}}``).
        time_zone: the export's ``timeZone``, for CSV/TSV date columns whose ImportId names none.
        column_types: per-column type overrides (``"timestamp"``, ``"integer"``, ``"float"``,
            ``"string"``), keyed by output name, export tag or ImportId. A key naming no column
            of a CSV/TSV export raises ``ValueError``; a JSON/NDJSON export lacks the keys no
            response answered (all of them when it has no responses), so there it is skipped.
        typed: False reads every column as text (overrides win over this).
        names: output column names for CSV/TSV: ``"export_tag"`` (row 1, e.g. ``Q1``,
            ``StartDate``; repeats get ``_2``…) or ``"import_id"`` (``QID1``, ``startDate``).
            JSON exports carry only ImportIds, which are always used there.
        errors: what a cell that does not fit its column's type does (module docstring):
            ``"raise"`` an :class:`ExportFileError`, or ``"null"`` it and count it.
        decimal_comma: the export was made with ``formatDecimalAsComma``.
        survey: the survey's definition (``GET /survey-definitions/{id}``, or the legacy
            ``GET /surveys/{id}`` object), to type what ImportIds cannot tell: multi-answer
            choices (comma-joined codes) and text-entry forms stay text.
        survey_metadata_ids: the export request's ``surveyMetadataIds`` (None: not given). A
            JSON/NDJSON export without responses then gets only those metadata columns, as a
            non-empty export of the same request has, instead of every metadata column.
        sort_by_last_modified_date: the export request's ``sortByLastModifiedDate``. A
            JSON/NDJSON export without responses then has the ``lastModifiedDate`` column a
            non-empty one has.

    Nothing is read until a property or method needs it; every read opens the file anew, so an
    ``ExportFile`` can be iterated any number of times. Unreadable input raises
    :class:`ExportFileError`. A JSON export's rows are parsed once and parked in temporary files
    for the later reads; :meth:`close` (or leaving a ``with`` block) removes them at once
    instead of when the object is garbage-collected.
    """

    def __init__(
        self,
        path: StrPath,
        *,
        format: ExportFormat,
        compressed: bool,
        label_map: Mapping[str, Mapping[str, str]] | None = None,
        time_zone: str = "UTC",
        column_types: Mapping[str, ColumnKind] | None = None,
        typed: bool = True,
        names: Literal["export_tag", "import_id"] = "export_tag",
        errors: Errors = "raise",
        decimal_comma: bool = False,
        survey: Mapping[str, Any] | None = None,
        survey_metadata_ids: Sequence[str] | None = None,
        sort_by_last_modified_date: bool = False,
    ) -> None:
        if format not in _EXPORT_FORMATS:
            raise ValueError(f"format must be one of {_EXPORT_FORMATS}, not {format!r}")
        if names not in ("export_tag", "import_id"):
            raise ValueError(f"names must be 'export_tag' or 'import_id', not {names!r}")
        if errors not in ("raise", "null"):
            raise ValueError(f"errors must be 'raise' or 'null', not {errors!r}")
        check_time_zone(time_zone)
        self.path = os.fspath(path)
        self.format: ExportFormat = format
        self.compressed = compressed
        self.label_map = dict(label_map or {})
        self.time_zone = time_zone
        self.column_types = dict(column_types or {})
        self.typed = typed
        self.names: Literal["export_tag", "import_id"] = names
        self.errors: Errors = errors
        self.decimal_comma = decimal_comma
        self.survey_metadata_ids = (
            tuple(survey_metadata_ids) if survey_metadata_ids is not None else None
        )
        self.sort_by_last_modified_date = sort_by_last_modified_date
        self._is_text = text_import_ids_from_survey(survey) if survey is not None else None
        self._invalid_cells: dict[str, int] = {}
        self._members: list[Member] | None = None
        self._csv: tuple[csv_reader.CsvHeader, list[csv_reader.ColumnPlan]] | None = None
        self._json: tuple[json_reader.JsonLayout, list[ExportColumn]] | None = None

    def __repr__(self) -> str:
        return f"ExportFile({self.path!r}, format={self.format!r}, compressed={self.compressed})"

    # --- layout -------------------------------------------------------------------------------

    @property
    def members(self) -> list[str]:
        """Names of the data files inside the ZIP (or the file's own path when raw)."""
        return [m.name or m.path for m in self._get_members()]

    @property
    def columns(self) -> tuple[ExportColumn, ...]:
        """Every column of the export, typed; label columns have ``is_label``.

        CSV/TSV: file order. JSON/NDJSON: ``responseId``, the ``values`` keys in order of first
        appearance, then a label column per key of the responses' ``labels``. An export without
        responses still has the CSV/TSV header's columns; a JSON/NDJSON one names no key, so it
        gets ``responseId`` and the metadata every response carries (``startDate`` …
        ``userLanguage``, typed as a non-empty export types them), no question, embedded-data
        or label column: no API call could tell them (see ``_export_json.decide_layout``).
        """
        if self.format in ("json", "ndjson"):
            return tuple(self._json_layout()[1])
        _, plans = self._csv_layout()
        return tuple(p.column for p in plans)

    @property
    def arrow_schema(self) -> pa.Schema:
        """Schema of the batches and files produced without labels."""
        return self.schema(labels=False)

    def schema(self, *, labels: bool = False) -> pa.Schema:
        """Schema of the batches and files produced with or without ``_label`` columns."""
        names, types = zip(*self._output_fields(labels), strict=True)
        return pa.schema(list(zip(names, types, strict=True)))

    @property
    def invalid_cells(self) -> Mapping[str, int]:
        """With ``errors="null"``: per column, how many cells were nulled so far."""
        return dict(self._invalid_cells)

    def _get_members(self) -> list[Member]:
        if self._members is None:
            self._members = list_members(self.path, compressed=self.compressed)
        return self._members

    def _delimiter(self) -> str:
        return "\t" if self.format == "tsv" else ","

    def _kind_for(self, column: ExportColumn, overrides: Mapping[str, ColumnKind]) -> ColumnKind:
        if column.is_label:
            return "string"
        if column.name in overrides:
            return overrides[column.name]
        if not self.typed:
            return "string"
        if self._is_text is not None and self._is_text(column.import_id, column.choice_id):
            return "string"
        return column.kind

    def close(self) -> None:
        """Remove the temporary files holding parsed rows (idempotent). The export can still be
        read afterwards; the next read parses the file again."""
        if self._json is not None:
            spill = self._json[0].spill
            self._json = None
            if spill is not None:
                spill.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _json_layout(self) -> tuple[json_reader.JsonLayout, list[ExportColumn]]:
        if self._json is None:
            layout = json_reader.scan(
                self._get_members(),
                self._json_format(),
                survey_metadata_ids=self.survey_metadata_ids,
                sort_by_last_modified_date=self.sort_by_last_modified_date,
            )
            self._json = (layout, self._typed_json_columns(layout))
        return self._json

    def _json_format(self) -> Literal["json", "ndjson"]:
        return "json" if self.format == "json" else "ndjson"

    def _typed_json_columns(self, layout: json_reader.JsonLayout) -> list[ExportColumn]:
        columns = json_reader.build_columns(layout)
        overrides = resolve_overrides(columns, self.column_types, absent_ok=True)
        typed_columns = []
        for column in columns:
            kind = self._kind_for(column, overrides)
            typed_columns.append(column if kind == column.kind else replace(column, kind=kind))
        return typed_columns

    def _csv_layout(self) -> tuple[csv_reader.CsvHeader, list[csv_reader.ColumnPlan]]:
        if self._csv is None:
            members = self._get_members()
            with open_utf8(members[0]) as stream:
                header = csv_reader.read_header(stream, members[0], self._delimiter())
            columns = csv_reader.build_columns(header, names=self.names)
            overrides = resolve_overrides(columns, self.column_types)
            plans = []
            for position, column in enumerate(columns):
                kind = self._kind_for(column, overrides)
                if kind != column.kind:
                    column = replace(column, kind=kind)
                typing = CellTyping(
                    kind, column.time_zone or self.time_zone, decimal_comma=self.decimal_comma
                )
                if column.time_zone is not None:
                    try:
                        check_time_zone(column.time_zone)
                    except ValueError as exc:
                        raise ExportFileError(
                            f"{members[0].label}: column {column.name!r}: {exc}", path=self.path
                        ) from None
                plans.append(csv_reader.ColumnPlan(position, column, typing))
            sample = csv_reader.sample_strings(
                members[0], csv_reader.CsvRead(header, plans, self._delimiter())
            )
            fixed = {p.column.name for p in plans if p.column.name in overrides}
            refined = csv_reader.refine_with_sample(
                [p for p in plans if p.column.name not in fixed], sample
            )
            by_position = {p.position: p for p in refined}
            plans = [by_position.get(p.position, p) for p in plans]
            self._csv = (header, plans)
        return self._csv

    # --- output layout ------------------------------------------------------------------------

    def _label_sources(self) -> dict[str, _LabelSource]:
        """``label_map`` entries that apply, keyed by the value column they label."""
        if not self.label_map:
            return {}
        value_columns = [c for c in self.columns if not c.is_label]
        sources: dict[str, _LabelSource] = {}
        for key, mapping in self.label_map.items():
            matches = [c for c in value_columns if key in (c.name, c.export_tag, c.import_id)]
            for column in matches:
                if column.kind == "timestamp" or column.name in sources:
                    continue
                keys, labels = _label_arrays(column, mapping)
                sources[column.name] = _LabelSource(
                    f"{column.name}_label", column.name, keys, labels
                )
        return sources

    def _output_fields(self, labels: bool) -> list[tuple[str, pa.DataType]]:
        return [(name, data_type) for name, data_type, _ in self._output_plan(labels)]

    def _output_plan(self, labels: bool) -> list[tuple[str, pa.DataType, str | _LabelSource]]:
        """(output name, type, source) in output order; source is a read column or a label map."""
        columns = self.columns
        plan: list[tuple[str, pa.DataType, str | _LabelSource]] = []
        if not labels:
            return [(c.name, c.arrow_type, c.name) for c in columns if not c.is_label]
        file_labels = {c.label_of: c for c in columns if c.is_label and c.label_of is not None}
        mapped = self._label_sources()
        taken = {c.name for c in columns}
        for column in columns:
            if column.is_label:
                if column.label_of is None:
                    plan.append((column.name, pa.string(), column.name))
                continue
            plan.append((column.name, column.arrow_type, column.name))
            label_column = file_labels.get(column.name)
            if label_column is not None:
                plan.append((label_column.name, pa.string(), label_column.name))
            elif column.name in mapped:
                source = mapped[column.name]
                name = unique_names([*taken, source.name])[-1]
                taken.add(name)
                plan.append((name, pa.string(), source))
        return plan

    def _dictionary_columns(self, labels: bool) -> list[str]:
        """Low-cardinality text worth dictionary-encoding in Parquet (labels, channel, language);
        free text is not, and encoding it costs a third of the write time."""
        by_name = {c.name: c for c in self.columns}
        names = []
        for name, data_type, source in self._output_plan(labels):
            column = by_name.get(source) if isinstance(source, str) else None
            if not pa.types.is_string(data_type):
                continue
            if isinstance(source, _LabelSource) or (
                column is not None
                and (column.is_label or column.import_id in _DICTIONARY_IMPORT_IDS)
            ):
                names.append(name)
        return names

    # --- reading ------------------------------------------------------------------------------

    def iter_batches(
        self, batch_size: int = 65_536, *, labels: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """Typed record batches of at most ``batch_size`` rows, all with :meth:`schema`."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        for batch in self._batches(labels=labels):
            for start in range(0, batch.num_rows, batch_size):
                yield batch.slice(start, batch_size)

    def iter_rows(self, *, labels: bool = False) -> Iterator[dict[str, object]]:
        """One dict per response: typed Python values (UTC-aware ``datetime``, ``int``,
        ``float``, ``str``) and None for empty cells."""
        for batch in self._batches(labels=labels):
            yield from batch.to_pylist()

    def _batches(self, *, labels: bool) -> Iterator[pa.RecordBatch]:
        return self._planned(self._read_batches(labels=labels), labels=labels)

    def _planned(
        self, read_batches: Iterator[pa.RecordBatch], *, labels: bool
    ) -> Iterator[pa.RecordBatch]:
        """Read batches in output order, with the ``label_map`` columns added."""
        plan = self._output_plan(labels)
        schema = pa.schema([(name, data_type) for name, data_type, _ in plan])
        for batch in read_batches:
            arrays = []
            for _, _, source in plan:
                if isinstance(source, _LabelSource):
                    arrays.append(_labelled(batch.column(source.of), source))
                else:
                    arrays.append(batch.column(source))
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _read_batches(self, *, labels: bool) -> Iterator[pa.RecordBatch]:
        if self.format in ("json", "ndjson"):
            layout, columns = self._json_layout()
            yield from json_reader.iter_json_batches(
                self._get_members(),
                self._json_format(),
                layout,
                json_reader.JsonRead(
                    columns=[c for c in columns if labels or not c.is_label],
                    errors=self.errors,
                    time_zone=self.time_zone,
                ),
                block_size=_BLOCK_SIZE,
                invalid_counts=self._invalid_cells,
            )
            return
        header, plans = self._csv_layout()
        read = csv_reader.CsvRead(
            header,
            [p for p in plans if labels or not p.column.is_label],
            self._delimiter(),
            self.decimal_comma,
        )
        yield from csv_reader.iter_csv_batches(
            self._get_members(),
            read,
            chunk_size=_CHUNK_SIZE,
            errors=self.errors,
            invalid_counts=self._invalid_cells,
        )

    # --- writing ------------------------------------------------------------------------------

    def write(
        self,
        dest: StrPath | IO[bytes],
        format: OutputFormat | None = None,
        *,
        labels: bool = False,
        compression: str = "snappy",
    ) -> int:
        """Write every response to ``dest`` and return the number of rows written.

        ``format`` is ``"parquet"`` (``compression`` applies; one row group per ~64k rows),
        ``"csv"`` (one header row, ISO-8601 UTC timestamps) or ``"ndjson"`` (one JSON object per
        line, timestamps as ISO-8601 strings); by default the one ``dest``'s extension names
        (:data:`OUTPUT_SUFFIXES`), Parquet without one, and a ``ValueError`` for another
        extension (``.xlsx``, ``.json``…) rather than Parquet bytes under that name.
        A path is written through a temporary file in the same folder and renamed into place
        only when complete, so a failed export never leaves a truncated file behind. A symlink
        is followed (its target is replaced, the link stays); a FIFO or a character device
        (``/dev/stdout``) is written into directly, never replaced by a regular file; a folder,
        socket or block device is refused with a ``ValueError`` (see :func:`output_target`).
        """
        if format is None:
            format = output_format_for(dest)
            if format is None:
                name = os.path.basename(str(dest))
                raise ValueError(
                    f"cannot tell the output format from {name!r}: name it .parquet, .csv, "
                    ".ndjson or .jsonl, or pass format="
                )
        if format not in _OUTPUT_FORMATS:
            raise ValueError(f"format must be one of {_OUTPUT_FORMATS}, not {format!r}")
        if not isinstance(dest, str | os.PathLike):
            return self._write_batches(dest, format, labels, compression)
        target, stream = output_target(dest)
        if stream:
            with open(target, "wb") as sink:
                return self._write_batches(sink, format, labels, compression)
        folder = os.path.dirname(target)
        try:
            handle, temporary = tempfile.mkstemp(prefix=".qualflow-", suffix=".part", dir=folder)
        except OSError as exc:
            # Name the file asked for, not the temporary one that could not be made.
            raise OSError(exc.errno, exc.strerror, os.fspath(dest)) from exc
        try:
            rows = None
            seed: json_reader.JsonLayout | None = None
            attempts = _ONE_PASS_ATTEMPTS if self.format in ("json", "ndjson") else 0
            while attempts and self._json is None:
                attempts -= 1
                with os.fdopen(handle, "wb") as sink:
                    written = self._write_json_in_one_pass(sink, format, labels, compression, seed)
                if isinstance(written, int):
                    rows = written
                    break
                handle = os.open(temporary, os.O_WRONLY | os.O_TRUNC)
                if written is None:
                    break
                seed = written
            if rows is None:
                with os.fdopen(handle, "wb") as sink:
                    rows = self._write_batches(sink, format, labels, compression)
            with contextlib.suppress(FileNotFoundError):
                # A file written over keeps who may read it; a new one stays private (0600,
                # from the temporary file): exports hold respondents' data.
                os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
            os.replace(temporary, target)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            if isinstance(exc, OSError) and exc.filename == temporary:
                raise OSError(exc.errno, exc.strerror, os.fspath(dest)) from exc
            raise
        return rows

    def _write_batches(
        self, sink: IO[bytes], format: OutputFormat, labels: bool, compression: str
    ) -> int:
        """Every typed batch to ``sink`` in ``format``; the rows written."""
        schema = self.schema(labels=labels)
        dictionary = self._dictionary_columns(labels)
        return _write_to(
            sink, self._batches(labels=labels), schema, format, compression, dictionary
        )

    async def write_async(
        self,
        dest: StrPath | IO[bytes],
        format: OutputFormat | None = None,
        *,
        labels: bool = False,
        compression: str = "snappy",
    ) -> int:
        """:meth:`write` on a worker thread, so an event loop (an ``AsyncClient``'s caller)
        goes on serving while the rows are converted."""
        write = functools.partial(self.write, dest, format, labels=labels, compression=compression)
        return await anyio.to_thread.run_sync(write)

    def _write_json_in_one_pass(
        self,
        sink: IO[bytes],
        format: OutputFormat,
        labels: bool,
        compression: str,
        seed: json_reader.JsonLayout | None,
    ) -> int | json_reader.JsonLayout | None:
        """Write a JSON export while reading it; the rows written, or why that could not be done.

        The columns and their types are decided from the first chunk (or ``seed``: what an
        earlier try learnt) and written with; each later chunk is checked to leave them as they
        are. A chunk that changes them (a key first seen late, a wider type) abandons the write
        and returns what was learnt up to it, for the caller to try again with; statistics only
        grow, so a try that ends unchanged has the whole file's columns and types. None when
        pyarrow cannot read the file (or a cell did not fit): the caller then writes it the
        usual way, two passes, the first spilling its tables for the second.
        """
        layout = (
            copy.deepcopy(seed)
            if seed is not None
            else json_reader.JsonLayout(
                {},
                {},
                0,
                survey_metadata_ids=self.survey_metadata_ids,
                sort_by_last_modified_date=self.sort_by_last_modified_date,
            )
        )
        layout.rows = 0
        # Without label columns, the responses' labels are neither parsed nor learnt.
        tables = json_reader.parsed_tables(
            self._get_members(), self._json_format(), layout, labels=labels
        )
        invalid_cells: dict[str, int] = {}
        try:
            with contextlib.closing(tables):
                first = next(tables, None)
                if first is None:
                    return None
                json_reader.decide_layout(layout)
                if not layout.arrow_readable:
                    return None
                signature = json_reader.layout_signature(layout)
                columns = self._typed_json_columns(layout)
                self._json = (layout, columns)
                read = json_reader.JsonRead(
                    columns=[c for c in columns if labels or not c.is_label],
                    errors=self.errors,
                    time_zone=self.time_zone,
                )

                def read_batches() -> Iterator[pa.RecordBatch]:
                    member_index, row = first[0], 0
                    for index, member, table in itertools.chain([first], tables):
                        if json_reader.layout_signature(layout) != signature:
                            raise _LayoutChanged
                        if index != member_index:
                            member_index, row = index, 0
                        raw = json_reader.raw_batch(table, layout, read, copy=False)
                        yield json_reader.finish_batch(raw, read, member, row, invalid_cells)
                        row += raw.num_rows

                rows = _write_to(
                    sink,
                    self._planned(read_batches(), labels=labels),
                    self.schema(labels=labels),
                    format,
                    compression,
                    self._dictionary_columns(labels),
                )
        except _LayoutChanged:
            self._json = None
            return layout
        except (json_reader.Unreadable, ExportFileError):
            # An ExportFileError too: a cell that did not fit a kind the file later changes;
            # the usual way repeats it if it is real.
            self._json = None
            return None
        json_reader.decide_layout(layout)
        if not labels:
            self._json = None  # its columns lack the label columns
        for name, count in invalid_cells.items():
            self._invalid_cells[name] = self._invalid_cells.get(name, 0) + count
        return rows


# Tries at writing a JSON export in one pass, each knowing the changes the last one met.
_ONE_PASS_ATTEMPTS = 3


class _LayoutChanged(Exception):
    """A chunk read after writing began changed the columns or their types."""


def _label_arrays(column: ExportColumn, mapping: Mapping[str, str]) -> tuple[pa.Array, pa.Array]:
    keys: list[object] = []
    labels: list[str] = []
    for raw, label in mapping.items():
        key: object = raw
        if column.kind in ("integer", "float"):
            try:
                key = int(raw) if column.kind == "integer" else float(raw)
            except ValueError:
                continue
        keys.append(key)
        labels.append(label)
    return pa.array(keys, column.arrow_type), pa.array(labels, pa.string())


# --- writers ----------------------------------------------------------------------------------


def output_format_for(dest: StrPath | IO[bytes]) -> OutputFormat | None:
    """The output format a destination's name asks for: its extension's
    (:data:`OUTPUT_SUFFIXES`), Parquet without one (or for a file object), None for an
    extension of another format."""
    if not isinstance(dest, str | os.PathLike):
        return "parquet"
    suffix = os.path.splitext(os.fspath(dest))[1].lower()
    return OUTPUT_SUFFIXES.get(suffix) if suffix else "parquet"


def output_target(dest: StrPath) -> tuple[str, bool]:
    """Where writing to the path ``dest`` really goes, and whether it is a stream.

    Symlinks are resolved, so a link is written through to its target instead of being
    replaced. A FIFO or character device is a stream (written into directly: renaming a
    finished file over it would replace the device or pipe with a regular file). A folder,
    socket or block device raises a ``ValueError`` naming ``dest``.
    """
    path = os.fspath(dest)
    target = os.path.realpath(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return target, False  # absent (or unreachable: creating it says why)
    if stat.S_ISREG(mode):
        return target, False
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        # Opened as given: /dev/stdout on a pipe resolves to no path ("pipe:[…]").
        return path, True
    if stat.S_ISDIR(mode):
        kind = "a folder"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISBLK(mode):
        kind = "a block device"
    else:
        kind = "not a regular file"
    raise ValueError(f"{path} is {kind}: give a file name")


def _write_to(
    sink: IO[bytes],
    batches: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    format: OutputFormat,
    compression: str,
    dictionary: list[str],
) -> int:
    if format == "ndjson":
        return _write_ndjson(sink, batches)
    if format == "csv":
        writer: pq.ParquetWriter | pacsv.CSVWriter = pacsv.CSVWriter(sink, schema)
    else:
        writer = _parquet_writer(sink, schema, compression, dictionary)
    with writer:
        return _pipe(batches, writer, schema)


def _parquet_writer(
    sink: StrPath | IO[bytes], schema: pa.Schema, compression: str, dictionary: list[str]
) -> pq.ParquetWriter:
    """The Parquet writer :meth:`ExportFile.write` uses (``bench/export.py`` times it alone)."""
    # Min/max statistics of free text cost a fifth of the write and serve no filter.
    statistics = [f.name for f in schema if not pa.types.is_string(f.type) or f.name in dictionary]
    return pq.ParquetWriter(
        sink,
        schema,
        compression=compression,
        use_dictionary=dictionary or False,
        write_statistics=statistics or False,
    )


def _pipe(
    batches: Iterator[pa.RecordBatch],
    writer: pq.ParquetWriter | pacsv.CSVWriter,
    schema: pa.Schema,
) -> int:
    """Read on this thread while a second thread encodes and writes (pyarrow drops the GIL)."""
    pending: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
    failure: list[BaseException] = []

    def drain() -> None:
        while (table := pending.get()) is not None:
            if failure:
                continue
            try:
                writer.write_table(table)
            except BaseException as exc:
                failure.append(exc)

    thread = threading.Thread(target=drain, name="qualflow-export-writer", daemon=True)
    thread.start()
    rows = 0
    group: list[pa.RecordBatch] = []
    group_rows = 0
    try:
        for batch in batches:
            if failure:
                break
            group.append(batch)
            group_rows += batch.num_rows
            if group_rows >= _ROW_GROUP_ROWS:
                pending.put(pa.Table.from_batches(group, schema=schema))
                rows += group_rows
                group, group_rows = [], 0
        if group and not failure:
            pending.put(pa.Table.from_batches(group, schema=schema))
            rows += group_rows
    finally:
        pending.put(None)
        thread.join()
    if failure:
        raise failure[0]
    return rows


def _write_ndjson(sink: IO[bytes], batches: Iterator[pa.RecordBatch]) -> int:
    rows = 0
    for batch in batches:
        arrays = []
        for field, values in zip(batch.schema, batch.columns, strict=True):
            if pa.types.is_timestamp(field.type):
                values = pc.strftime(values, format="%Y-%m-%dT%H:%M:%SZ")
            arrays.append(nan_to_null(values))
        lines = [
            json.dumps(row, ensure_ascii=False, separators=(",", ":"))
            for row in pa.RecordBatch.from_arrays(arrays, names=batch.schema.names).to_pylist()
        ]
        if lines:
            sink.write(("\n".join(lines) + "\n").encode("utf-8"))
        rows += len(lines)
    return rows
