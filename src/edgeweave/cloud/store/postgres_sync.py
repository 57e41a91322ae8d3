"""The per-node sync tables of the PostgreSQL store: acks, upstream commits, events, twin
history, used join tokens (:class:`~edgeweave.cloud.store.base.NodeSyncStore`).

A mixin of :class:`~edgeweave.cloud.store.postgres.PostgresStore`, which provides the pooled
connections, the bound statements (SQL text in :mod:`._pgsql`) and the wake-up of watches
after an object write. A status merge writes objects like any other writer: it takes the
store-wide counter row lock first, so versions stay in commit order.

Must not open connections of its own or let a psycopg exception out (the store's
``_connection`` translates them); only this module and :mod:`.postgres` import psycopg.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg
from psycopg.rows import TupleRow

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
from edgeweave.cloud.store._objects import ObjectKey, decode_json, encode_json
from edgeweave.cloud.store._pgsql import (
    EVENTS_LIST_TEMPLATE,
    HISTORY_DELETE_TEMPLATE,
    HISTORY_DEVICES_TEMPLATE,
    HISTORY_LIST_TEMPLATE,
    HISTORY_POINTS_DELETE_TEMPLATE,
)
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

Conn = psycopg.AsyncConnection[TupleRow]


class PostgresNodeSync:
    """The :class:`~edgeweave.cloud.store.base.NodeSyncStore` half of the PostgreSQL store."""

    schema: str
    events_retention: int
    twin_history_points: int
    twin_history_max_age_s: float
    _q: dict[str, bytes]  # the store's statements, bound to its schema
    _quoted_schema: str
    _channel: str

    @abstractmethod
    def _connection(self) -> AbstractAsyncContextManager[Conn]:
        """A pooled connection in autocommit mode; psycopg errors leave it translated."""

    @abstractmethod
    async def _after_write(self) -> None:
        """Called after a commit that wrote objects: wakes the store's watches."""

    async def acked_versions(self, node: str) -> dict[AckKey, int]:
        async with self._connection() as conn:
            rows = await (await conn.execute(self._q["acked"], (node,))).fetchall()
        return {(k, ns, n): int(rv) for k, ns, n, rv in rows}

    async def _write_acks(self, node: str, items: list[AckItem], replace: bool) -> None:
        columns = [list(c) for c in zip(*items, strict=True)] if items else [[], [], [], []]
        async with self._connection() as conn, conn.transaction():
            if replace:
                await conn.execute(self._q["acks_clear"], (node,))
            await conn.execute(self._q["acks_upsert"], (node, *columns))
            if not replace:  # an ack for an object the store no longer has is a delete ack
                await conn.execute(self._q["acks_drop_deleted"], (*columns, node))

    async def record_acks(self, node: str, items: list[AckItem]) -> None:
        if items:
            await self._write_acks(node, items, False)

    async def replace_acks(self, node: str, items: list[AckItem]) -> None:
        await self._write_acks(node, items, True)

    async def reset_node_sync(self, node: str) -> None:
        async with self._connection() as conn, conn.transaction():
            await conn.execute(self._q["acks_clear"], (node,))
            await conn.execute(self._q["upstream_clear"], (node,))

    async def upstream_committed_seq(self, node: str) -> int:
        async with self._connection() as conn:
            row = await (await conn.execute(self._q["upstream_get"], (node,))).fetchone()
        return 0 if row is None else int(row[0])

    async def commit_upstream(
        self,
        node: str,
        committed_seq: int,
        events: Sequence[EventRow],
        status_writes: list[StatusWrite],
        samples: Sequence[TwinSample] = (),
        adoptions: Sequence[Adoption] = (),
    ) -> int:
        rows = list(events)
        grouped = group_status_writes(status_writes)
        history, added = history_rows(node, samples)
        wrote = False
        async with self._connection() as conn, conn.transaction():
            await conn.execute(self._q["upstream_init"], (node,))
            locked = await (await conn.execute(self._q["upstream_lock"], (node,))).fetchone()
            stored = 0 if locked is None else int(locked[0])
            if committed_seq <= stored:
                return stored
            if rows:
                await self._insert_events(conn, rows)
            if history:
                await self._insert_history(conn, history, added)
            if adoptions:
                columns = [list(c) for c in zip(*adoptions, strict=True)]
                await conn.execute(self._q["adoption_insert"], columns)
            if grouped:
                wrote = await self._merge_statuses(conn, grouped)
            await conn.execute(self._q["upstream_set"], (committed_seq, node))
        if wrote:
            await self._after_write()
        return committed_seq

    async def _insert_events(self, conn: Conn, rows: list[EventRow]) -> None:
        async with conn.cursor() as cur, cur.copy(self._q["events_copy"]) as copy:
            for row in rows:
                await copy.write_row(row)
        await conn.execute(self._q["events_trim"], (self.events_retention,))

    async def _insert_history(
        self, conn: Conn, rows: list[HistoryRow], added: dict[HistoryKey, int]
    ) -> None:
        """Append ``rows``, then apply retention to each (device, property) they touch, in a
        fixed number of statements: drop what is too old, count, drop the oldest over the
        limit."""
        async with conn.cursor() as cur, cur.copy(self._q["history_copy"]) as copy:
            for row in rows:
                await copy.write_row(row)
        keys = [list(c) for c in zip(*added, strict=True)]
        cutoff = history_cutoff_ms(self.twin_history_max_age_s, time.time())
        cur = await conn.execute(self._q["history_drop_old"], (*keys, cutoff))
        dropped = {(ns, n, p): int(c) for ns, n, p, c in await cur.fetchall()}
        deltas = [count - dropped.get(key, 0) for key, count in added.items()]
        cur = await conn.execute(self._q["history_points_add"], (*keys, deltas))
        keep = self.twin_history_points
        over = [(ns, n, p, int(points) - keep) for ns, n, p, points in await cur.fetchall()]
        over = [row for row in over if row[3] > 0]
        if over:
            columns = [list(c) for c in zip(*over, strict=True)]
            await conn.execute(self._q["history_drop_oldest"], columns)
            await conn.execute(self._q["history_points_set"], (keep, *columns[:3]))

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
        clause = "".join(" AND " + c.format(p="%s") for c in where)
        query = HISTORY_LIST_TEMPLATE.format(s=self._quoted_schema, where=clause)
        args = (namespace, name, *params, max(0, limit))
        async with self._connection() as conn:
            rows = await (await conn.execute(query.encode(), args)).fetchall()
        return [history_item(r) for r in reversed(rows)]

    async def delete_twin_history(self, namespace: str, name: str) -> int:
        schema = self._quoted_schema
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                HISTORY_POINTS_DELETE_TEMPLATE.format(s=schema).encode(), (namespace, name)
            )
            cursor = await conn.execute(
                HISTORY_DELETE_TEMPLATE.format(s=schema).encode(), (namespace, name)
            )
            return int(cursor.rowcount)

    async def twin_history_devices(self) -> list[tuple[str, str]]:
        query = HISTORY_DEVICES_TEMPLATE.format(s=self._quoted_schema)
        async with self._connection() as conn:
            rows = await (await conn.execute(query.encode())).fetchall()
        return [(str(ns), str(name)) for ns, name in rows]

    async def claim_adoptions(
        self, owner: str, lease_s: float, limit: int
    ) -> list[ClaimedAdoption]:
        now = time.time()
        args = (owner, now + lease_s, now, max(0, limit))
        async with self._connection() as conn, conn.transaction():
            rows = await (await conn.execute(self._q["adoptions_claim"], args)).fetchall()
        claimed = [
            (int(i), str(node), str(ns), str(n), str(items)) for i, node, ns, n, items in rows
        ]
        return sorted(claimed)

    async def finish_adoption(self, adoption_id: int, events: Sequence[EventRow] = ()) -> bool:
        async with self._connection() as conn, conn.transaction():
            deleted = await conn.execute(self._q["adoption_delete"], (adoption_id,))
            if not deleted.rowcount:
                return False
            if events:
                await self._insert_events(conn, list(events))
        return True

    async def _merge_statuses(self, conn: Conn, grouped: dict[ObjectKey, list[JSONObject]]) -> bool:
        # the counter row first, as every writer does: it orders this commit among them
        await conn.execute(self._q["lock_rv"])
        keys = [list(c) for c in zip(*grouped, strict=True)]
        found = await (await conn.execute(self._q["get_many"], keys)).fetchall()
        if not found:
            return False
        bumped = await (await conn.execute(self._q["add_rv"], (len(found),))).fetchone()
        top = int(bumped[0]) if bumped is not None else 0
        stored = {(k, ns, n): text for k, ns, n, text in found}
        present = [key for key in grouped if key in stored]
        columns: list[list[Any]] = [[], [], [], [], []]
        for rv, key in enumerate(present, start=top - len(present) + 1):
            text = encode_json(apply_status(decode_json(stored[key]), grouped[key], rv))
            for column, value in zip(columns, (*key, rv, text), strict=True):
                column.append(value)
        await conn.execute(self._q["put_many"], (*columns, self._channel, str(top)))
        return True

    async def list_events(
        self,
        object_kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        node: str | None = None,
        limit: int = 100,
    ) -> list[JSONObject]:
        where, params = events_query_filters(object_kind, namespace, name, node)
        clause = " WHERE " + " AND ".join(c.format(p="%s") for c in where) if where else ""
        query = EVENTS_LIST_TEMPLATE.format(s=self._quoted_schema, where=clause)
        async with self._connection() as conn:
            rows = await (await conn.execute(query.encode(), (*params, max(0, limit)))).fetchall()
        return [event_from_row(r) for r in reversed(rows)]

    async def mark_token_used(self, jti: str, expires_at: int, now: int) -> bool:
        async with self._connection() as conn, conn.transaction():
            await conn.execute(self._q["tokens_expire"], (now,))
            cur = await conn.execute(self._q["token_use"], (jti, expires_at))
            inserted = await cur.fetchone()
        return inserted is not None
