"""The durable upstream outbox: status, events, logs and metrics waiting for the cloud to commit.

Everything the agent reports upstream goes through here (docs/design/edge-link.md §5). Each
entry gets a seq when appended; the link sends entries in seq order, the cloud commits them
and answers ``upstream_ack(committed_seq)``, and :meth:`Outbox.ack` deletes everything up to
it (in the file with the next flush). Replay after a reconnect or restart is in order and
idempotent (the cloud skips seqs it committed). A seq is never reused, not even after a crash.

:meth:`Outbox.append_nowait` encodes the payload, assigns the seq and buffers the row; one
background task writes the buffer in ONE transaction every ``flush_interval_s`` (5 ms) or as
soon as ``flush_max`` (5,000) rows wait (``synchronous=FULL``: a flushed entry survives power
loss). :meth:`Outbox.flush` and :meth:`Outbox.wait_durable` wait for the disk. Peeks return
flushed entries, the last flush's from memory; the link's (``unflushed=True``) also take
entries still on their way to disk, below a *reserved* seq that flushes keep durable ahead
(:data:`RESERVE_BLOCK`). An entry acknowledged before its flush is not written at all. The
file is separate from the desired-object store, so upstream traffic never delays a persist.

The policy when full, the data types handed out and the row helpers are in
:mod:`edgeweave.edge.outboxpolicy`; the file, its totals and drop counters (the worker-thread
half) in :mod:`edgeweave.edge.outboxfile`.

Must not: import :mod:`edgeweave.cloud`; let a :mod:`sqlite3` exception escape; hand out an
entry whose seq a restart could hand out again; import :mod:`sqlite3`. All database work runs
on one dedicated worker thread (:class:`~edgeweave.aio.sqlite.SQLiteThread`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeweave.aio.sqlite import SQLiteThread
from edgeweave.edge.outboxfile import SCHEMA, OutboxFile
from edgeweave.edge.outboxpolicy import (
    DropReport,
    Entry,
    OutboxStatistics,
    PlainRow,
    StatusKey,
    StatusRow,
    buffered_entries,
    drop_class,
    entries_of,
    rows_after,
)
from edgeweave.errors import (
    BadRequest,
    ConfigError,
    InvalidObject,
    PayloadTooLarge,
    StoreError,
    StoreUnavailable,
    TooManyRequests,
)

__all__ = ["DropReport", "Entry", "Outbox", "OutboxStatistics", "drop_class", "open_outbox"]

_log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 0.005
ACK_WRITE_DELAY_S = 1.0
"""How long an ack may wait for a flush to take it along before it is written on its own."""
DEFAULT_FLUSH_MAX = 5000
DEFAULT_MAX_ENTRIES = 10_000_000
DEFAULT_MAX_BYTES = 1 << 30
CACHE_SIZE_PRAGMA = -512
"""SQLite page cache bound (negative: KiB); peeks and appends touch few pages."""
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
DEFAULT_MAX_BUFFERED = 100_000
RETRY_MAX_S = 5.0
RESERVE_BLOCK = 1 << 20
"""Seqs reserved at a time for entries handed out before their flush; a restart skips what
was left of the block (a gap the cloud does not mind: it skips seqs up to its committed one)."""


@dataclass(slots=True)
class _Round:
    """One flush: waiters await ``done``; ``error`` is set when the flush failed."""

    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None


class Outbox:
    """The durable upstream queue in its own SQLite file. Use :func:`open_outbox` (or
    :meth:`open`); the constructor does no I/O. Not thread-safe: call it from one event loop."""

    def __init__(
        self,
        path: Path,
        *,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        flush_max: int = DEFAULT_FLUSH_MAX,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        synchronous_full: bool = True,
    ) -> None:
        if not 0 < max_payload_bytes <= max_bytes:
            raise ConfigError("outbox: max_payload_bytes must be > 0 and <= max_bytes")
        if min(flush_max, max_entries, max_buffered) < 1 or flush_interval_s < 0:
            raise ConfigError("outbox: flush_max, max_entries and max_buffered must be >= 1")
        self.path = Path(path)
        self._flush_interval_s = flush_interval_s
        self._flush_max = flush_max
        self._max_payload_bytes = max_payload_bytes
        self._max_buffered = max(max_buffered, flush_max)
        self._encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
        self._sql = SQLiteThread(
            self.path,
            name="outbox",
            thread_name="edgeweave-outbox",
            pragmas={
                "busy_timeout": 5000,
                "journal_mode": "WAL",
                "synchronous": "FULL" if synchronous_full else "NORMAL",
                "cache_size": CACHE_SIZE_PRAGMA,  # KiB when negative
            },
            schema=SCHEMA,
            cached_statements=32,
        )
        # event-loop side
        self._next_seq = 1
        self._durable_seq = 0
        self._reserved_seq = 0  # durable: no restart hands out a seq at or below it again
        self._reserve_wanted = False  # an unflushed peek stopped at the reserved seq
        self._acked_seq = 0  # the cloud committed up to here: a flush leaves such rows out
        self._acked_written = 0  # ... and the file has deleted up to here
        self._skipped_ahead = False  # next_seq jumped (a lost file): the next round fsyncs it
        self._ack_timer: asyncio.TimerHandle | None = None  # writes acks no flush took along
        self._buffer: list[PlainRow] = []
        self._status_buffer: dict[StatusKey, StatusRow] = {}
        self._armed = False  # a flush is due for what is buffered
        self._first_buffered_at = 0.0
        self._pending = asyncio.Event()
        self._urgent = asyncio.Event()
        self._round = _Round()
        self._inflight: tuple[int, _Round] | None = None
        self._inflight_rows: list[tuple[Entry, int]] = []  # the flush being written, by seq
        self._stored = asyncio.Event()  # replaced after every successful flush
        self._news = asyncio.Event()  # set after a flush, and after an append someone awaits
        self._news_awaited = False
        # the last flush's entries: peeks at or after the seq before them skip the file
        self._tail_after = -1
        self._tail: list[tuple[Entry, int]] = []
        self._appended = 0
        self._coalesced = 0
        self._flushes = 0
        self._flush_failures = 0
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self._file = OutboxFile(self._sql, max_entries=max_entries, max_bytes=max_bytes)

    @classmethod
    async def open(cls, path: Path, **settings: Any) -> Outbox:
        outbox = cls(path, **settings)
        await outbox._sql.open()
        try:
            outbox._next_seq, outbox._reserved_seq = await outbox._sql.run(outbox._file.db_load)
        except BaseException:
            await outbox._sql.aclose()
            raise
        outbox._durable_seq = outbox._next_seq - 1
        outbox._flusher = asyncio.create_task(outbox._flush_loop(), name="edgeweave-outbox-flusher")
        return outbox

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the outbox is closed")

    # ---- appending (event loop) -----------------------------------------------------------

    def append_nowait(self, topic: str, payload: Any, *, key: str | None = None) -> int:
        """Buffer one entry and return its seq; it is on disk within ``flush_interval_s``.

        ``payload`` is any JSON value. ``key`` is required for ``*.status`` topics and refused
        for others: it names the object the status is about, and a newer entry with the same
        topic and key replaces this one while it is unsent.
        """
        if self._closed:
            raise StoreUnavailable("the outbox is closed")
        try:
            text = self._encode(payload)
        except (TypeError, ValueError) as e:
            raise InvalidObject(f"outbox payload for {topic!r} is not JSON: {e}") from e
        nbytes = len(text)  # ASCII-only (ensure_ascii), so characters are bytes
        if nbytes > self._max_payload_bytes:
            raise PayloadTooLarge(
                f"outbox payload for {topic!r} is {nbytes} bytes, over the limit of "
                f"{self._max_payload_bytes}"
            )
        buffer = self._buffer
        if len(buffer) + len(self._status_buffer) >= self._max_buffered:
            raise TooManyRequests(f"outbox buffer full ({self._max_buffered} entries unflushed)")
        if (key is None) == topic.endswith(".status"):
            raise BadRequest(f"outbox topic {topic!r}: *.status entries, and only they, need a key")
        seq = self._next_seq
        self._next_seq = seq + 1
        self._appended += 1
        if key is None:
            buffer.append((seq, topic, text, nbytes))
            if len(buffer) == self._flush_max:
                self._urgent.set()
        else:
            skey = (topic, key)
            if skey in self._status_buffer:
                self._coalesced += 1
            self._status_buffer[skey] = (seq, topic, key, text, nbytes)
        if not self._armed:
            self._armed = True
            self._first_buffered_at = asyncio.get_running_loop().time()
            self._pending.set()
        if self._news_awaited:
            self._news_awaited = False
            self._news.set()
        return seq

    async def append(self, topic: str, payload: Any, *, key: str | None = None) -> int:
        """:meth:`append_nowait`, waiting for room when too much is waiting to be flushed.

        A producer appending in a tight loop would never let the flusher run, so every
        ``flush_max`` buffered rows this yields to the event loop once.
        """
        waiting = len(self._buffer)
        if waiting and not waiting % self._flush_max:
            await asyncio.sleep(0)
        while len(self._buffer) + len(self._status_buffer) >= self._max_buffered:
            self._check_open()
            await self._wait_seq(self._next_seq - 1)
        return self.append_nowait(topic, payload, key=key)

    async def flush(self) -> None:
        """Return once everything appended so far is on disk and every ack is in the file."""
        self._check_open()
        await self._wait_seq(self._next_seq - 1)
        if self._acked_seq > self._acked_written:  # only acks wait: a round of their own
            self._check_flusher()
            round_ = self._round_now()
            await round_.done.wait()
            if round_.error is not None:
                raise StoreUnavailable(f"outbox flush failed: {round_.error}") from round_.error

    async def wait_durable(self, seq: int) -> None:
        """Return once entry ``seq`` (and every one before it) is on disk; flushes now."""
        self._check_open()
        if seq >= self._next_seq:
            raise BadRequest(f"outbox seq {seq} was not appended yet (next is {self._next_seq})")
        await self._wait_seq(seq)

    async def _wait_seq(self, seq: int) -> None:
        while self._durable_seq < seq:
            self._check_flusher()
            if self._inflight is not None and seq <= self._inflight[0]:
                round_ = self._inflight[1]
            else:
                round_ = self._round
                self._urgent.set()
            await round_.done.wait()
            if round_.error is not None and self._durable_seq < seq:
                raise StoreUnavailable(f"outbox flush failed: {round_.error}") from round_.error

    def _check_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            raise StoreUnavailable("the outbox flusher is not running")

    def _round_now(self) -> _Round:
        """Ask the flusher for a round at once, even with nothing buffered; the round."""
        self._armed = True
        self._pending.set()
        self._urgent.set()
        return self._round

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        retry_s = 0.0
        while True:
            await self._pending.wait()
            delay = max(self._first_buffered_at + self._flush_interval_s - loop.time(), retry_s)
            if delay > 0 and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._urgent.wait()
            self._pending.clear()
            self._urgent.clear()
            self._armed = False
            plain, status, next_seq = self._buffer, self._status_buffer, self._next_seq
            self._buffer, self._status_buffer = [], {}
            acked = self._acked_seq
            acks_only = not plain and not status and not self._skipped_ahead
            ack_upto = acked if acked > self._acked_written else 0
            self._skipped_ahead = False
            if plain and plain[0][0] <= acked:  # committed by the cloud already: not written
                plain = [row for row in plain if row[0] > acked]
            if status and min(row[0] for row in status.values()) <= acked:
                status = {k: row for k, row in status.items() if row[0] > acked}
            reserve = self._reserved_seq
            if self._reserve_wanted or next_seq + RESERVE_BLOCK // 2 > reserve > 0:
                reserve = next_seq + RESERVE_BLOCK
            round_, self._round = self._round, _Round()
            self._inflight = (next_seq - 1, round_)
            self._inflight_rows = entries_of(plain, status.values())
            durable_before = self._durable_seq
            try:
                if acks_only and reserve == self._reserved_seq:  # nothing to make durable
                    await self._sql.run(self._file.db_ack, ack_upto, next_seq)
                    dropped = False
                else:
                    dropped = await self._sql.run(
                        self._file.db_flush,
                        plain,
                        list(status.values()),
                        next_seq,
                        reserve,
                        ack_upto,
                    )
            except Exception as e:  # disk full, I/O error, or a bug: keep the rows, retry
                self._flush_failures += 1
                _log.warning("outbox flush of %d entries failed: %s", len(plain) + len(status), e)
                self._buffer = plain + self._buffer
                status.update(self._status_buffer)
                self._status_buffer = status
                self._armed = True
                self._pending.set()
                retry_s = min(max(retry_s * 2, 0.05), RETRY_MAX_S)
                round_.error = e
            else:
                self._flushes += 1
                self._acked_written = max(self._acked_written, ack_upto)
                self._durable_seq = max(self._durable_seq, next_seq - 1)
                if reserve > self._reserved_seq:
                    self._reserved_seq, self._reserve_wanted = reserve, False
                self._keep_tail(durable_before, self._inflight_rows, dropped)
                retry_s = 0.0
                self._stored.set()
                self._stored = asyncio.Event()
                self._news.set()
            finally:
                self._inflight = None
                self._inflight_rows = []
                round_.done.set()

    def _keep_tail(self, after: int, rows: list[tuple[Entry, int]], dropped: bool) -> None:
        """Remember a flush's entries, the file's only ones after ``after`` (unless dropped)."""
        if dropped:
            self._tail_after, self._tail = -1, []
            return
        self._tail_after, self._tail = after, rows

    # ---- reading and acking (event loop) --------------------------------------------------

    async def peek(
        self, after_seq: int, *, max_entries: int, max_bytes: int, unflushed: bool = False
    ) -> list[Entry]:
        """Flushed entries with seq > ``after_seq`` in seq order: at most ``max_entries`` and
        ``max_bytes`` of payload, but always the first one if there is one. ``unflushed``: then
        entries still on their way to disk too, up to the reserved seq (see the module)."""
        self._check_open()
        after_seq = max(after_seq, self._acked_seq)  # acked: gone, even if not from the file yet
        if unflushed and self._reserved_seq < self._next_seq:
            self._reserve_wanted = True  # the next flush reserves: later entries go at once
        if not 0 <= self._tail_after <= after_seq:
            return await self._sql.run(self._file.db_peek, after_seq, max_entries, max_bytes)
        out: list[Entry] = []
        total = 0
        rows = rows_after(self._tail, after_seq)
        if unflushed:
            rows = itertools.chain(
                rows,
                rows_after(self._inflight_rows, after_seq),
                buffered_entries(self._buffer, self._status_buffer, after_seq),
            )
        for entry, size in rows:
            if entry.seq > self._durable_seq and entry.seq > self._reserved_seq:
                break
            total += size
            if len(out) == max_entries or (total > max_bytes and out):
                break
            out.append(entry)
        return out

    async def wait_peek(
        self, after_seq: int, *, max_entries: int, max_bytes: int, unflushed: bool = False
    ) -> list[Entry]:
        """:meth:`peek`, waiting until there is at least one entry to return."""
        while True:
            news = self._stored  # taken before peeking: a flush during the peek wakes us
            if unflushed:
                news = self._news  # set by appends too; a set one is replaced, not cleared,
                if news.is_set():  # so other waiters holding it still wake
                    news = self._news = asyncio.Event()
            entries = await self.peek(
                after_seq, max_entries=max_entries, max_bytes=max_bytes, unflushed=unflushed
            )
            if entries:
                return entries
            if unflushed:
                self._news_awaited = True  # the next append sets it
            await news.wait()

    async def ack(self, committed_seq: int) -> None:
        """The cloud committed everything up to ``committed_seq``: peeks skip it at once, the
        file deletes it with the next flush (or after :data:`ACK_WRITE_DELAY_S` alone). Lost in
        a crash, an ack only makes the agent send again what the cloud skips."""
        self._check_open()
        if committed_seq >= self._next_seq:
            # only after a lost outbox file: never hand out seqs the cloud will skip
            _log.warning("cloud committed outbox seq %d beyond ours; skipping ahead", committed_seq)
            self._tail_after, self._tail = -1, []
            self._next_seq = committed_seq + 1
            # a flush round, even an empty one, records the new next_seq and makes it durable
            self._skipped_ahead = True
            self._round_now()
        self._acked_seq = max(self._acked_seq, committed_seq)
        self._tail = [row for row in self._tail if row[0].seq > committed_seq]
        if self._ack_timer is None and self._acked_seq > self._acked_written:
            loop = asyncio.get_running_loop()
            self._ack_timer = loop.call_later(ACK_WRITE_DELAY_S, self._write_acks)

    def _write_acks(self) -> None:
        """Acks no flush has taken along since: a round of their own."""
        self._ack_timer = None
        if self._acked_seq > self._acked_written and not self._closed:
            self._round_now()

    def statistics(self) -> OutboxStatistics:
        return OutboxStatistics(
            entries=self._file.entries,
            bytes=self._file.bytes,
            oldest_seq=self._file.oldest,
            newest_seq=self._file.newest,
            next_seq=self._next_seq,
            durable_seq=self._durable_seq,
            buffered=len(self._buffer) + len(self._status_buffer),
            appended=self._appended,
            coalesced=self._coalesced,
            flushes=self._flushes,
            flush_failures=self._flush_failures,
            dropped_by_topic=self._file.dropped_by_topic(),
        )

    def take_drop_report(self) -> DropReport | None:
        """Drops not reported yet (None when there are none); they count as reported now."""
        return self._file.take_drop_report()

    async def aclose(self) -> None:
        """Flush what is buffered, stop the flusher and close the file."""
        if self._closed:
            return
        self._closed = True
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        self._stored.set()  # wait_peek callers wake up and find the outbox closed
        self._news.set()
        error: StoreError | None = None
        try:
            await self._wait_seq(self._next_seq - 1)
        except StoreError as e:
            error = e
        finally:
            if self._flusher is not None:
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher
            if self._acked_seq > self._acked_written and error is None:
                with contextlib.suppress(StoreError):  # else sent again after the restart
                    await self._sql.run(self._file.db_ack, self._acked_seq, self._next_seq)
            await self._sql.aclose()
        if error is not None:
            raise error


async def open_outbox(
    path: Path,
    *,
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
    flush_max: int = DEFAULT_FLUSH_MAX,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    max_buffered: int = DEFAULT_MAX_BUFFERED,
    synchronous_full: bool = True,
) -> Outbox:
    """Open (creating it when needed) the outbox at ``path`` and start its flusher task."""
    return await Outbox.open(
        path,
        flush_interval_s=flush_interval_s,
        flush_max=flush_max,
        max_entries=max_entries,
        max_bytes=max_bytes,
        max_payload_bytes=max_payload_bytes,
        max_buffered=max_buffered,
        synchronous_full=synchronous_full,
    )
