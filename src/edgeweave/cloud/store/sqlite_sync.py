"""The per-node sync tables of the SQLite store: acks, upstream commits, events, twin history,
used join tokens (:class:`~edgeweave.cloud.store.base.NodeSyncStore`).

A mixin of :class:`~edgeweave.cloud.store.sqlite.SQLiteStore`, which provides the worker
thread (``_sql``, a :class:`~edgeweave.aio.sqlite.SQLiteThread`: ``run``, its connection and
transactions) and the wake-up of watches after an object write. The ``_db_*`` methods run on
that worker, or inline on the event loop while the worker is idle (small acks and upstream
commits, :meth:`SQLiteNodeSync._run`). A status merge writes objects like any other writer:
inside the same ``BEGIN IMMEDIATE`` transaction it bumps the store-wide version and appends
the change log.

Must not open connections or threads of its own, let a sqlite3 exception out (``_sql.run``
translates them) or import sqlite3.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, TypeVarTuple, Unpack

from edgeweave.aio.sqlite import Connection, SQLiteThread
from edgeweave.cloud.store import _sqlitesql as q
from edgeweave.cloud.store._nodesync import (
    HistoryKey,
    HistoryRow,
    apply_status,
    event_from_row,
    events_query_filters,
    group_status_writes,
    history_cutoff_ms,
    history_item,
    history_query_filters,
    history_rows,
)
from edgeweave.cloud.store._objects import decode_json, encode_json
from edgeweave.cloud.store._watch import ChangeRow
from edgeweave.cloud.store.base import (
    AckItem,
    AckKey,
    Adoption,
    ClaimedAdoption,
    EventRow,
    JSONObject,
    StatusWrite,
    TwinSample,
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
INLINE_MAX_ROWS = 64
"""Larger writes go to the worker: run inline, they would hold up the event loop."""


class SQLiteNodeSync:
    """The :class:`~edgeweave.cloud.store.base.NodeSyncStore` half of the SQLite store."""

    events_retention: int
    twin_history_points: int
    twin_history_max_age_s: float
    _sql: SQLiteThread  # the worker thread, its connection and transactions

    @abstractmethod
    def _db_after_write(self, rows: Sequence[ChangeRow]) -> None:
        """On the worker, after a commit that wrote these change-log rows: wakes the store's
        watches."""

    async def _run(self, rows: int, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """``fn`` inline when it writes at most :data:`INLINE_MAX_ROWS` rows (a node's usual
        report or acks), else on the worker (a reconnect's backlog)."""
        if rows <= INLINE_MAX_ROWS:
            return await self._sql.run_inline(fn, *args)
        return await self._sql.run(fn, *args)

    # ---- the NodeSyncStore interface --------------------------------------------------------

    async def acked_versions(self, node: str) -> dict[AckKey, int]:
        return await self._sql.run(self._db_acked, node)

    async def record_acks(self, node: str, items: Sequence[AckItem]) -> None:
        await self._run(len(items), self._db_record_acks, node, list(items), False)

    async def replace_acks(self, node: str, items: Sequence[AckItem]) -> None:
        await self._run(len(items), self._db_record_acks, node, list(items), True)

    async def reset_node_sync(self, node: str) -> None:
        await self._sql.run(self._db_reset_node_sync, node)

    def _db_reset_node_sync(self, node: str) -> None:
        with self._sql.transaction() as db:
            db.execute(q.ACKS_CLEAR, (node,))
            db.execute(q.UPSTREAM_CLEAR, (node,))

    async def upstream_committed_seq(self, node: str) -> int:
        return await self._sql.run(self._db_committed_seq, node)

    async def commit_upstream(
        self,
        node: str,
        committed_seq: int,
        events: Sequence[EventRow],
        status_writes: Sequence[StatusWrite],
        samples: Sequence[TwinSample] = (),
        adoptions: Sequence[Adoption] = (),
    ) -> int:
        history = history_rows(node, samples)
        return await self._run(
            len(events) + len(status_writes) + len(samples) + len(adoptions),
            self._db_commit_upstream,
            node,
            committed_seq,
            events,
            status_writes,
            history,
            list(adoptions),
        )

    async def list_twin_history(
        self,
        namespace: str,
        name: str,
        property: str | None = None,
        *,
        since_ms: int | None = None,
        limit: int = 1000,
    ) -> list[JSONObject]:
        where, params = history_query_filters(property, since_ms)
        query = q.HISTORY_LIST + "".join(" AND " + c.format(p="?") for c in where)
        query += " ORDER BY time_ms DESC, id DESC LIMIT ?"
        args = (namespace, name, *params, max(0, limit))
        rows = await self._sql.run(self._db_fetch, query, args)
        return [history_item(r) for r in reversed(rows)]

    async def delete_twin_history(self, namespace: str, name: str) -> int:
        return await self._sql.run(self._db_delete_history, namespace, name)

    async def twin_history_devices(self) -> list[tuple[str, str]]:
        rows = await self._sql.run(self._db_fetch, q.HISTORY_DEVICES, ())
        return [(str(ns), str(name)) for ns, name in rows]

    async def claim_adoptions(
        self, owner: str, lease_s: float, limit: int
    ) -> list[ClaimedAdoption]:
        return await self._sql.run(self._db_claim_adoptions, owner, lease_s, limit)

    def _db_claim_adoptions(self, owner: str, lease_s: float, limit: int) -> list[ClaimedAdoption]:
        now = time.time()
        with self._sql.transaction() as db:
            rows = db.execute(q.ADOPTIONS_FREE, (now, max(0, limit))).fetchall()
            db.executemany(q.ADOPTION_CLAIM, [(owner, now + lease_s, row[0]) for row in rows])
        return [
            (int(i), str(node), str(ns), str(name), str(items)) for i, node, ns, name, items in rows
        ]

    async def finish_adoption(self, adoption_id: int, events: Sequence[EventRow] = ()) -> bool:
        return await self._sql.run(self._db_finish_adoption, adoption_id, list(events))

    def _db_finish_adoption(self, adoption_id: int, rows: list[EventRow]) -> bool:
        with self._sql.transaction() as db:
            if not db.execute(q.ADOPTION_DELETE, (adoption_id,)).rowcount:
                return False
            if rows:
                self._db_insert_events(db, rows)
        return True

    def _db_delete_history(self, namespace: str, name: str) -> int:
        with self._sql.transaction() as db:
            db.execute(q.HISTORY_POINTS_DELETE, (namespace, name))
            return int(db.execute(q.HISTORY_DELETE, (namespace, name)).rowcount)

    async def list_events(
        self,
        object_kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        node: str | None = None,
        limit: int = 100,
    ) -> list[JSONObject]:
        where, params = events_query_filters(object_kind, namespace, name, node)
        return await self._sql.run(self._db_list_events, where, params, max(0, limit))

    async def mark_token_used(self, jti: str, expires_at: int, now: int) -> bool:
        return await self._sql.run(self._db_mark_token, jti, expires_at, now)

    # ---- worker thread ----------------------------------------------------------------------

    def _db_acked(self, node: str) -> dict[AckKey, int]:
        rows = self._sql.connection.execute(q.ACKED, (node,)).fetchall()
        return {(k, ns, n): rv for k, ns, n, rv in rows}

    def _db_record_acks(self, node: str, items: list[AckItem], replace: bool) -> None:
        with self._sql.transaction() as db:
            if replace:
                db.execute(q.ACKS_CLEAR, (node,))
            db.executemany(q.ACK_UPSERT, [(node, *item) for item in items])
            if not replace:  # an ack for an object the store no longer has is a delete ack
                db.executemany(q.ACK_DROP_DELETED, [(node, *i[:3], *i[:3]) for i in items])

    def _db_committed_seq(self, node: str, db: Connection | None = None) -> int:
        found = (db or self._sql.connection).execute(q.UPSTREAM_GET, (node,)).fetchone()
        return 0 if found is None else int(found[0])

    def _db_commit_upstream(
        self,
        node: str,
        seq: int,
        events: Sequence[EventRow],
        writes: Sequence[StatusWrite],
        history: tuple[list[HistoryRow], dict[HistoryKey, int]],
        adoptions: list[Adoption],
    ) -> int:
        rows = list(events)
        grouped = group_status_writes(writes)
        logged: list[ChangeRow] = []
        with self._sql.transaction() as db:
            stored = self._db_committed_seq(node, db)
            if seq <= stored:
                return stored
            if rows:
                self._db_insert_events(db, rows)
            if history[0]:
                self._db_insert_history(db, *history)
            if adoptions:
                db.executemany(q.ADOPTION_INSERT, adoptions)
            found = [(key, db.execute(q.GET, key).fetchone(), p) for key, p in grouped.items()]
            present = [(key, row, p) for key, row, p in found if row is not None]
            if present:
                top: int = db.execute(q.ADD_RV, (len(present),)).fetchone()[0]
                updates, changes = [], []
                for rv, (key, row, patches) in enumerate(present, start=top - len(present) + 1):
                    text = encode_json(apply_status(decode_json(row[1]), patches, rv))
                    updates.append((rv, text, *key))
                    changes.append((rv, *key, "MODIFIED", text))
                    logged.append((rv, "MODIFIED", *key, text))
                db.executemany(q.UPDATE, updates)
                db.executemany(q.LOG, changes)
            db.execute(q.UPSTREAM_SET, (node, seq))
        if logged:
            self._db_after_write(logged)
        return seq

    def _db_insert_events(self, db: Connection, rows: list[EventRow]) -> None:
        db.executemany(q.EVENT_INSERT, rows)
        last: int = db.execute(q.EVENTS_NEWEST_ID).fetchone()[0]
        db.execute(q.EVENTS_TRIM, (last - self.events_retention,))

    def _db_insert_history(
        self, db: Connection, rows: list[HistoryRow], added: dict[HistoryKey, int]
    ) -> None:
        """Append ``rows``, then apply retention to each (device, property) they touch: drop
        what is too old, then the oldest beyond ``twin_history_points`` (index ranges only)."""
        db.executemany(q.HISTORY_INSERT, rows)
        cutoff = history_cutoff_ms(self.twin_history_max_age_s, time.time())
        keep = self.twin_history_points
        for key, count in added.items():
            dropped = db.execute(q.HISTORY_DROP_OLD, (*key, cutoff)).rowcount
            points: int = db.execute(q.HISTORY_POINTS_ADD, (*key, count - dropped)).fetchone()[0]
            if points > keep:
                db.execute(q.HISTORY_DROP_OLDEST, (*key, points - keep))
                db.execute(q.HISTORY_POINTS_SET, (keep, *key))

    def _db_fetch(self, query: str, args: Sequence[Any]) -> list[Any]:
        return self._sql.connection.execute(query, args).fetchall()

    def _db_list_events(self, where: list[str], params: list[str], limit: int) -> list[JSONObject]:
        query = q.EVENTS_LIST
        if where:
            query += " WHERE " + " AND ".join(c.format(p="?") for c in where)
        rows = self._sql.connection.execute(
            query + " ORDER BY id DESC LIMIT ?", (*params, limit)
        ).fetchall()
        return [event_from_row(r) for r in reversed(rows)]

    def _db_mark_token(self, jti: str, expires_at: int, now: int) -> bool:
        with self._sql.transaction() as db:
            db.execute(q.JTI_EXPIRE, (now,))
            return db.execute(q.JTI_INSERT, (jti, expires_at)).rowcount == 1
