"""Putting datums' outputs into a job's output commit, many datums per transaction.

Each datum's small output files (up to :data:`SMALL_OUTPUT_BYTES`) are queued with their
content (read when the datum's outputs were collected, or now); one flusher puts everything
queued in one ``put_files`` transaction and, while it commits, the next datums' files queue
up for the following one — a group commit. With a durable store a transaction costs a few
milliseconds whatever it holds, so this keeps short datums from waiting on the disk one by
one. Large files are put directly, streamed from disk.

:meth:`OutputWriter.add` returns a :class:`Committed` that resolves once the transaction
holding those files has committed: a job reports a datum done only after that, so a datum
recorded as done has its outputs durable in the (open) output commit. Nothing reads an output
commit before the job finishes it, and a job that fails or is interrupted deletes it.
:meth:`OutputWriter.drain` must be awaited before the commit is finished; it raises what a
transaction raised. This module must not know about datums, plans or jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.runner import SMALL_OUTPUT_BYTES, OutputFile

MAX_PENDING_BYTES = 64 * 1024 * 1024  # queued beyond this, a datum waits for the flusher

__all__ = ["MAX_PENDING_BYTES", "SMALL_OUTPUT_BYTES", "Committed", "OutputWriter"]


class Committed:
    """When some queued files are in the commit (see :meth:`OutputWriter.add`)."""

    def __init__(self, writer: OutputWriter, seq: int) -> None:
        self._writer = writer
        self._seq = seq

    async def wait(self) -> None:
        """Return once the files are committed; raises what their transaction raised."""
        await self._writer._wait_seq(self._seq)


class OutputWriter:
    """Group-commits small output files into one open commit."""

    def __init__(self, repos: Repos, commit_id: str) -> None:
        self._repos = repos
        self._commit = commit_id
        self._pending: list[tuple[str, bytes]] = []
        self._pending_bytes = 0
        self._flusher: asyncio.Task[None] | None = None
        self._queued = 0  # groups of files queued so far (a group is one add)
        self._committed = 0  # of those, how many are committed (in order)
        self._error: Exception | None = None  # what a transaction raised
        self._closed = False
        self._changed = asyncio.Condition()  # notified after each transaction and on close

    async def add(self, outputs: Sequence[OutputFile]) -> Committed:
        """Queue ``outputs`` (read now unless their content came with them: their files may
        go once this returns)."""
        small = [o for o in outputs if o.size <= SMALL_OUTPUT_BYTES]
        if small:
            items = [(o.path, o.data) for o in small if o.data is not None]
            unread = [o for o in small if o.data is None]
            if unread:
                items += await asyncio.to_thread(
                    lambda: [(o.path, o.local.read_bytes()) for o in unread]
                )
            self._pending.extend(items)
            self._pending_bytes += sum(len(data) for _, data in items)
            self._queued += 1
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
        return Committed(self, self._queued)

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
        self._closed = True
        await self._notify()

    async def _wait_seq(self, seq: int) -> None:
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._committed >= seq or self._error is not None or self._closed
            )
        if self._committed >= seq:
            return
        if self._error is not None:
            raise self._error
        raise RuntimeError("the output writer closed before the files were committed")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _flush(self) -> None:
        try:
            while self._pending:
                items, self._pending, self._pending_bytes = self._pending, [], 0
                queued = self._queued
                await self._repos.put_files(self._commit, items)
                self._committed = queued
                await self._notify()
        except Exception as e:
            self._error = e
            await self._notify()
            raise
