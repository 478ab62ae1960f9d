"""Where a chunk of CSV text may be cut: after the last newline outside a quoted field.

A file with an unbalanced quote (a broken export) has no such newline for the rest of the
file, so every chunk is searched back to its start; that search must stay one pass over the
chunk, or a broken 1,000,000-row export takes minutes to be refused instead of seconds.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qualflow.qualtrics._export_io import _last_record_end


def _reference(data: bytes, quote: bytes, odd: bool) -> tuple[int, int]:
    """The definition: the last newline preceded by an even number of quotes (counting the
    ``odd`` one before the chunk); quotes after it are counted from there."""
    for position in range(len(data) - 1, -1, -1):
        if data[position : position + 1] == b"\n":
            before = (data[:position].count(quote) if quote else 0) + odd
            if before % 2 == 0:
                return position + 1, data[position:].count(quote) if quote else 0
    return 0, data.count(quote) if quote else 0


@given(
    st.lists(st.sampled_from([b"a", b",", b'"', b"\n", b'""', b"\r\n"]), max_size=60).map(b"".join),
    st.sampled_from([b'"', b""]),
    st.booleans(),
)
def test_the_cut_is_the_last_newline_outside_quotes(data: bytes, quote: bytes, odd: bool) -> None:
    assert _last_record_end(data, quote, odd) == _reference(data, quote, odd)


class _CountingBytes(bytes):
    """Bytes that add up how many bytes their searches scan."""

    scanned = 0

    def count(self, sub, start=None, end=None):  # type: ignore[no-untyped-def, override]
        _CountingBytes.scanned += len(self[slice(start, end)])
        return bytes.count(self, sub, start, end)

    def rfind(self, sub, start=None, end=None):  # type: ignore[no-untyped-def, override]
        found = bytes.rfind(self, sub, start, end)
        # A backward search reads from its end down to what it finds.
        _CountingBytes.scanned += (len(self) if end is None else end) - max(found, start or 0)
        return found


def test_a_chunk_inside_an_unclosed_quote_is_searched_in_one_pass() -> None:
    lines = b"".join(b"2024-01-01,R_%06d,some text,42\n" % i for i in range(5_000))
    chunk = _CountingBytes(lines)
    _CountingBytes.scanned = 0
    # An odd quote before the chunk: no newline in it ends a record.
    assert _last_record_end(chunk, b'"', True) == (0, 0)
    # Each byte is looked at a few times at most, not once per line after it.
    assert _CountingBytes.scanned <= 4 * len(chunk), _CountingBytes.scanned / len(chunk)
