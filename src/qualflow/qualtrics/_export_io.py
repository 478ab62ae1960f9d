"""Byte streams over a downloaded export: ZIP members or raw files, always forward-only UTF-8."""

from __future__ import annotations

import codecs
import collections
import contextlib
import io
import os
import queue
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Generic, TypeVar, cast

import pyarrow as pa

# Re-exported: defined without pyarrow, so the command line catches it without reading exports.
from qualflow.qualtrics.export_errors import ExportFileError as ExportFileError

try:  # ISA-L inflates ZIP members over twice as fast as zlib; zlib is the fallback.
    from isal import isal_zlib as _inflate_lib
except ImportError:  # pragma: no cover - isal is a dependency on CPython
    _inflate_lib = zlib  # type: ignore[misc]

_READ_ERRORS = cast(
    tuple[type[Exception], ...], (zipfile.BadZipFile, zlib.error, _inflate_lib.error, EOFError)
)

StrPath = str | os.PathLike[str]
T = TypeVar("T")
C = TypeVar("C")

_READ_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class Member:
    """One data file of an export: a ZIP member, or the raw file itself (``name`` None)."""

    path: str
    name: str | None

    @property
    def label(self) -> str:
        return self.path if self.name is None else f"{self.path}!{self.name}"


def list_members(path: StrPath, *, compressed: bool) -> list[Member]:
    """The data files of an export, in archive order.

    Qualtrics puts one data file in the ZIP (splitting very large exports over several files of
    the same layout); folders and macOS resource forks are skipped.
    """
    text_path = os.fspath(path)
    if not os.path.isfile(text_path):
        raise ExportFileError(f"export file not found: {text_path}", path=text_path)
    if not compressed:
        return [Member(text_path, None)]
    try:
        with zipfile.ZipFile(text_path) as archive:
            names = [
                info.filename
                for info in archive.infolist()
                if not info.is_dir()
                and not info.filename.startswith("__MACOSX/")
                and not os.path.basename(info.filename).startswith(".")
            ]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise ExportFileError(
            f"not a readable ZIP export: {text_path}: {exc}", path=text_path
        ) from exc
    if not names:
        raise ExportFileError(f"ZIP export holds no data file: {text_path}", path=text_path)
    return [Member(text_path, name) for name in names]


class Utf8Stream:
    """A forward-only UTF-8 byte stream: ``readline`` for header rows, then ``read``.

    Bytes already buffered (BOM sniffing, header lines) are served first; after that ``read``
    hands the underlying stream's result through without another copy.
    """

    def __init__(self, source: IO[bytes], pending: bytes = b"") -> None:
        self._source = source
        self._pending = pending

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self._pending.find(b"\n")
            if end >= 0 or (0 <= limit <= len(self._pending)):
                cut = end + 1 if end >= 0 else limit
                if 0 <= limit < cut:
                    cut = limit
                line, self._pending = self._pending[:cut], self._pending[cut:]
                return line
            more = self._source.read(64 * 1024)
            if not more:
                line, self._pending = self._pending, b""
                return line
            self._pending += more

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            return self._source.read(size)
        if size < 0:
            data, self._pending = self._pending + self._source.read(), b""
            return data
        if len(self._pending) >= size:
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        data, self._pending = self._pending, b""
        return data + self._source.read(size - len(data))


class _Utf16ToUtf8(io.RawIOBase):
    """Transcodes a UTF-16 stream (with BOM) to UTF-8 on the fly."""

    def __init__(self, source: Utf8Stream) -> None:
        super().__init__()
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-16")(errors="strict")
        self._pending = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        while not self._pending and not self._eof:
            raw = self._source.read(_READ_SIZE)
            self._eof = not raw
            self._pending = self._decoder.decode(raw, final=self._eof).encode("utf-8")
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


@contextmanager
def open_utf8(member: Member) -> Iterator[Utf8Stream]:
    """Open a member as a forward-only UTF-8 byte stream (BOM removed).

    UTF-16 files (Excel-style TSV) are transcoded; anything else is passed through as UTF-8.
    """
    try:
        with _open_raw(member) as raw:
            head = raw.read(4)
            if head.startswith(codecs.BOM_UTF8):
                yield Utf8Stream(raw, head[3:])
            elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                transcoded = _Utf16ToUtf8(Utf8Stream(raw, head))
                with io.BufferedReader(transcoded, buffer_size=_READ_SIZE) as stream:
                    yield Utf8Stream(stream)
            else:
                yield Utf8Stream(raw, head)
    except _READ_ERRORS as exc:
        raise ExportFileError(f"corrupt export {member.label}: {exc}", path=member.path) from exc


@contextmanager
def _open_raw(member: Member) -> Iterator[IO[bytes]]:
    if member.name is None:
        with open(member.path, "rb") as raw_file:
            yield raw_file
        return
    try:
        archive = zipfile.ZipFile(member.path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ExportFileError(
            f"not a readable ZIP export: {member.path}: {exc}", path=member.path
        ) from exc
    with archive:
        info = archive.getinfo(member.name)
        if info.compress_type == zipfile.ZIP_DEFLATED and not info.flag_bits & 0x1:
            with open(member.path, "rb") as raw_file:
                yield cast(IO[bytes], _DeflatedMember(raw_file, info, member))
            return
        with archive.open(member.name) as zipped:  # stored, bzip2, lzma: the stdlib reader
            yield zipped


_LOCAL_HEADER = struct.Struct("<4s22xHH")


class _DeflatedMember(io.RawIOBase):
    """A deflated ZIP member read straight from the archive file, CRC-checked at the end.

    Same bytes as ``ZipFile.open``, but inflated with ISA-L in large steps; output per step is
    capped, so a ZIP bomb cannot balloon memory.
    """

    _STEP = 256 * 1024

    def __init__(self, raw: IO[bytes], info: zipfile.ZipInfo, member: Member) -> None:
        super().__init__()
        self._raw = raw
        self._info = info
        self._member = member
        raw.seek(info.header_offset)
        signature, name_size, extra_size = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
        if signature != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local file header for {info.filename!r}")
        raw.seek(info.header_offset + _LOCAL_HEADER.size + name_size + extra_size)
        self._left = info.compress_size
        self._inflater: Any = _inflate_lib.decompressobj(-15)
        self._tail = b""
        self._crc = 0
        self._size = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        limit = size if size > 0 else 1 << 30
        while not self._done:
            if not self._tail:
                self._tail = self._raw.read(min(self._left, self._STEP)) if self._left else b""
                self._left -= len(self._tail)
            if not self._tail:
                out = self._inflater.flush()
                self._tail = b""
                self._finish(out)
                if out:
                    return out  # type: ignore[no-any-return]
                break
            out = self._inflater.decompress(self._tail, limit)
            self._tail = self._inflater.unconsumed_tail
            if out:
                self._crc = _inflate_lib.crc32(out, self._crc)
                self._size += len(out)
                return out  # type: ignore[no-any-return]
            if self._inflater.eof:
                self._finish(b"")
        return b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _finish(self, out: bytes) -> None:
        if out:
            self._crc = _inflate_lib.crc32(out, self._crc)
            self._size += len(out)
        self._done = True
        if self._size != self._info.file_size or self._crc != self._info.CRC:
            raise zipfile.BadZipFile(
                f"{self._member.label}: truncated or corrupt (size or CRC-32 differs)"
            )


# --- chunking ---------------------------------------------------------------------------------
#
# pyarrow is never handed a Python file object: its read-ahead threads would call back into
# Python, and after a parse error they outlive the reader (the interpreter then hangs or aborts
# at exit). Instead the stream is cut here into chunks of whole records, each parsed in memory.


def _last_record_end(data: bytes, quote: bytes, odd: bool) -> tuple[int, int]:
    """``(cut, quotes)``: offset just past the last newline of ``data`` that ends a record
    (0 if none) and how many quote characters follow the cut.

    With RFC 4180 quoting a newline ends a record iff an even number of quote characters
    precede it since the record began (escaped quotes come in pairs); ``odd`` says whether an
    odd number came before ``data``.
    """
    total = data.count(quote) if quote else 0
    position = data.rfind(b"\n")
    after = 0
    end = len(data)
    while position >= 0:
        # Only the quotes between this newline and the one tried before: inside an unclosed
        # quote no newline qualifies, and recounting to the end each time made a chunk cost
        # its size times its lines.
        after += data.count(quote, position, end) if quote else 0
        if (total - after + odd) % 2 == 0:
            return position + 1, after
        end = position
        position = data.rfind(b"\n", 0, position)
    return 0, total


MAX_RECORD_BYTES = 64 << 20


def record_chunks(stream: Utf8Stream, size: int, *, quote: bytes = b'"') -> Iterator[pa.Buffer]:
    """Chunks of about ``size`` bytes holding whole records (lines, for ``quote=b""``).

    Each byte is scanned for quotes once and copied once, into Arrow's memory pool (which
    recycles its pages; fresh ``bytes`` of this size cost a page fault per 4 KB). A record may
    not exceed ``MAX_RECORD_BYTES``: past that the input has an unbalanced quote (or is not a
    record file) and is refused rather than buffered to the end.
    """
    pieces: list[bytes] = []  # the start of the next chunk: no record end found in it yet
    pending = 0
    odd = False
    while True:
        data = stream.read(size)
        if not data:
            rest = b"".join(pieces)
            if rest.strip():
                yield pa.py_buffer(rest if rest.endswith(b"\n") else rest + b"\n")
            return
        cut, after = _last_record_end(data, quote, odd)
        if cut == 0:
            pieces.append(data)
            pending += len(data)
            odd = (odd + after) % 2 == 1
            if pending > MAX_RECORD_BYTES:
                raise ExportFileError(
                    f"a single record exceeds {MAX_RECORD_BYTES >> 20} MB: unbalanced quote, "
                    "or not a response export"
                )
            continue
        yield _concat([*pieces, memoryview(data)[:cut]])
        pieces = [data[cut:]] if cut < len(data) else []
        pending = len(data) - cut
        odd = after % 2 == 1


def line_chunks(stream: Utf8Stream, size: int) -> Iterator[bytes]:
    """Chunks of about ``size`` bytes holding whole lines, as ``bytes`` (each byte copied once).

    For readers that search the text in Python before handing it to pyarrow; like
    :func:`record_chunks`, a line may not exceed ``MAX_RECORD_BYTES``.
    """
    rest = b""
    while True:
        data = stream.read(size)
        if not data:
            if rest.strip():
                yield rest if rest.endswith(b"\n") else rest + b"\n"
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest += data
            if len(rest) > MAX_RECORD_BYTES:
                raise ExportFileError(
                    f"a single line exceeds {MAX_RECORD_BYTES >> 20} MB: not a response export"
                )
            continue
        yield b"".join((rest, memoryview(data)[:cut])) if rest else data[:cut]
        rest = data[cut:]


def _concat(parts: list[bytes | memoryview]) -> pa.Buffer:
    buffer = pa.allocate_buffer(sum(len(part) for part in parts))
    view = memoryview(buffer).cast("B")
    offset = 0
    for part in parts:
        view[offset : offset + len(part)] = part
        offset += len(part)
    return buffer


class Prefetch(Generic[T]):
    """Runs a chunk generator on a helper thread, ``depth`` chunks ahead of the consumer.

    Decompression (zlib drops the GIL) then overlaps with parsing. Use as a context manager:
    leaving it stops and joins the thread before the underlying stream is closed.
    """

    _DONE = object()

    def __init__(self, source: Iterator[T], depth: int = 2) -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qualflow-export-read", daemon=True)

    def __enter__(self) -> Iterator[T]:
        self._thread.start()
        return self._iterate()

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)  # unblock a producer waiting on a full queue
        self._thread.join()

    def _run(self) -> None:
        try:
            for chunk in self._source:
                if not self._put(chunk):
                    return
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._put(exc)
            return
        self._put(self._DONE)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _iterate(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)


def parse_workers() -> int:
    """Threads that parse chunks at once (pyarrow drops the GIL while parsing)."""
    return max(2, min(4, os.cpu_count() or 2))


@contextmanager
def ordered_map(
    function: Callable[[C], T], chunks: Iterator[C], workers: int
) -> Iterator[Iterator[T]]:
    """``map(function, chunks)`` on a thread pool, results in input order, a few chunks ahead.

    Leaving the context cancels queued work and waits for running work, so no thread outlives
    the streams it reads from.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qualflow-export-parse")

    def results() -> Iterator[T]:
        pending: collections.deque[Future[T]] = collections.deque()
        for chunk in chunks:
            pending.append(pool.submit(function, chunk))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    try:
        yield results()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
