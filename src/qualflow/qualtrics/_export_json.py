"""JSON and NDJSON response exports.

Each response is ``{"responseId", "values": {ImportId: value}, "labels": {ImportId: label},
"displayedFields", "displayedValues"}``; NDJSON has one per line, JSON wraps them in
``{"responses": [...]}``. A JSON export is turned into NDJSON on the fly (one response decoded
at a time, never the whole document), so both share one reader.

JSON carries no header, and a response omits the questions it did not answer, so the columns
are the union of the ``values`` keys over the whole file: a first pass finds them (and what
kinds of values each holds), a second pass types the data with that fixed schema. The file is
parsed once, with pyarrow's JSON reader, chunks in parallel, the unread tail of each response
(``displayedFields``/``displayedValues``, and ``labels`` when no label column is asked for) cut
off first: :func:`scan_and_spill` parks the parsed tables in a :class:`Spill` for the second
pass, and ``ExportFile.write`` even types and writes them as they come (see
:func:`parsed_tables`). A key mixing numbers and text (which pyarrow cannot read) switches the
file to the reference two-pass reader (:func:`reference_scan`) and a slower Python decoder.
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from qualflow.qualtrics._export_columns import (
    ARROW_TYPES,
    ColumnKind,
    ExportColumn,
    kind_for_import_id,
    unique_names,
)
from qualflow.qualtrics._export_convert import CellTyping, convert_checked, first_invalid
from qualflow.qualtrics._export_io import (
    ExportFileError,
    Member,
    Prefetch,
    Utf8Stream,
    line_chunks,
    open_utf8,
    ordered_map,
    parse_workers,
    record_chunks,
)
from qualflow.qualtrics._export_spill import Spill
from qualflow.qualtrics.models.exports import SurveyMetadataId

Errors = Literal["raise", "null"]
JsonClass = Literal["int", "float", "string", "list", "bool", "object"]

_CHUNK_BYTES = 4 << 20
_MAX_RESPONSE_CHARS = 64 << 20
RESPONSE_ID = "responseId"


# --- JSON → NDJSON ----------------------------------------------------------------------------


class _JsonToNdjson(io.RawIOBase):
    """Reads ``{"responses": [ {...}, ... ]}`` and yields the responses as NDJSON bytes.

    Only one response (plus a read-ahead chunk) is held in memory at a time; each is decoded with
    ``json.JSONDecoder.raw_decode`` and re-emitted compactly on one line.
    """

    def __init__(self, source: Utf8Stream, label: str) -> None:
        super().__init__()
        self._source = source
        self._label = label
        self._decoder = json.JSONDecoder()
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._text = ""
        self._pos = 0
        self._eof = False
        self._out = bytearray()
        self._parts = self._responses()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        while len(self._out) < len(view):
            piece = next(self._parts, None)
            if piece is None:
                break
            self._out += piece
        count = min(len(view), len(self._out))
        view[:count] = self._out[:count]
        del self._out[:count]
        return count

    def _fill(self) -> bool:
        """Read more text; False at end of input."""
        if self._eof:
            return False
        raw = self._source.read(1 << 20)
        try:
            decoded = self._utf8.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise ExportFileError(f"{self._label}: not UTF-8 text: {exc}") from None
        self._eof = not raw
        if self._pos > (1 << 20):
            self._text = self._text[self._pos :]
            self._pos = 0
        self._text += decoded
        return True

    def _skip_space(self) -> str:
        """Next non-whitespace character (not consumed); '' at end of input."""
        while True:
            while self._pos < len(self._text) and self._text[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._text):
                return self._text[self._pos]
            if not self._fill():
                return ""

    def _expect(self, chars: str) -> str:
        char = self._skip_space()
        if not char or char not in chars:
            found = repr(char) if char else "end of file"
            raise ExportFileError(
                f"{self._label}: not a Qualtrics JSON export: expected one of {chars!r}, "
                f"found {found}"
            )
        self._pos += 1
        return char

    def _value(self) -> tuple[Any, str]:
        """Decode the next JSON value; returns it and its exact source text."""
        self._skip_space()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._text, self._pos)
            except json.JSONDecodeError as exc:
                if len(self._text) - self._pos > _MAX_RESPONSE_CHARS or not self._fill():
                    raise ExportFileError(f"{self._label}: malformed JSON: {exc}") from None
                continue
            if end == len(self._text) and not self._eof:
                # A number at the buffer's edge may continue in the next read.
                self._fill()
                continue
            source = self._text[self._pos : end]
            self._pos = end
            return value, source

    def _responses(self) -> Iterator[bytes]:
        self._expect("{")
        found = False
        if self._skip_space() == "}":
            self._pos += 1
        else:
            while True:
                key, _ = self._value()
                self._expect(":")
                if key == "responses":
                    found = True
                    yield from self._array()
                else:
                    self._value()
                if self._expect(",}") == "}":
                    break
        if not found:
            raise ExportFileError(f'{self._label}: JSON export has no "responses" array')
        if self._skip_space():
            raise ExportFileError(f"{self._label}: unexpected data after the JSON document")

    def _array(self) -> Iterator[bytes]:
        self._expect("[")
        if self._skip_space() == "]":
            self._pos += 1
            return
        pending: list[str] = []
        size = 0
        while True:
            value, source = self._value()
            if not isinstance(value, dict):
                raise ExportFileError(f"{self._label}: a response is not a JSON object")
            if "\n" in source or "\r" in source:
                source = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            pending.append(source)
            size += len(source)
            if size >= 1 << 20:
                yield ("\n".join(pending) + "\n").encode("utf-8")
                pending, size = [], 0
            if self._expect(",]") == "]":
                break
        if pending:
            yield ("\n".join(pending) + "\n").encode("utf-8")


@contextmanager
def open_ndjson(member: Member, format: Literal["json", "ndjson"]) -> Iterator[Utf8Stream]:
    """The member's responses as an NDJSON byte stream."""
    with open_utf8(member) as stream:
        if format == "ndjson":
            yield stream
        else:
            with io.BufferedReader(_JsonToNdjson(stream, member.label), 1 << 20) as converted:
                yield Utf8Stream(converted)


# --- pass 1: discover the columns -------------------------------------------------------------


@dataclass
class _KeyStats:
    classes: set[JsonClass] = field(default_factory=set)
    items: set[JsonClass] = field(default_factory=set)  # classes inside list values
    # Kinds the key's text values failed to convert to, anywhere in the file.
    unfit: set[ColumnKind] = field(default_factory=set)

    def add(self, json_class: JsonClass | None, items: Sequence[JsonClass | None] = ()) -> None:
        if json_class is not None:
            self.classes.add(json_class)
        self.items.update(item for item in items if item is not None)

    @property
    def arrow_readable(self) -> bool:
        """pyarrow reads a key only if its values share one JSON type (ints and floats mix)."""
        scalars = self.classes - {"list"}
        if "object" in self.classes or ("list" in self.classes and scalars):
            return False
        if len(scalars) > 1 and scalars != {"int", "float"}:
            return False
        if self.items & {"object", "list"}:
            return False
        return len(self.items) <= 1 or self.items == {"int", "float"}


@dataclass
class JsonLayout:
    """What the first pass learned: keys in order of first appearance and their kinds."""

    values: dict[str, _KeyStats]
    labels: dict[str, _KeyStats]
    rows: int
    arrow_readable: bool = True
    kinds: dict[str, ColumnKind] = field(default_factory=dict)
    # The first pass's tables (responseId, values, labels), when it parsed them all.
    spill: Spill | None = None
    # The export request's surveyMetadataIds (None: every field); they decide which metadata
    # columns an export without a single response has.
    survey_metadata_ids: Sequence[str] | None = None
    # The request's sortByLastModifiedDate: every response then carries lastModifiedDate.
    sort_by_last_modified_date: bool = False


def _class_of_type(data_type: pa.DataType) -> JsonClass | None:
    if pa.types.is_null(data_type):
        return None
    if pa.types.is_integer(data_type):
        return "int"
    if pa.types.is_floating(data_type):
        return "float"
    if pa.types.is_string(data_type) or pa.types.is_timestamp(data_type):
        return "string"
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_list(data_type):
        return "list"
    return "object"


def _class_of_value(value: object) -> JsonClass | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def scan(
    members: Sequence[Member],
    format: Literal["json", "ndjson"],
    *,
    survey_metadata_ids: Sequence[str] | None = None,
    sort_by_last_modified_date: bool = False,
) -> JsonLayout:
    """First pass over every member: keys, their JSON classes and which kinds their text fits.

    ``survey_metadata_ids`` and ``sort_by_last_modified_date`` are the export request's, for an
    export without responses (see :func:`decide_layout`). The single-pass reader
    (:func:`scan_and_spill`) answers for every file pyarrow can read; anything else (mixed
    types, malformed input and its error message) is the reference scan's.
    """
    layout = scan_and_spill(
        members,
        format,
        survey_metadata_ids=survey_metadata_ids,
        sort_by_last_modified_date=sort_by_last_modified_date,
    )
    if layout is not None:
        return layout
    return reference_scan(
        members,
        format,
        survey_metadata_ids=survey_metadata_ids,
        sort_by_last_modified_date=sort_by_last_modified_date,
    )


def reference_scan(
    members: Sequence[Member],
    format: Literal["json", "ndjson"],
    *,
    survey_metadata_ids: Sequence[str] | None = None,
    sort_by_last_modified_date: bool = False,
) -> JsonLayout:
    """First pass over every member: keys, their JSON classes and which kinds their text fits.

    pyarrow infers the first chunk's schema; later chunks are parsed against the schema known
    so far (about twice as fast as inferring) with unexpected fields an error, so a chunk that
    brings a new key or a wider type is inferred again and its schema merged in. A chunk
    pyarrow cannot infer (a key mixing numbers and text) is scanned with the json module.
    """
    layout = JsonLayout(
        values={},
        labels={},
        rows=0,
        survey_metadata_ids=survey_metadata_ids,
        sort_by_last_modified_date=sort_by_last_modified_date,
    )
    known: pa.Schema | None = None
    for member in members:
        with (
            open_ndjson(member, format) as stream,
            Prefetch(record_chunks(stream, _CHUNK_BYTES, quote=b"")) as chunks,
        ):
            line_base = 0
            for chunk in chunks:
                table = None
                if known is not None:
                    try:
                        table = pajson.read_json(
                            pa.BufferReader(chunk),
                            read_options=_read_options(chunk),
                            parse_options=pajson.ParseOptions(
                                explicit_schema=known, unexpected_field_behavior="error"
                            ),
                        )
                    except pa.ArrowInvalid:
                        table = None
                if table is None:
                    try:
                        table = pajson.read_json(
                            pa.BufferReader(chunk), read_options=_read_options(chunk)
                        )
                    except pa.ArrowInvalid as exc:
                        if "Empty JSON" in str(exc):
                            continue
                        known = None  # mixed types: pyarrow cannot hold this file's schema
                        rows = _scan_python(chunk.to_pybytes(), layout, member, line_base)
                    else:
                        known = _merge_schema(known, table.schema)
                        if known is not None:
                            # Parsed again for the text pyarrow took for dates (its check must
                            # see what the second pass will convert, "2024-03-02" not a date).
                            table = _parse_strict(chunk, known) or table
                        rows = _scan_arrow(table, layout, member)
                else:
                    rows = _scan_arrow(table, layout, member)
                layout.rows += rows
                line_base += chunk.to_pybytes().count(b"\n")
    decide_layout(layout)
    return layout


def _as_text_timestamps(data_type: pa.DataType) -> pa.DataType:
    """Inferred timestamps back to strings (kinds are decided from the text, later)."""
    if pa.types.is_timestamp(data_type):
        return pa.string()
    if pa.types.is_struct(data_type):
        return pa.struct([pa.field(f.name, _as_text_timestamps(f.type)) for f in data_type])
    if pa.types.is_list(data_type):
        return pa.list_(_as_text_timestamps(data_type.value_type))
    return data_type


def _merge_schema(known: pa.Schema | None, found: pa.Schema) -> pa.Schema | None:
    """The union of two inferred schemas, or None when they disagree on a type."""
    found = pa.schema([pa.field(f.name, _as_text_timestamps(f.type)) for f in found])
    if known is None:
        return found
    try:
        return pa.unify_schemas([known, found], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _struct_fields(table: pa.Table, name: str) -> dict[str, pa.ChunkedArray]:
    if name not in table.column_names:
        return {}
    column = table.column(name)
    if not pa.types.is_struct(column.type):
        return {}
    flattened = pa.Table.from_arrays([column], names=[name]).flatten()
    return {child.name: flattened.column(index) for index, child in enumerate(column.type)}


def _scan_arrow(table: pa.Table, layout: JsonLayout, member: Member) -> int:
    if "values" in table.column_names and not pa.types.is_struct(table.column("values").type):
        raise ExportFileError(f"{member.label}: 'values' is not an object", path=member.path)
    for target, name in ((layout.values, "values"), (layout.labels, "labels")):
        for key, column in _struct_fields(table, name).items():
            stats = target.setdefault(key, _KeyStats())
            json_class = _class_of_type(column.type)
            item_type = column.type.value_type if pa.types.is_list(column.type) else None
            stats.add(json_class, [_class_of_type(item_type)] if item_type is not None else [])
            if name == "values" and json_class == "string":
                # pyarrow infers ISO-looking text as timestamps; check the text itself.
                _check_fit(key, column.combine_chunks().cast(pa.string()), stats)
    return int(table.num_rows)


def _scan_python(chunk: bytes, layout: JsonLayout, member: Member, line_base: int) -> int:
    rows = 0
    texts: dict[str, list[str | None]] = {}
    for number, line in enumerate(chunk.split(b"\n"), start=line_base + 1):
        if not line.strip():
            continue
        try:
            response = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExportFileError(
                f"{member.label}: response {number} is not valid JSON: {exc}", path=member.path
            ) from None
        if not isinstance(response, dict):
            raise ExportFileError(
                f"{member.label}: response {number} is not a JSON object", path=member.path
            )
        rows += 1
        for target, name in ((layout.values, "values"), (layout.labels, "labels")):
            mapping = response.get(name) or {}
            if not isinstance(mapping, dict):
                raise ExportFileError(
                    f"{member.label}: response {number}: {name!r} is not an object",
                    path=member.path,
                )
            for key, value in mapping.items():
                stats = target.setdefault(key, _KeyStats())
                json_class = _class_of_value(value)
                items = [_class_of_value(item) for item in value] if isinstance(value, list) else []
                stats.add(json_class, items)
                if name == "values" and json_class in ("string", "int", "float"):
                    texts.setdefault(key, []).append(render(value))
    for key, values in texts.items():
        _check_fit(key, pa.array(values, pa.string()), layout.values[key])
    return rows


# --- pass 1, single pass: parse once, spill the tables ---------------------------------------

# Responses end with ``labels`` (not read when no label column is asked for), then
# ``displayedFields`` and ``displayedValues`` (which questions were shown, and their choices):
# never read, and parsing them costs as much as the rest of the response.
_LABELS_ON = b'"labels"'
_DISPLAYED_ON = b'"displayedFields"'
_SPILLED = (RESPONSE_ID, "values", "labels")
_BLANKS = b" \t"
_COMMA, _CLOSE, _CR = 0x2C, 0x7D, 0x0D


def drop_unread_fields(chunk: bytes, first_unread: bytes = _DISPLAYED_ON) -> bytes:
    """The NDJSON chunk with each response's tail from ``first_unread`` on replaced by ``}``.

    A line is cut at its first ``first_unread`` (a quoted key) that follows a comma, if it ends with
    ``}`` (and, for the chunk's last line, which a truncated file would cut short, the tail's
    braces balance). Only a member of the response object itself can be cut there and still
    parse (a nested one leaves an object open), so the caller parses the uncut chunk whenever
    the cut one does not parse, or lost a key that is read (``values`` after the cut).
    Returns ``chunk`` itself when no line was cut.

    The key is looked for first right after a ``}`` (where it follows the ``values`` or
    ``labels`` object): a byte search (``memchr``) over the few ``}`` of a line costs a tenth of
    searching the line for the key, which is half the cost of reading an export. Cutting there
    instead of at an earlier occurrence of the key keeps a prefix of the response's members all
    the same, so the caller's checks hold either way.
    """
    view = memoryview(chunk)
    parts: list[bytes | memoryview] = []
    find = chunk.find
    startswith = chunk.startswith
    after_close = b"," + first_unread
    size = len(chunk)
    start = 0
    cut_any = False
    while start < size:
        end = find(b"\n", start)
        if end < 0:
            end = size
        last = end - 1
        if last > start and chunk[last] == _CR:
            last -= 1
        cut = -1
        if last > start and chunk[last] == _CLOSE:
            close = find(b"}", start, last)
            while close >= 0 and not startswith(after_close, close + 1):
                close = find(b"}", close + 1, last)
            if close >= 0:
                cut = close + 1
            else:
                key = find(first_unread, start, end)
                if key > start:
                    cut = key - 1
                    while cut > start and chunk[cut] in _BLANKS:
                        cut -= 1
                    if chunk[cut] != _COMMA:
                        cut = -1
        if cut > start and (
            end + 1 < size or chunk.count(b"{", cut, last) + 1 == chunk.count(b"}", cut, last + 1)
        ):
            parts.append(view[start:cut])
            parts.append(b"}\n")
            cut_any = True
        else:
            parts.append(view[start : end + 1])
        start = end + 1
    return b"".join(parts) if cut_any else chunk


def _read_options(data: pa.Buffer | bytes) -> pajson.ReadOptions:
    # One block per chunk: chunks are parsed in parallel already, and one block keeps the
    # inferred field order the order of first appearance.
    return pajson.ReadOptions(use_threads=False, block_size=max(len(data), 1) + 1)


def _parse_strict(data: pa.Buffer | bytes, schema: pa.Schema) -> pa.Table | None:
    """``data`` parsed with ``schema``; None if a key is new or a value does not fit."""
    try:
        return pajson.read_json(
            pa.BufferReader(data),
            read_options=_read_options(data),
            parse_options=pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="error"
            ),
        )
    except pa.ArrowInvalid:
        return None


@dataclass
class _Parsed:
    chunk: bytes
    cut: bytes  # ``chunk`` itself when nothing was cut
    schema: pa.Schema | None  # the one ``table`` was tried with
    table: pa.Table | None


class Unreadable(Exception):
    """The single-pass reader cannot read this file; the reference reader takes over."""


def _complete(table: pa.Table, kept: Sequence[str]) -> bool:
    """Every response kept the keys read (none was in a cut tail)."""
    names = table.schema.names
    return all(name in names and table.column(name).null_count == 0 for name in kept)


class _SinglePass:
    """Parses chunks against the schema known so far; a chunk that brings a new key or a wider
    type is inferred and its schema merged in, then parsed again against the merged schema (so
    ISO-looking text stays text, as in the reference reader)."""

    def __init__(self, *, labels: bool) -> None:
        self.known: pa.Schema | None = None
        self.kept = _SPILLED if labels else _SPILLED[:2]
        self._first_unread = _DISPLAYED_ON if labels else _LABELS_ON

    def parse(self, chunk: bytes) -> _Parsed:
        """Worker-thread part: cut and parse against the schema known right now."""
        cut = drop_unread_fields(chunk, self._first_unread)
        known = self.known
        table = _parse_strict(cut, known) if known is not None else None
        return _Parsed(chunk, cut, known, table)

    def settle(self, parsed: _Parsed) -> pa.Table | None:
        """Main-thread part: the chunk's table, learning its schema if needed; None when empty."""
        if parsed.table is not None and (
            parsed.cut is parsed.chunk or _complete(parsed.table, self.kept)
        ):
            return parsed.table
        attempts = [(parsed.cut, parsed.schema)]
        if parsed.cut is not parsed.chunk:
            attempts.append((parsed.chunk, None))
        for data, tried in attempts:
            try:
                table = self._read(data, tried)
            except _Empty:
                return None
            if table is not None and (data is parsed.chunk or _complete(table, self.kept)):
                return table
        raise Unreadable

    def _read(self, data: bytes, tried: pa.Schema | None) -> pa.Table | None:
        if self.known is not None and self.known != tried:
            table = _parse_strict(data, self.known)
            if table is not None:
                return table
        try:
            inferred = pajson.read_json(pa.BufferReader(data), read_options=_read_options(data))
        except pa.ArrowInvalid as exc:
            if "Empty JSON" in str(exc):
                raise _Empty from None
            return None  # the cut broke a line, or the chunk is malformed
        merged = _merge_schema(self.known, inferred.schema)
        if merged is None:
            raise Unreadable  # a key mixing types
        self.known = merged
        return _parse_strict(data, merged)


class _Empty(Exception):
    """A chunk of blank lines."""


def parsed_tables(
    members: Sequence[Member],
    format: Literal["json", "ndjson"],
    layout: JsonLayout,
    *,
    labels: bool = True,
) -> Generator[tuple[int, Member, pa.Table], None, None]:
    """Every chunk of every member parsed once, as ``(member index, member, table)`` with the
    spilled columns; ``layout``'s statistics take each table in before it is yielded.

    Raises :class:`Unreadable` when pyarrow cannot read the file (a key mixing numbers and
    text, malformed input): the reference reader then decides, and words any error.
    """
    reader = _SinglePass(labels=labels)
    for index, member in enumerate(members):
        with (
            open_ndjson(member, format) as stream,
            Prefetch(line_chunks(stream, _CHUNK_BYTES)) as chunks,
            ordered_map(reader.parse, chunks, parse_workers()) as parsed_chunks,
        ):
            for parsed in parsed_chunks:
                table = reader.settle(parsed)
                if table is None:
                    continue
                _check_spillable(table)
                layout.rows += _scan_arrow(table, layout, member)
                yield (
                    index,
                    member,
                    table.select([n for n in reader.kept if n in table.schema.names]),
                )


# The ``values`` keys every response of an unrestricted JSON export carries, in file order
# (research notes §4.1): the survey metadata but the location, recipient and external-reference
# fields, which a response has only when they are known.
EMPTY_EXPORT_KEYS: tuple[str, ...] = (
    *(
        key
        for key in get_args(SurveyMetadataId)
        if not key.startswith(("location", "recipient", "external"))
    ),
    "userLanguage",
)
# surveyMetadataIds spells the externalDataReference key "externalReference" (§4.1).
_METADATA_ID_KEYS = {"externalReference": "externalDataReference"}
# The key sortByLastModifiedDate adds to every response, after the survey metadata.
LAST_MODIFIED_KEY = "lastModifiedDate"


def empty_export_keys(
    survey_metadata_ids: Sequence[str] | None, *, sort_by_last_modified_date: bool = False
) -> tuple[str, ...]:
    """The ``values`` keys every response of an export requested with ``survey_metadata_ids``
    (and ``sort_by_last_modified_date``) carries, in file order: :data:`EMPTY_EXPORT_KEYS`
    without ``surveyMetadataIds``, else those of them it names (``userLanguage`` is none: a
    restricted export lacks it); then ``lastModifiedDate`` when sorted by it."""
    last_modified = (LAST_MODIFIED_KEY,) if sort_by_last_modified_date else ()
    if survey_metadata_ids is None:
        return (*EMPTY_EXPORT_KEYS, *last_modified)
    named = {_METADATA_ID_KEYS.get(name, name) for name in survey_metadata_ids}
    return (*(key for key in EMPTY_EXPORT_KEYS if key in named), *last_modified)


def decide_layout(layout: JsonLayout) -> None:
    """Whether pyarrow can read every key, and each key's kind, from the statistics so far.

    An export without a single response names no key, so its columns are what can be known
    without one: ``responseId`` and the survey metadata every response of the same request
    carries (:func:`empty_export_keys` of its ``surveyMetadataIds`` and
    ``sortByLastModifiedDate``), typed by their ImportIds
    as a non-empty export types them. Question, embedded-data and label columns cannot be
    known (a response holds only the keys it answered), so an empty export's file has those
    columns and zero rows.
    """
    if layout.rows == 0 and not layout.values:
        keys = empty_export_keys(
            layout.survey_metadata_ids,
            sort_by_last_modified_date=layout.sort_by_last_modified_date,
        )
        layout.values = {key: _KeyStats() for key in keys}
    layout.arrow_readable = all(
        stats.arrow_readable for stats in (*layout.values.values(), *layout.labels.values())
    )
    layout.kinds = {key: _decide_kind(key, stats) for key, stats in layout.values.items()}


def layout_signature(layout: JsonLayout) -> tuple[object, ...]:
    """Everything about the statistics so far that shapes the output: the keys in order, their
    kinds and the types they are read as. Equal signatures give equal output."""
    return (
        all(s.arrow_readable for s in (*layout.values.values(), *layout.labels.values())),
        [(k, _decide_kind(k, s), _read_type(s)) for k, s in layout.values.items()],
        [(k, _read_type(s)) for k, s in layout.labels.items()],
    )


def scan_and_spill(
    members: Sequence[Member],
    format: Literal["json", "ndjson"],
    *,
    survey_metadata_ids: Sequence[str] | None = None,
    sort_by_last_modified_date: bool = False,
) -> JsonLayout | None:
    """The reference scan's layout, reading the file once and spilling the parsed tables.

    None when pyarrow cannot read the file: the reference reader then decides.
    """
    layout = JsonLayout(
        values={},
        labels={},
        rows=0,
        survey_metadata_ids=survey_metadata_ids,
        sort_by_last_modified_date=sort_by_last_modified_date,
    )
    spill = Spill()
    try:
        for index, _, table in parsed_tables(members, format, layout):
            spill.append(index, table)
        spill.finish()
    except (Unreadable, ExportFileError):
        spill.close()
        return None
    except BaseException:
        spill.close()
        raise
    decide_layout(layout)
    if layout.arrow_readable:
        layout.spill = spill
    else:
        spill.close()
    return layout


def _check_spillable(table: pa.Table) -> None:
    names = table.schema.names
    if RESPONSE_ID in names:
        response_id = table.schema.field(RESPONSE_ID).type
        if not (pa.types.is_string(response_id) or pa.types.is_null(response_id)):
            raise Unreadable
    for name in ("values", "labels"):
        if name in names and not pa.types.is_struct(table.schema.field(name).type):
            raise Unreadable


def _check_fit(key: str, texts: pa.Array, stats: _KeyStats) -> None:
    """Record which of the kinds this key could take its text values do not fit."""
    rule = kind_for_import_id(key)
    if rule == "string":
        return
    candidates: tuple[ColumnKind, ...] = (rule, "float") if rule == "integer" else (rule,)
    for kind in candidates:
        if kind in stats.unfit:
            continue
        _, invalid = convert_checked(texts, CellTyping(kind))
        if invalid is not None and first_invalid(invalid) is not None:
            stats.unfit.add(kind)


def _decide_kind(key: str, stats: _KeyStats) -> ColumnKind:
    """A key's kind: its ImportId's, unless the JSON values say otherwise.

    Lists (multi-select), booleans and objects become text; numbers stay numbers (integers when
    all are); text keeps the ImportId's kind only if every value in the file fits it.
    """
    rule = kind_for_import_id(key)
    classes = stats.classes
    if not classes:
        return rule
    if classes & {"list", "bool", "object"}:
        return "string"
    numbers = classes & {"int", "float"}
    if "string" not in classes:
        if rule == "timestamp":
            return "string"
        if numbers == {"int"} and rule in ("integer", "string"):
            return "integer"
        return "float"
    if rule == "string":
        return "string"
    if rule == "integer" and "float" in numbers:
        rule = "float"
    if rule not in stats.unfit:
        return rule
    if rule == "integer" and "float" not in stats.unfit:
        return "float"
    return "string"


def build_columns(layout: JsonLayout) -> list[ExportColumn]:
    """``responseId``, the ``values`` keys, then one label column per ``labels`` key."""
    columns = [
        ExportColumn(
            name=RESPONSE_ID,
            export_tag=RESPONSE_ID,
            question_text=None,
            import_id=RESPONSE_ID,
            time_zone=None,
            kind="string",
        )
    ]
    for key, kind in layout.kinds.items():
        if key != RESPONSE_ID:
            columns.append(ExportColumn(key, key, None, key, None, kind))
    taken = {c.name for c in columns}
    for key in layout.labels:
        name = unique_names([*taken, f"{key}_label"])[-1]
        taken.add(name)
        owner = key if key in layout.kinds and key != RESPONSE_ID else None
        columns.append(ExportColumn(name, key, None, key, None, "string", True, owner))
    return columns


# --- pass 2: read -----------------------------------------------------------------------------


def render(value: object) -> str | None:
    """A JSON value as the text a CSV export would hold (lists comma-joined)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list):
        return ",".join(text for text in map(render, value) if text is not None)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class JsonRead:
    """What to read: value columns (kinds decided) and label columns, in output order."""

    columns: Sequence[ExportColumn]
    errors: Errors
    time_zone: str

    @property
    def value_keys(self) -> list[str]:
        return [c.import_id for c in self.columns if not c.is_label and c.name != RESPONSE_ID]

    @property
    def label_keys(self) -> list[str]:
        return [c.import_id for c in self.columns if c.is_label]


def _source_name(column: ExportColumn) -> str:
    """Name of a column in the raw batches: the key, or NUL + key for a label."""
    if column.is_label:
        return "\x00" + column.import_id
    return column.import_id


def iter_json_batches(
    members: Sequence[Member],
    format: Literal["json", "ndjson"],
    layout: JsonLayout,
    read: JsonRead,
    *,
    block_size: int,
    invalid_counts: dict[str, int],
) -> Iterator[pa.RecordBatch]:
    """Batches with the value columns (names = ImportIds) then ``<key>_label`` text columns."""
    for index, member in enumerate(members):
        if layout.arrow_readable and layout.spill is not None:
            batches = _spilled_batches(layout.spill, index, layout, read)
        elif layout.arrow_readable:
            batches = _arrow_batches(member, format, layout, read, block_size)
        else:
            batches = _python_batches(member, format, read)
        row = 0
        for raw in batches:
            yield finish_batch(raw, read, member, row, invalid_counts)
            row += raw.num_rows


def _read_type(stats: _KeyStats) -> pa.DataType:
    classes = stats.classes
    if "list" in classes:
        items = stats.items
        item = pa.string() if "string" in items or not items else pa.float64()
        if items == {"int"}:
            item = pa.int64()
        elif items == {"bool"}:
            item = pa.bool_()
        return pa.list_(item)
    if "bool" in classes:
        return pa.bool_()
    if "string" in classes:
        return pa.string()
    if "float" in classes:
        return pa.float64()
    if "int" in classes:
        return pa.int64()
    return pa.string()


def _arrow_batches(
    member: Member,
    format: Literal["json", "ndjson"],
    layout: JsonLayout,
    read: JsonRead,
    block_size: int,
) -> Iterator[pa.RecordBatch]:
    keys = read.value_keys
    label_keys = read.label_keys
    value_fields = [pa.field(key, _read_type(layout.values[key])) for key in keys]
    label_fields = [pa.field(key, _read_type(layout.labels[key])) for key in label_keys]
    fields = [pa.field(RESPONSE_ID, pa.string()), pa.field("values", pa.struct(value_fields))]
    if label_fields:
        fields.append(pa.field("labels", pa.struct(label_fields)))
    schema = pa.schema(fields)
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    with (
        open_ndjson(member, format) as stream,
        Prefetch(record_chunks(stream, _CHUNK_BYTES, quote=b"")) as chunks,
    ):
        for chunk in chunks:
            try:
                table = pajson.read_json(
                    pa.BufferReader(chunk),
                    read_options=pajson.ReadOptions(use_threads=True, block_size=block_size),
                    parse_options=options,
                )
            except pa.ArrowInvalid as exc:
                if "Empty JSON" in str(exc):
                    continue
                raise ExportFileError(
                    f"{member.label}: unreadable JSON (did the file change?): {exc}",
                    path=member.path,
                ) from None
            for batch in table.to_batches():
                arrays = [batch.column(RESPONSE_ID)]
                names = [RESPONSE_ID]
                arrays.extend(batch.column("values").flatten())
                names.extend(keys)
                if label_fields:
                    arrays.extend(batch.column("labels").flatten())
                    names.extend("\x00" + key for key in label_keys)
                yield pa.RecordBatch.from_arrays(arrays, names=names)


def _spilled_batches(
    spill: Spill, index: int, layout: JsonLayout, read: JsonRead
) -> Iterator[pa.RecordBatch]:
    """The first pass's tables of member ``index``, in the layout :func:`_arrow_batches` reads.

    Tables parsed before a key was first seen lack it, and those parsed before a type widened
    (integers, then a decimal) hold the narrower one: both are brought to the final types here.
    """
    for batch in spill.batches(index):
        yield raw_batch(batch, layout, read, copy=True)


def raw_batch(
    batch: pa.RecordBatch | pa.Table, layout: JsonLayout, read: JsonRead, *, copy: bool
) -> pa.RecordBatch:
    """A first-pass batch (``responseId``, ``values``, ``labels``) as :func:`_arrow_batches`
    reads it: one column per key, at the type :func:`_read_type` gives it (``copy``: in
    buffers of its own, see :func:`_conform`)."""
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else _empty_batch(batch)
    rows = batch.num_rows
    values = _children(batch, "values")
    labels = _children(batch, "labels")
    response_ids = batch.column(RESPONSE_ID) if RESPONSE_ID in batch.schema.names else None
    arrays = [_conform(response_ids, pa.string(), rows, copy)]
    for key in read.value_keys:
        arrays.append(_conform(values.get(key), _read_type(layout.values[key]), rows, copy))
    for key in read.label_keys:
        arrays.append(_conform(labels.get(key), _read_type(layout.labels[key]), rows, copy))
    names = [RESPONSE_ID, *read.value_keys, *("\x00" + key for key in read.label_keys)]
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _empty_batch(table: pa.Table) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array([], f.type) for f in table.schema], schema=table.schema
    )


def _children(batch: pa.RecordBatch, name: str) -> dict[str, pa.Array]:
    """A struct column's fields, null wherever the struct is (``flatten``)."""
    if name not in batch.schema.names:
        return {}
    struct = batch.column(name)
    return {field.name: child for field, child in zip(struct.type, struct.flatten(), strict=True)}


def _conform(values: pa.Array | None, target: pa.DataType, rows: int, copy: bool) -> pa.Array:
    """``values`` as ``target``, in buffers of its own.

    A spilled batch is read into one buffer that every column slices; a column passed on as a
    slice would keep all of it (labels, the text of converted columns) alive until its row group
    is written, which triples the memory held by the row groups in flight.
    """
    if values is None:
        return pa.nulls(rows, target)
    if values.type != target:
        return values.cast(target, safe=False)
    return pa.concat_arrays([values]) if copy else values


def _python_batches(
    member: Member, format: Literal["json", "ndjson"], read: JsonRead
) -> Iterator[pa.RecordBatch]:
    keys = read.value_keys
    label_keys = read.label_keys
    names = [RESPONSE_ID, *keys, *("\x00" + key for key in label_keys)]
    with (
        open_ndjson(member, format) as stream,
        Prefetch(record_chunks(stream, 1 << 20, quote=b"")) as chunks,
    ):
        for chunk in chunks:
            rows: list[list[str | None]] = [[] for _ in names]
            for line in chunk.to_pybytes().split(b"\n"):
                if not line.strip():
                    continue
                try:
                    response: dict[str, Any] = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ExportFileError(
                        f"{member.label}: invalid JSON response: {exc}", path=member.path
                    ) from None
                values: Mapping[str, Any] = response.get("values") or {}
                labels: Mapping[str, Any] = response.get("labels") or {}
                rows[0].append(render(response.get(RESPONSE_ID)))
                for index, key in enumerate(keys, start=1):
                    rows[index].append(render(values.get(key)))
                for index, key in enumerate(label_keys, start=1 + len(keys)):
                    rows[index].append(render(labels.get(key)))
            yield pa.RecordBatch.from_arrays(
                [pa.array(column, pa.string()) for column in rows], names=names
            )


def finish_batch(
    batch: pa.RecordBatch,
    read: JsonRead,
    member: Member,
    first_row: int,
    invalid_counts: dict[str, int],
) -> pa.RecordBatch:
    arrays = [
        _to_kind(
            batch.column(_source_name(column)), column, read, member, first_row, invalid_counts
        )
        for column in read.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in read.columns])


def _to_text(values: pa.Array) -> pa.Array:
    if pa.types.is_list(values.type):
        return pc.binary_join(values, ",")
    if not pa.types.is_string(values.type):
        return values.cast(pa.string())
    return values


def _to_kind(
    values: pa.Array,
    column: ExportColumn,
    read: JsonRead,
    member: Member,
    first_row: int,
    invalid_counts: dict[str, int],
) -> pa.Array:
    target = ARROW_TYPES[column.kind]
    if values.type == target:
        return values
    if pa.types.is_list(values.type) or column.kind == "string":
        return _to_text(values)
    if pa.types.is_integer(values.type) and column.kind == "float":
        return values.cast(target)
    if not pa.types.is_string(values.type):
        values = _to_text(values)  # e.g. a float column overridden to integer: check each cell
    typed, invalid = convert_checked(values, CellTyping(column.kind, read.time_zone))
    index = first_invalid(invalid) if invalid is not None else None
    if index is not None and invalid is not None:
        if read.errors == "raise":
            raise ExportFileError(
                f"{member.label}: response {first_row + index + 1}, value {column.import_id!r}: "
                f"{values[index].as_py()!r} is not a valid {column.kind}. Pass column_types="
                f"{{{column.import_id!r}: 'string'}} to keep it as text, or errors='null'.",
                path=member.path,
                row=first_row + index + 1,
                column=column.name,
            )
        invalid_counts[column.name] = invalid_counts.get(column.name, 0) + int(
            pc.sum(invalid).as_py() or 0
        )
    return typed
