"""Content-defined chunking: where to cut a file so that an edit moves only nearby cuts.

A cut depends only on a few dozen bytes around it, never on where the file or the previous
chunk started, so inserting or deleting bytes in a large file changes the chunks around the
edit and leaves the others — and their content addresses — as they were: a new version of a
file stores only the chunks that differ.

The rule is built from C-speed primitives, because a byte-at-a-time rolling hash (gear,
FastCDC) runs at about 10 MB/s in CPython. Each byte maps to one bit (a fixed pseudo-random
table, ``bytes.translate``); where a run of at least ``RUN_BYTES`` one-bits ends
(``bytes.find``) is a candidate, and a candidate is a cut when the CRC-32 of the 32 bytes
before it has its low bits zero. On random data a candidate comes about every
2**(RUN_BYTES + 1) bytes and the CRC filter sets the average; a long run of ones (all-zero
data, say) is one candidate, so no input makes the search slow. Low-entropy data may have no
cut at all; ``max_bytes`` bounds the chunks then.

Sizes (:class:`ChunkSizes`): no cut before ``min_bytes``, a forced cut at ``max_bytes``, and
FastCDC's normalised chunking around ``avg_bytes``: a harder filter (two more bits) before the
average point, an easier one (two fewer) after it, which narrows the spread of chunk sizes.
Data no longer than ``min_bytes`` is one chunk. Callers chunk in a worker thread, never on the
event loop (``bench/pipelines.py`` measures the throughput).

Pure: no I/O. This module must not know where chunks are stored.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from edgeweave.errors import ConfigError

RUN_BYTES = 6
WINDOW_BYTES = 32
_RUN = b"\x01" * RUN_BYTES


@dataclass(frozen=True)
class ChunkSizes:
    min_bytes: int = 64 * 1024
    avg_bytes: int = 256 * 1024
    max_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        if not 64 <= self.min_bytes < self.avg_bytes < self.max_bytes:
            raise ConfigError("chunk sizes need 64 <= min_bytes < avg_bytes < max_bytes")
        if self.avg_bytes & (self.avg_bytes - 1):
            raise ConfigError(f"avg_bytes must be a power of two, got {self.avg_bytes}")
        if self.avg_bytes.bit_length() - RUN_BYTES > 32:
            raise ConfigError("avg_bytes may be at most 4 TiB")

    @property
    def hard_mask(self) -> int:
        """CRC bits that must be zero before the average point: with the candidate run, two
        bits more than log2(avg) (cuts are rarer)."""
        return (1 << max(self.avg_bytes.bit_length() - RUN_BYTES, 0)) - 1

    @property
    def easy_mask(self) -> int:
        """After the average point: two bits fewer than log2(avg) (cuts come sooner)."""
        return (1 << max(self.avg_bytes.bit_length() - 4 - RUN_BYTES, 0)) - 1


@functools.cache
def bit_table() -> bytes:
    """The byte → bit table for ``bytes.translate``: half the byte values map to 1, the same
    on every machine (ordered by sha256)."""
    ranked = sorted(range(256), key=lambda b: hashlib.sha256(b"edgeweave-cdc-%d" % b).digest())
    table = bytearray(256)
    for b in ranked[:128]:
        table[b] = 1
    return bytes(table)


def mark(data: bytes) -> bytes:
    """The bit of every byte of ``data`` (computed once per buffer, passed to cut_point)."""
    return data.translate(bit_table())


def cut_point(data: bytes, marks: bytes, start: int, end: int, sizes: ChunkSizes) -> int:
    """The end of the chunk that starts at ``start`` in ``data[start:end]``; ``marks`` is
    :func:`mark` of ``data``."""
    n = end - start
    if n <= sizes.min_bytes:
        return end
    limit = start + min(n, sizes.max_bytes)
    normal = start + min(sizes.avg_bytes, n)
    view = memoryview(data)
    crc32 = zlib.crc32
    find = marks.find
    hard, easy = sizes.hard_mask, sizes.easy_mask
    pos = start + sizes.min_bytes - RUN_BYTES  # a run found here ends at the earliest cut
    while True:
        j = find(_RUN, pos, limit)
        if j < 0:
            return limit
        cut = find(b"\x00", j + RUN_BYTES, limit)  # the candidate: where the run of ones ends
        if cut < 0:
            return limit
        if not crc32(view[cut - WINDOW_BYTES : cut]) & (hard if cut <= normal else easy):
            return cut
        pos = cut + 1


def chunk_bytes(data: bytes, sizes: ChunkSizes | None = None) -> list[bytes]:
    """``data`` cut into chunks (one chunk when shorter than ``min_bytes``; none when empty)."""
    return list(chunk_blocks([data], sizes))


def chunk_blocks(blocks: Iterable[bytes], sizes: ChunkSizes | None = None) -> Iterator[bytes]:
    """Chunks of the concatenation of ``blocks`` (read from a file, say), holding at most
    one pending ``max_bytes`` plus one block in memory."""
    sizes = sizes or ChunkSizes()
    pending = b""
    for block in blocks:
        pending = pending + block if pending else bytes(block)
        if len(pending) < sizes.max_bytes:
            continue
        marks = mark(pending)
        start = 0
        # only cut where the chunk cannot depend on bytes still to come
        while len(pending) - start >= sizes.max_bytes:
            end = cut_point(pending, marks, start, len(pending), sizes)
            yield pending[start:end]
            start = end
        pending = pending[start:]
    marks = mark(pending)
    start = 0
    while start < len(pending):
        end = cut_point(pending, marks, start, len(pending), sizes)
        yield pending[start:end]
        start = end
