"""The outbox's data types and its policy when full (:mod:`edgeweave.edge.outbox` uses them).

Policy when full (``max_entries``, default 10,000,000; ``max_bytes`` of payload, default 1 GiB):

- When a flush would take the outbox over either bound, entries are dropped, oldest first, in
  this order, until both bounds hold again: first ``log`` and ``metric`` entries (also
  ``log.*`` and ``metric.*`` topics); when none are left, ``event`` entries (also ``event.*``);
  when none are left, entries of any other topic except ``*.status``.
- ``*.status`` entries are never dropped. They carry a ``key`` (the object they describe), and
  a new one replaces the older unsent entry with the same topic and key, so the outbox holds at
  most one per object and they cannot overflow.
- Every drop is counted per topic (``Outbox.statistics``; the counts are persisted).
  ``Outbox.take_drop_report`` returns the drops not reported yet, and the agent appends one
  ``event`` about them. A report taken just before a crash may be returned once more.
- Being full never refuses an append. Only when the disk cannot keep up and ``max_buffered``
  rows wait in memory does ``Outbox.append_nowait`` raise ``TooManyRequests`` (and
  ``Outbox.append`` waits for room).

Must not: open files, threads or connections (:func:`drop_oldest` works on the connection
and transaction its caller holds, on the outbox's worker thread), or import :mod:`sqlite3`.
"""

from __future__ import annotations

import bisect
import heapq
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from edgeweave.aio.sqlite import Connection

SCAN_ROWS = 4096

# drop order when full; status entries (class KEEP) are never dropped
DROP_FIRST, DROP_EVENT, DROP_LAST, KEEP = 0, 1, 2, 3
DROP_ORDER = (DROP_FIRST, DROP_EVENT, DROP_LAST)

_SCAN = "SELECT seq, topic, bytes FROM outbox WHERE seq >= ? ORDER BY seq LIMIT ?"
DELETE_SEQ = "DELETE FROM outbox WHERE seq = ?"


def drop_class(topic: str) -> int:
    """Where a topic stands in the policy when full (0 is dropped first)."""
    if topic.endswith(".status"):
        return KEEP
    head = topic.split(".", 1)[0]
    if head in ("log", "metric"):
        return DROP_FIRST
    return DROP_EVENT if head == "event" else DROP_LAST


PlainRow = tuple[int, str, str, int]  # seq, topic, payload, bytes
StatusRow = tuple[int, str, str, str, int]  # seq, topic, key, payload, bytes
StatusKey = tuple[str, str]  # topic, key


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


def entries_of(plain: list[PlainRow], status: Iterable[StatusRow]) -> list[tuple[Entry, int]]:
    """Buffered rows as entries with their sizes, in seq order."""
    rows = [(Entry(seq, topic, text), size) for seq, topic, text, size in plain]
    if status:
        rows += [(Entry(seq, topic, text), size) for seq, topic, _key, text, size in status]
        rows.sort(key=lambda row: row[0].seq)
    return rows


def rows_after(rows: list[tuple[Entry, int]], after_seq: int) -> Iterator[tuple[Entry, int]]:
    """The rows (in seq order) with a seq above ``after_seq``, found by bisection."""
    start = bisect.bisect_right(rows, after_seq, key=lambda row: row[0].seq)
    return (rows[k] for k in range(start, len(rows)))


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


def drop_oldest(
    db: Connection,
    entries: int,
    nbytes: int,
    *,
    max_entries: int,
    max_bytes: int,
    hints: dict[int, int],
    dropped: dict[str, int],
    next_seq: int,
) -> tuple[int, int]:
    """Apply the policy when full inside the caller's transaction; returns the new totals.

    ``hints[c]``: no row of drop class ``c`` has a lower seq (rows are only ever added above
    every stored seq), so each row is scanned at most once per class, not once per flush, even
    while the outbox stays full. ``hints`` and ``dropped`` are updated in place."""
    for cls in DROP_ORDER:
        while entries > max_entries or nbytes > max_bytes:
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
                if entries <= max_entries and nbytes <= max_bytes:
                    hints[cls] = seq + 1
                    break
            db.executemany(DELETE_SEQ, victims)
    return entries, nbytes


def buffered_entries(
    buffer: list[PlainRow], status: Mapping[StatusKey, StatusRow], after_seq: int
) -> Iterator[tuple[Entry, int]]:
    """The buffered entries after ``after_seq``, in seq order, made as they are taken."""
    start = bisect.bisect_right(buffer, after_seq, key=itemgetter(0))
    plain = (
        (Entry(seq, topic, text), size)
        for seq, topic, text, size in (buffer[i] for i in range(start, len(buffer)))
    )
    if not status:
        return plain
    kept = entries_of([], [row for row in status.values() if row[0] > after_seq])
    return heapq.merge(plain, kept, key=lambda row: row[0].seq)
