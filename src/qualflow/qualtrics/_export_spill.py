"""Arrow tables parked in temporary files between the two passes over an export.

A JSON export's column types are known only once the whole file has been read, so its first
pass keeps what it parsed here instead of parsing everything again in the second. Tables go to
Arrow IPC stream files (one per run of tables sharing a schema and a source), read back in the
order written; only a batch at a time is in memory, and the files (plain reads, no memory map,
so they never count towards the process's resident memory) are removed by :meth:`Spill.close`
or when the spill is garbage-collected.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class _Segment:
    source: int
    path: str


def _remove(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    paths.clear()


class Spill:
    """Tables appended per ``source`` (e.g. a ZIP member's index), read back in order."""

    def __init__(self) -> None:
        self._segments: list[_Segment] = []
        self._paths: list[str] = []
        self._sink: pa.NativeFile | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._schema: pa.Schema | None = None
        self._source = -1
        self._removal = weakref.finalize(self, _remove, self._paths)

    def append(self, source: int, table: pa.Table) -> None:
        if self._writer is None or source != self._source or table.schema != self._schema:
            self._close_writer()
            handle, path = tempfile.mkstemp(prefix="qualflow-spill-", suffix=".arrow")
            os.close(handle)
            self._paths.append(path)
            self._segments.append(_Segment(source, path))
            self._sink = pa.OSFile(path, "wb")
            self._writer = pa.ipc.new_stream(self._sink, table.schema)
            self._schema = table.schema
            self._source = source
        self._writer.write_table(table)

    def finish(self) -> None:
        """No more tables: flush the last file."""
        self._close_writer()

    def batches(self, source: int) -> Iterator[pa.RecordBatch]:
        """The batches of ``source``'s tables, in the order they were appended."""
        for segment in self._segments:
            if segment.source != source:
                continue
            with pa.OSFile(segment.path, "rb") as stream:
                yield from pa.ipc.open_stream(stream)

    def close(self) -> None:
        """Remove the files (idempotent)."""
        self._close_writer()
        self._removal()

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None
