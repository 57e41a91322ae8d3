"""The durable upstream outbox: status, events, logs and metrics waiting for the cloud to commit.

Everything the agent reports upstream goes through here (docs/design/edge-link.md §5). Each
entry gets a sequence number when appended; the link sends entries in seq order, the cloud
commits them and answers ``upstream_ack(committed_seq)``, and :meth:`Outbox.ack` deletes
everything up to it. Replay after a reconnect or restart is in order and idempotent (the cloud
skips seqs it committed). A seq is never reused, not even after everything was acked and the
agent restarted.

Appends are cheap: :meth:`Outbox.append_nowait` encodes the payload, assigns the seq and buffers
the row in memory; one named background task writes the buffer in ONE transaction every
``flush_interval_s`` (5 ms) or as soon as ``flush_max`` (5,000) rows wait, whichever comes
first. A caller that needs the entry on disk now awaits :meth:`Outbox.flush` or
:meth:`Outbox.wait_durable`. :meth:`Outbox.peek` returns flushed entries only, so nothing is
sent upstream that a crash could take back. The file is separate from the desired-object store
so heavy upstream traffic never delays a downstream persist. WAL with ``synchronous=FULL``: a
flushed entry survives power loss (a lost tail would make the agent reuse seqs the cloud
already committed); while appends stream in, the fsync overlaps the next batch's encoding.

Policy when full (``max_entries``, default 10,000,000; ``max_bytes`` of payload, default 1 GiB):

- When a flush would take the outbox over either bound, entries are dropped, oldest first, in
  this order, until both bounds hold again: first ``log`` and ``metric`` entries (also
  ``log.*`` and ``metric.*`` topics); when none are left, ``event`` entries (also ``event.*``);
  when none are left, entries of any other topic except ``*.status``.
- ``*.status`` entries are never dropped. They carry a ``key`` (the object they describe), and
  a new one replaces the older unsent entry with the same topic and key, so the outbox holds at
  most one per object and they cannot overflow.
- Every drop is counted per topic (:meth:`Outbox.statistics`; the counts are persisted).
  :meth:`Outbox.take_drop_report` returns the drops not reported yet, and the agent appends one
  ``event`` about them. A report taken just before a crash may be returned once more.
- Being full never refuses an append. Only when the disk cannot keep up and ``max_buffered``
  rows wait in memory does :meth:`Outbox.append_nowait` raise ``TooManyRequests`` (and
  :meth:`Outbox.append` waits for room).

Must not: import :mod:`edgeweave.cloud`; let a :mod:`sqlite3` exception escape; hand out an
entry that is not on disk. Only this module and :mod:`edgeweave.edge.store` import
:mod:`sqlite3`; all database work runs on one dedicated worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple, Unpack

from edgeweave.errors import (
    BadRequest,
    ConfigError,
    InvalidObject,
    PayloadTooLarge,
    StoreError,
    StoreUnavailable,
    TooManyRequests,
)

_log = logging.getLogger(__name__)
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

DEFAULT_FLUSH_INTERVAL_S = 0.005
DEFAULT_FLUSH_MAX = 5000
DEFAULT_MAX_ENTRIES = 10_000_000
DEFAULT_MAX_BYTES = 1 << 30
CACHE_SIZE_PRAGMA = -512
"""SQLite page cache bound (negative: KiB); peeks and appends touch few pages."""
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
DEFAULT_MAX_BUFFERED = 100_000
RETRY_MAX_S = 5.0
SCAN_ROWS = 4096

# drop order when full; status entries (class _KEEP) are never dropped
_DROP_FIRST, _DROP_EVENT, _DROP_LAST, _KEEP = 0, 1, 2, 3
_DROP_ORDER = (_DROP_FIRST, _DROP_EVENT, _DROP_LAST)

PlainRow = tuple[int, str, str, int]  # seq, topic, payload, bytes
StatusRow = tuple[int, str, str, str, int]  # seq, topic, key, payload, bytes
StatusKey = tuple[str, str]  # topic, key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key TEXT,
    payload TEXT NOT NULL, bytes INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS outbox_status ON outbox (topic, key) WHERE key IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""
_INSERT = "INSERT INTO outbox (seq, topic, payload, bytes) VALUES (?, ?, ?, ?)"
_INSERT_STATUS = "INSERT INTO outbox (seq, topic, key, payload, bytes) VALUES (?, ?, ?, ?, ?)"
_DELETE_SEQ = "DELETE FROM outbox WHERE seq = ?"
_SET_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_ENDS = "SELECT (SELECT min(seq) FROM outbox), (SELECT max(seq) FROM outbox)"
_PEEK = "SELECT seq, topic, payload, bytes FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"
_SCAN = "SELECT seq, topic, bytes FROM outbox WHERE seq >= ? ORDER BY seq LIMIT ?"


def drop_class(topic: str) -> int:
    """Where a topic stands in the policy when full (0 is dropped first)."""
    if topic.endswith(".status"):
        return _KEEP
    head = topic.split(".", 1)[0]
    if head in ("log", "metric"):
        return _DROP_FIRST
    return _DROP_EVENT if head == "event" else _DROP_LAST


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored entry. ``payload_json`` is the JSON text exactly as stored, so the link can
    splice it into an ``upstream`` frame without decoding and re-encoding it."""

    seq: int
    topic: str
    payload_json: str

    def to_json(self) -> str:
        """``{"seq":..,"topic":..,"payload":..}`` as JSON text: one item of the frame's entries."""
        return (
            f'{{"seq":{self.seq},"topic":{json.dumps(self.topic)},"payload":{self.payload_json}}}'
        )

    @property
    def payload(self) -> Any:
        """The payload decoded (a fresh value on every access)."""
        return json.loads(self.payload_json)


@dataclass(frozen=True, slots=True)
class DropReport:
    """Entries dropped by the policy when full since the previous report, per topic."""

    entries_by_topic: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.entries_by_topic.values())


@dataclass(frozen=True, slots=True)
class OutboxStatistics:
    entries: int  # on disk
    bytes: int  # payload bytes on disk
    oldest_seq: int | None
    newest_seq: int | None
    next_seq: int
    durable_seq: int  # every seq up to this one is on disk (or acked, coalesced, dropped)
    buffered: int  # appended, not yet flushed
    appended: int  # since open
    coalesced: int  # status entries replaced by a newer one, since open
    flushes: int
    flush_failures: int
    dropped_by_topic: dict[str, int] = field(default_factory=dict)  # ever, persisted


class _Round:
    """One flush: waiters await ``done``; ``error`` is set when the flush failed."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.error: BaseException | None = None


def _translate(e: sqlite3.Error) -> StoreError:
    if isinstance(e, sqlite3.OperationalError):
        return StoreUnavailable(f"outbox unavailable: {e}")
    return StoreError(f"outbox error: {e}")


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
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_payload_bytes = max_payload_bytes
        self._max_buffered = max(max_buffered, flush_max)
        self._synchronous = "FULL" if synchronous_full else "NORMAL"
        self._encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeweave-outbox")
        self._conn: sqlite3.Connection | None = None
        # event-loop side
        self._next_seq = 1
        self._durable_seq = 0
        self._buffer: list[PlainRow] = []
        self._status_buffer: dict[StatusKey, StatusRow] = {}
        self._armed = False  # a flush is due for what is buffered
        self._first_buffered_at = 0.0
        self._pending = asyncio.Event()
        self._urgent = asyncio.Event()
        self._round = _Round()
        self._inflight: tuple[int, _Round] | None = None
        self._stored = asyncio.Event()  # replaced after every successful flush
        self._appended = 0
        self._coalesced = 0
        self._flushes = 0
        self._flush_failures = 0
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        # worker-thread side (read by statistics() without a lock: plain ints)
        self._entries = 0
        self._bytes = 0
        self._oldest: int | None = None
        self._newest: int | None = None
        self._status: dict[StatusKey, tuple[int, int]] = {}  # stored status rows: seq, bytes
        self._hints = dict.fromkeys(_DROP_ORDER, 0)  # no row of that class below this seq
        self._persisted: dict[str, int] = {}
        # shared: written by the worker (dropped) and the loop (reported)
        self._counters_lock = threading.Lock()
        self._dropped: dict[str, int] = {}
        self._reported: dict[str, int] = {}

    @classmethod
    async def open(cls, path: Path, **settings: Any) -> Outbox:
        outbox = cls(path, **settings)
        try:
            outbox._next_seq = await outbox._run(outbox._db_open)
        except BaseException:
            outbox._executor.shutdown(wait=True)
            raise
        outbox._durable_seq = outbox._next_seq - 1
        outbox._flusher = asyncio.create_task(outbox._flush_loop(), name="edgeweave-outbox-flusher")
        return outbox

    async def _run(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as e:
            raise _translate(e) from e

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
        """Return once everything appended before this call is on disk."""
        self._check_open()
        await self._wait_seq(self._next_seq - 1)

    async def wait_durable(self, seq: int) -> None:
        """Return once entry ``seq`` (and every one before it) is on disk; flushes now."""
        self._check_open()
        if seq >= self._next_seq:
            raise BadRequest(f"outbox seq {seq} was not appended yet (next is {self._next_seq})")
        await self._wait_seq(seq)

    async def _wait_seq(self, seq: int) -> None:
        while self._durable_seq < seq:
            if self._flusher is None or self._flusher.done():
                raise StoreUnavailable("the outbox flusher is not running")
            if self._inflight is not None and seq <= self._inflight[0]:
                round_ = self._inflight[1]
            else:
                round_ = self._round
                self._urgent.set()
            await round_.done.wait()
            if round_.error is not None and self._durable_seq < seq:
                raise StoreUnavailable(f"outbox flush failed: {round_.error}") from round_.error

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
            round_, self._round = self._round, _Round()
            self._inflight = (next_seq - 1, round_)
            try:
                await self._run(self._db_flush, plain, list(status.values()), next_seq)
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
                self._durable_seq = max(self._durable_seq, next_seq - 1)
                retry_s = 0.0
                self._stored.set()
                self._stored = asyncio.Event()
            finally:
                self._inflight = None
                round_.done.set()

    # ---- reading and acking (event loop) --------------------------------------------------

    async def peek(self, after_seq: int, *, max_entries: int, max_bytes: int) -> list[Entry]:
        """Flushed entries with seq > ``after_seq`` in seq order: at most ``max_entries`` and
        ``max_bytes`` of payload, but always the first one if there is one."""
        self._check_open()
        return await self._run(self._db_peek, after_seq, max_entries, max_bytes)

    async def wait_peek(self, after_seq: int, *, max_entries: int, max_bytes: int) -> list[Entry]:
        """:meth:`peek`, waiting until there is at least one entry to return."""
        while True:
            stored = self._stored  # taken before peeking: a flush during the peek wakes us
            entries = await self.peek(after_seq, max_entries=max_entries, max_bytes=max_bytes)
            if entries:
                return entries
            await stored.wait()

    async def ack(self, committed_seq: int) -> None:
        """The cloud committed everything up to ``committed_seq``: delete it."""
        self._check_open()
        if committed_seq >= self._next_seq:
            # only after a lost outbox file: never hand out seqs the cloud will skip
            _log.warning("cloud committed outbox seq %d beyond ours; skipping ahead", committed_seq)
            self._next_seq = committed_seq + 1
            # a flush round, even an empty one, records the new next_seq and makes it durable
            self._armed = True
            self._pending.set()
            self._urgent.set()
        await self._run(self._db_ack, committed_seq, self._next_seq)

    def statistics(self) -> OutboxStatistics:
        with self._counters_lock:
            dropped = dict(self._dropped)
        return OutboxStatistics(
            entries=self._entries,
            bytes=self._bytes,
            oldest_seq=self._oldest,
            newest_seq=self._newest,
            next_seq=self._next_seq,
            durable_seq=self._durable_seq,
            buffered=len(self._buffer) + len(self._status_buffer),
            appended=self._appended,
            coalesced=self._coalesced,
            flushes=self._flushes,
            flush_failures=self._flush_failures,
            dropped_by_topic=dropped,
        )

    def take_drop_report(self) -> DropReport | None:
        """Drops not reported yet (None when there are none); they count as reported now."""
        with self._counters_lock:
            pending = {
                topic: n - self._reported.get(topic, 0)
                for topic, n in self._dropped.items()
                if n > self._reported.get(topic, 0)
            }
            self._reported.update(self._dropped)
        return DropReport(pending) if pending else None

    async def aclose(self) -> None:
        """Flush what is buffered, stop the flusher and close the file."""
        if self._closed:
            return
        self._closed = True
        self._stored.set()  # wait_peek callers wake up and find the outbox closed
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
            try:
                await self._run(self._db_close)
            finally:
                self._executor.shutdown(wait=True)
        if error is not None:
            raise error

    # ---- worker thread --------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the outbox is not open")
        return self._conn

    def _db_open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, cached_statements=32)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute(f"PRAGMA cache_size = {CACHE_SIZE_PRAGMA}")  # KiB when negative
            conn.executescript(_SCHEMA)
            meta: dict[str, int] = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._persisted = dict(meta)
        if "entries" in meta:
            self._entries, self._bytes = meta["entries"], meta.get("bytes", 0)
        else:
            row = conn.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM outbox").fetchone()
            self._entries, self._bytes = int(row[0]), int(row[1])
        self._oldest, self._newest = conn.execute(_ENDS).fetchone()
        self._status = {
            (topic, key): (seq, nbytes)
            for seq, topic, key, nbytes in conn.execute(
                "SELECT seq, topic, key, bytes FROM outbox WHERE key IS NOT NULL"
            )
        }
        with self._counters_lock:
            for name, value in meta.items():
                kind, _, topic = name.partition(":")
                if kind == "dropped":
                    self._dropped[topic] = value
                elif kind == "reported":
                    self._reported[topic] = value
        return max(meta.get("next_seq", 1), (self._newest or 0) + 1)

    def _db_flush(self, plain: list[PlainRow], status: list[StatusRow], next_seq: int) -> None:
        db = self._db
        entries = self._entries + len(plain) + len(status)
        nbytes = self._bytes + sum(map(itemgetter(3), plain))
        replaced: list[tuple[int]] = []
        for _seq, topic, key, _text, size in status:
            nbytes += size
            old = self._status.get((topic, key))
            if old is not None:
                replaced.append((old[0],))
                entries -= 1
                nbytes -= old[1]
        dropped: dict[str, int] = {}
        hints = dict(self._hints)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_INSERT, plain)
            if status:
                db.executemany(_DELETE_SEQ, replaced)
                db.executemany(_INSERT_STATUS, status)
            if entries > self._max_entries or nbytes > self._max_bytes:
                entries, nbytes = self._db_drop(
                    db, entries, nbytes, hints=hints, dropped=dropped, next_seq=next_seq
                )
            written = self._db_write_meta(db, next_seq, entries, nbytes, dropped)
            ends = db.execute(_ENDS).fetchone()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._entries, self._bytes, self._hints = entries, nbytes, hints
        self._persisted.update(written)
        self._oldest, self._newest = ends
        for seq, topic, key, _text, size in status:
            self._status[(topic, key)] = (seq, size)
        if dropped:
            with self._counters_lock:
                for topic, n in dropped.items():
                    self._dropped[topic] = self._dropped.get(topic, 0) + n

    def _db_drop(
        self,
        db: sqlite3.Connection,
        entries: int,
        nbytes: int,
        *,
        hints: dict[int, int],
        dropped: dict[str, int],
        next_seq: int,
    ) -> tuple[int, int]:
        """Apply the policy when full inside the flush transaction; returns the new totals.

        ``hints[c]``: no row of drop class ``c`` has a lower seq (rows are only ever added
        above every stored seq), so each row is scanned at most once per class, not once per
        flush, even while the outbox stays full."""
        for cls in _DROP_ORDER:
            while entries > self._max_entries or nbytes > self._max_bytes:
                rows = db.execute(_SCAN, (hints[cls], SCAN_ROWS)).fetchall()
                if not rows:
                    hints[cls] = next_seq
                    break
                victims: list[tuple[int]] = []
                hints[cls] = rows[-1][0] + 1
                for seq, topic, size in rows:
                    if drop_class(topic) != cls:
                        continue
                    victims.append((seq,))
                    dropped[topic] = dropped.get(topic, 0) + 1
                    entries -= 1
                    nbytes -= size
                    if entries <= self._max_entries and nbytes <= self._max_bytes:
                        hints[cls] = seq + 1
                        break
                db.executemany(_DELETE_SEQ, victims)
        return entries, nbytes

    def _db_write_meta(
        self,
        db: sqlite3.Connection,
        next_seq: int,
        entries: int,
        nbytes: int,
        dropped: dict[str, int],
    ) -> list[tuple[str, int]]:
        values = {"entries": entries, "bytes": nbytes}
        if next_seq > self._persisted.get("next_seq", 0):
            values["next_seq"] = next_seq
        with self._counters_lock:
            for topic, n in self._dropped.items():
                values[f"dropped:{topic}"] = n
            for topic, n in self._reported.items():
                values[f"reported:{topic}"] = n
        for topic, n in dropped.items():
            values[f"dropped:{topic}"] = values.get(f"dropped:{topic}", 0) + n
        changed = [(k, v) for k, v in values.items() if self._persisted.get(k) != v]
        db.executemany(_SET_META, changed)
        return changed  # the caller records them as persisted once the transaction commits

    def _db_peek(self, after_seq: int, max_entries: int, max_bytes: int) -> list[Entry]:
        out: list[Entry] = []
        total = 0
        for seq, topic, text, size in self._db.execute(_PEEK, (after_seq, max_entries)):
            total += size
            if total > max_bytes and out:
                break
            out.append(Entry(seq, topic, text))
        return out

    def _db_ack(self, committed_seq: int, next_seq: int) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM outbox WHERE seq <= ?",
                (committed_seq,),
            ).fetchone()
            gone, gone_bytes = int(row[0]), int(row[1])
            if gone:
                db.execute("DELETE FROM outbox WHERE seq <= ?", (committed_seq,))
            entries, nbytes = self._entries - gone, self._bytes - gone_bytes
            written = self._db_write_meta(db, next_seq, entries, nbytes, {})
            ends = db.execute(_ENDS).fetchone()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._entries, self._bytes = entries, nbytes
        self._persisted.update(written)
        self._oldest, self._newest = ends
        if gone:
            self._status = {k: v for k, v in self._status.items() if v[0] > committed_seq}

    def _db_close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


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
    """Open (creating file and schema when needed) the outbox at ``path`` and start its
    flusher task; :meth:`Outbox.aclose` flushes and stops it."""
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
