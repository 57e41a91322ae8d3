"""Putting datums' outputs into a job's output commit, many datums per transaction.

Each datum's small output files (up to :data:`SMALL_OUTPUT_BYTES`) are read as the datum ends
and queued; one flusher puts everything queued in one ``put_files`` transaction and, while it
commits, the next datums' files queue up for the following one — a group commit. With a
durable store a transaction costs a few milliseconds whatever it holds, so this keeps short
datums from waiting on the disk one by one. Large files are put directly, streamed from disk.

Nothing reads an output commit before the job finishes it, and a job that fails or is
interrupted deletes it, so no datum needs its files durable before the next one runs.
:meth:`OutputWriter.drain` must be awaited before the commit is finished; it raises what a
transaction raised. This module must not know about datums, plans or jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.runner import OutputFile

SMALL_OUTPUT_BYTES = 1024 * 1024  # outputs up to this size are read and put in batches
MAX_PENDING_BYTES = 64 * 1024 * 1024  # queued beyond this, a datum waits for the flusher


class OutputWriter:
    """Group-commits small output files into one open commit."""

    def __init__(self, repos: Repos, commit_id: str) -> None:
        self._repos = repos
        self._commit = commit_id
        self._pending: list[tuple[str, bytes]] = []
        self._pending_bytes = 0
        self._flusher: asyncio.Task[None] | None = None

    async def add(self, outputs: Sequence[OutputFile]) -> None:
        """Queue ``outputs`` (read now: their files may go once this returns)."""
        small = [o for o in outputs if o.size <= SMALL_OUTPUT_BYTES]
        if small:
            items = await asyncio.to_thread(lambda: [(o.path, o.local.read_bytes()) for o in small])
            self._pending.extend(items)
            self._pending_bytes += sum(len(data) for _, data in items)
            if self._flusher is not None and self._flusher.done():
                self._flusher.result()  # a failed transaction fails the job
                self._flusher = None
            if self._flusher is None:
                self._flusher = asyncio.create_task(self._flush(), name="output-flush")
            if self._pending_bytes > MAX_PENDING_BYTES:
                await self.drain()
        for o in outputs:
            if o.size > SMALL_OUTPUT_BYTES:
                await self._repos.put_file_from(self._commit, o.path, o.local)

    async def drain(self) -> None:
        """Wait until everything queued is in the commit; raises what a transaction raised."""
        while self._flusher is not None:
            flusher = self._flusher
            await flusher
            if self._flusher is flusher:
                self._flusher = None

    async def close(self) -> None:
        """Drop what is queued and wait for a transaction under way (the job failed: its
        commit is deleted next, and no write may land after that)."""
        self._pending.clear()
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(flusher)

    async def _flush(self) -> None:
        while self._pending:
            items, self._pending, self._pending_bytes = self._pending, [], 0
            await self._repos.put_files(self._commit, items)
