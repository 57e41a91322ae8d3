"""Content-defined chunking: reassembly, size bounds, locality of edits, streaming."""

from __future__ import annotations

import hashlib
import random

import pytest

from edgeweave.errors import ConfigError
from edgeweave.pipelines.chunks import ChunkSizes, chunk_blocks, chunk_bytes

SIZES = ChunkSizes(min_bytes=4 * 1024, avg_bytes=16 * 1024, max_bytes=64 * 1024)


def digests(chunks: list[bytes]) -> set[bytes]:
    return {hashlib.sha256(c).digest() for c in chunks}


def test_chunks_reassemble_and_respect_the_size_bounds() -> None:
    data = random.Random(1).randbytes(2_000_000)
    chunks = chunk_bytes(data, SIZES)
    assert b"".join(chunks) == data
    assert all(SIZES.min_bytes < len(c) <= SIZES.max_bytes for c in chunks[:-1])
    mean = len(data) / len(chunks)
    assert SIZES.avg_bytes * 0.6 < mean < SIZES.avg_bytes * 2


def test_small_and_empty_content() -> None:
    assert chunk_bytes(b"", SIZES) == []
    assert chunk_bytes(b"x" * 100, SIZES) == [b"x" * 100]


@pytest.mark.parametrize("where", [0, 700_000, 1_999_000])
def test_an_insertion_changes_only_the_chunks_around_it(where: int) -> None:
    data = random.Random(2).randbytes(2_000_000)
    before = chunk_bytes(data, SIZES)
    after = chunk_bytes(data[:where] + b"inserted bytes" + data[where:], SIZES)
    new = digests(after) - digests(before)
    assert 1 <= len(new) <= 2, f"{len(new)} of {len(after)} chunks changed"


def test_streamed_blocks_cut_exactly_like_the_whole() -> None:
    data = random.Random(3).randbytes(1_000_000)
    blocks = [data[i : i + 77_777] for i in range(0, len(data), 77_777)]
    assert list(chunk_blocks(blocks, SIZES)) == chunk_bytes(data, SIZES)


def test_low_entropy_data_is_cut_at_the_maximum_without_slowing_down() -> None:
    zeros = bytes(1_000_000)
    chunks = chunk_bytes(zeros, SIZES)
    assert all(len(c) == SIZES.max_bytes for c in chunks[:-1])
    assert b"".join(chunks) == zeros


@pytest.mark.parametrize(
    ("min_b", "avg_b", "max_b"), [(0, 16, 32), (4096, 3000, 8192), (4096, 12_000, 65_536)]
)
def test_bad_sizes_are_refused(min_b: int, avg_b: int, max_b: int) -> None:
    with pytest.raises(ConfigError):
        ChunkSizes(min_bytes=min_b, avg_bytes=avg_b, max_bytes=max_b)
