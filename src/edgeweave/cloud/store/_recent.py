"""The newest change-log rows, kept in memory so a watch that is caught up needs no query.

A single-process store (SQLite) writes every change-log row itself: after each commit, on
its worker thread, it adds the rows here (:meth:`RecentChanges.add`), then wakes its watches.
A watch asking for rows after ``rv`` is served from memory when every row after ``rv`` is
still held (``rv >= floor``); otherwise (a watch from far back) it reads the table as before.
That takes a database round trip — queued behind whatever write the worker is doing — off
every event every watch delivers (the hub's pushes to nodes, API watch streams).

The rows are the committed log's own, in rv order; ``floor`` is the rv before the oldest held
row, so a served answer is exactly what the table would return. Thread-safe: the worker adds,
the event loop reads. Must not talk to a database.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

from edgeweave.cloud.store._watch import ChangeRow

DEFAULT_CAPACITY = 4096


class RecentChanges:
    def __init__(self, floor: int, compacted: int, capacity: int = DEFAULT_CAPACITY) -> None:
        self._lock = threading.Lock()
        self._rows: list[ChangeRow] = []
        self._capacity = capacity
        self.floor = floor  # every row with rv > floor is held
        self.compacted = compacted  # the log's own compaction mark, as last set
        self.served = 0  # fetches answered from memory (statistics)

    def add(self, rows: Sequence[ChangeRow]) -> None:
        """Rows just committed, in rv order (on the writer's thread, after the commit)."""
        if not rows:
            return
        with self._lock:
            self._rows.extend(rows)
            excess = len(self._rows) - self._capacity
            if excess > self._capacity // 4:  # trim in steps, not on every add
                self.floor = self._rows[excess - 1][0]
                del self._rows[:excess]

    def fetch(self, after: int, limit: int) -> tuple[int, Sequence[ChangeRow]] | None:
        """``(compacted, rows with rv > after)`` like the table's answer, or None when rows
        after ``after`` may be missing here."""
        with self._lock:
            if after < self.floor:
                return None
            start = bisect.bisect_right(self._rows, after, key=_rv)
            self.served += 1
            return self.compacted, self._rows[start : start + limit]


def _rv(row: ChangeRow) -> int:
    return row[0]
