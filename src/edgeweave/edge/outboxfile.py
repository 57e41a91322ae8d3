"""The outbox's SQLite file: its rows, running totals, status index and drop counters.

:class:`OutboxFile` is the worker-thread half of :class:`~edgeweave.edge.outbox.Outbox`: the
outbox buffers appends on the event loop and hands them here in batches; every ``db_*`` method
runs on the outbox's :class:`~edgeweave.aio.sqlite.SQLiteThread` worker, in one transaction
where it writes. The totals (entries, payload bytes, first and last seq) and the drop counts
per topic are kept in memory and persisted in the ``meta`` table in the same transaction as the
rows they describe, so opening a large outbox does not count it.

Must not: run on the event loop (only :attr:`OutboxFile.entries` and friends, plain values,
and the locked drop counters may be read from there), open connections or threads of its own,
or import :mod:`sqlite3`.
"""

from __future__ import annotations

import threading
from operator import itemgetter

from edgeweave.aio.sqlite import Connection, SQLiteThread
from edgeweave.edge.outboxpolicy import (
    DELETE_SEQ,
    DROP_ORDER,
    DropReport,
    Entry,
    PlainRow,
    StatusKey,
    StatusRow,
    drop_oldest,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key TEXT,
    payload TEXT NOT NULL, bytes INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS outbox_status ON outbox (topic, key) WHERE key IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""
_INSERT = "INSERT INTO outbox (seq, topic, payload, bytes) VALUES (?, ?, ?, ?)"
_INSERT_STATUS = "INSERT INTO outbox (seq, topic, key, payload, bytes) VALUES (?, ?, ?, ?, ?)"
_SET_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_ENDS = "SELECT (SELECT min(seq) FROM outbox), (SELECT max(seq) FROM outbox)"
_PEEK = "SELECT seq, topic, payload, bytes FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"


class OutboxFile:
    """The stored outbox (worker thread only, except where said). The constructor does no I/O;
    :meth:`db_load` reads the totals once the connection is open."""

    def __init__(self, sql: SQLiteThread, *, max_entries: int, max_bytes: int) -> None:
        self._sql = sql
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        # read from the event loop without a lock: plain values
        self.entries = 0
        self.bytes = 0
        self.oldest: int | None = None
        self.newest: int | None = None
        self._status: dict[StatusKey, tuple[int, int]] = {}  # stored status rows: seq, bytes
        self._hints = dict.fromkeys(DROP_ORDER, 0)  # no row of that class below this seq
        self._persisted: dict[str, int] = {}
        # shared: written by the worker (dropped) and the loop (reported)
        self._counters_lock = threading.Lock()
        self._dropped: dict[str, int] = {}
        self._reported: dict[str, int] = {}

    # ---- drop counters (any thread) -------------------------------------------------------

    def dropped_by_topic(self) -> dict[str, int]:
        """Entries ever dropped, per topic (a copy)."""
        with self._counters_lock:
            return dict(self._dropped)

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

    # ---- worker thread --------------------------------------------------------------------

    def db_load(self) -> tuple[int, int]:
        """The stored totals, counters and status rows; returns the next seq and the reserved
        one (see :data:`~edgeweave.edge.outbox.RESERVE_BLOCK`): the next is past both."""
        conn = self._sql.connection
        meta: dict[str, int] = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self._persisted = dict(meta)
        if "entries" in meta:
            self.entries, self.bytes = meta["entries"], meta.get("bytes", 0)
        else:
            row = conn.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM outbox").fetchone()
            self.entries, self.bytes = int(row[0]), int(row[1])
        self.oldest, self.newest = conn.execute(_ENDS).fetchone()
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
        reserved = meta.get("reserved_seq", 0)
        return max(meta.get("next_seq", 1), (self.newest or 0) + 1, reserved + 1), reserved

    def db_flush(
        self,
        plain: list[PlainRow],
        status: list[StatusRow],
        next_seq: int,
        reserved: int = 0,
        acked: int = 0,
    ) -> bool:
        """Write a batch in ONE transaction, replacing older status rows of the same key and
        applying the policy when full, with the ``reserved`` seq, and deleting what the cloud
        committed up to ``acked`` (0: nothing); True when the policy dropped entries."""
        entries = self.entries + len(plain) + len(status)
        nbytes = self.bytes + sum(map(itemgetter(3), plain))
        replaced: list[tuple[int]] = []
        for _seq, topic, key, _text, size in status:
            nbytes += size
            old = self._status.get((topic, key))
            if old is not None and old[0] > acked:  # an acked one goes with the acks below
                replaced.append((old[0],))
                entries -= 1
                nbytes -= old[1]
        dropped: dict[str, int] = {}
        hints = dict(self._hints)
        with self._sql.transaction() as db:
            if acked:
                gone, gone_bytes = self._db_delete_acked(db, acked)
                entries, nbytes = entries - gone, nbytes - gone_bytes
            db.executemany(_INSERT, plain)
            if status:
                db.executemany(DELETE_SEQ, replaced)
                db.executemany(_INSERT_STATUS, status)
            if entries > self._max_entries or nbytes > self._max_bytes:
                entries, nbytes = drop_oldest(
                    db,
                    entries,
                    nbytes,
                    max_entries=self._max_entries,
                    max_bytes=self._max_bytes,
                    hints=hints,
                    dropped=dropped,
                    next_seq=next_seq,
                )
            written = self._db_write_meta(db, next_seq, entries, nbytes, dropped, reserved)
            ends = db.execute(_ENDS).fetchone()
        self._hints = hints
        self._committed(entries, nbytes, written, ends)
        if acked:
            self._forget_status(acked)
        for seq, topic, key, _text, size in status:
            self._status[(topic, key)] = (seq, size)
        if dropped:
            with self._counters_lock:
                for topic, n in dropped.items():
                    self._dropped[topic] = self._dropped.get(topic, 0) + n
        return bool(dropped)

    def db_peek(self, after_seq: int, max_entries: int, max_bytes: int) -> list[Entry]:
        out: list[Entry] = []
        total = 0
        for seq, topic, text, size in self._sql.connection.execute(_PEEK, (after_seq, max_entries)):
            total += size
            if total > max_bytes and out:
                break
            out.append(Entry(seq, topic, text))
        return out

    def db_ack(self, committed_seq: int, next_seq: int) -> None:
        """Delete every entry up to ``committed_seq``; ``next_seq`` is persisted with it.

        Without an fsync of its own: a power cut can take back only a whole ack (the entries
        come back and are sent again, which the cloud skips), and the next flush's fsync makes
        it durable anyway."""
        conn = self._sql.connection
        level = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            self._db_ack(committed_seq, next_seq)
        finally:
            conn.execute(f"PRAGMA synchronous = {level}")

    def _db_ack(self, committed_seq: int, next_seq: int) -> None:
        with self._sql.transaction() as db:
            gone, gone_bytes = self._db_delete_acked(db, committed_seq)
            entries, nbytes = self.entries - gone, self.bytes - gone_bytes
            written = self._db_write_meta(db, next_seq, entries, nbytes, {})
            ends = db.execute(_ENDS).fetchone()
        self._committed(entries, nbytes, written, ends)
        self._forget_status(committed_seq)

    def _db_delete_acked(self, db: Connection, committed_seq: int) -> tuple[int, int]:
        """Inside the caller's transaction: delete every entry up to ``committed_seq``; how
        many went, and their bytes."""
        row = db.execute(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM outbox WHERE seq <= ?",
            (committed_seq,),
        ).fetchone()
        gone, gone_bytes = int(row[0]), int(row[1])
        if gone:
            db.execute("DELETE FROM outbox WHERE seq <= ?", (committed_seq,))
        return gone, gone_bytes

    def _forget_status(self, committed_seq: int) -> None:
        if any(v[0] <= committed_seq for v in self._status.values()):
            self._status = {k: v for k, v in self._status.items() if v[0] > committed_seq}

    def _db_write_meta(
        self,
        db: Connection,
        next_seq: int,
        entries: int,
        nbytes: int,
        dropped: dict[str, int],
        reserved: int = 0,
    ) -> list[tuple[str, int]]:
        """Inside the caller's transaction: write the totals, ``next_seq``, the reserved seq
        and the drop counts that changed."""
        values = {"entries": entries, "bytes": nbytes}
        if next_seq > self._persisted.get("next_seq", 0):
            values["next_seq"] = next_seq
        if reserved > self._persisted.get("reserved_seq", 0):
            values["reserved_seq"] = reserved
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

    def _committed(
        self,
        entries: int,
        nbytes: int,
        written: list[tuple[str, int]],
        ends: tuple[int | None, int | None],
    ) -> None:
        """After a commit: the totals, meta values and first/last seq it stored."""
        self.entries, self.bytes = entries, nbytes
        self._persisted.update(written)
        self.oldest, self.newest = ends
