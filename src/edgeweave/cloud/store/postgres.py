"""The PostgreSQL state store: shared by several cloud replicas for scale-out.

psycopg 3 async with a small connection pool. Tables live in one schema: the ``schema``
parameter (created when missing), or else the connection's current schema (the first
existing one on its ``search_path``), so deployments and tests can share a database.

Every write transaction starts by bumping a single counter row (``UPDATE meta SET value =
value + 1 ... RETURNING``): that row lock serializes writers from every replica, so
resourceVersion order is commit order and a watcher resuming from N can never miss a version
below N committed later. Each write also NOTIFYs a channel; one listener connection per store
fans notifications out to its watches, which re-read the change log (and poll it every
``poll_interval_s`` in case a notification was lost).

This is the only module that imports psycopg; no psycopg exception leaves it. It must not
hold a transaction (and so the counter lock) across anything but its own statements.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from edgeweave.cloud.store._nodesync import (
    DEFAULT_EVENTS_RETENTION,
    event_from_row,
    event_rows,
    events_query_filters,
    group_status_writes,
)
from edgeweave.cloud.store._nodesync import apply_status as _apply_status
from edgeweave.cloud.store._objects import (
    ObjectKey,
    check_cas,
    decode_json,
    describe,
    encode_json,
    gone,
    object_key,
    parse_resource_version,
    prepare_create,
    prepare_delete,
    prepare_update,
)
from edgeweave.cloud.store._paging import PageBuilder
from edgeweave.cloud.store._pgsql import (
    DDL,
    EVENTS_LIST_TEMPLATE,
    LIST_TEMPLATE,
    QUERIES,
    SYNC_QUERIES,
)
from edgeweave.cloud.store._watch import ChangeRow, LogWatch, Notifier
from edgeweave.cloud.store.base import (
    AckItem,
    AckKey,
    JSONObject,
    ListResult,
    StatusWrite,
    Watch,
    WatchFilter,
)
from edgeweave.errors import (
    AlreadyExists,
    BadRequest,
    ConfigError,
    NotFound,
    StoreError,
    StoreUnavailable,
)
from edgeweave.models.selectors import LabelSelector

_log = logging.getLogger(__name__)
Conn = psycopg.AsyncConnection[TupleRow]

DEFAULT_CHANGELOG_RETENTION = 100_000
RETENTION_EVERY_WRITES = 1000
SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


def _translate(e: psycopg.Error) -> StoreError:
    if isinstance(e, psycopg.errors.UniqueViolation):
        return AlreadyExists(f"object already exists: {e}")
    if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreUnavailable(f"PostgreSQL store unavailable: {e}")
    return StoreError(f"PostgreSQL store error: {e}")


def _check_schema(schema: str) -> str:
    if not SCHEMA_RE.match(schema):
        raise ConfigError(
            f"PostgreSQL schema {schema!r} must be 1-40 characters of [a-z0-9_], "
            "not starting with a digit"
        )
    return schema


class PostgresStore:
    """A :class:`~edgeweave.cloud.store.base.Store` on PostgreSQL. Use
    :func:`open_postgres_store` (or :meth:`open`); the constructor does no I/O."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_min_size: int = 1,
        pool_max_size: int = 8,
        timeout_s: float = 10.0,
        poll_interval_s: float = 1.0,
        changelog_retention: int = DEFAULT_CHANGELOG_RETENTION,
    ) -> None:
        self.schema = "" if schema is None else _check_schema(schema)
        self._url = url
        self._timeout_s = timeout_s
        self._poll_interval_s = poll_interval_s
        self._changelog_retention = changelog_retention
        self._q: dict[str, bytes] = {}
        self._list_queries: dict[tuple[bool, bool, bool], bytes] = {}
        self._channel = ""
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=pool_min_size,
            max_size=pool_max_size,
            open=False,
            timeout=timeout_s,
            name="edgeweave-pg",
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout_s))},
        )
        self._notifier = Notifier()
        self._listener: asyncio.Task[None] | None = None
        self._writes_since_retention = 0
        self._closed = False
        self.events_retention = DEFAULT_EVENTS_RETENTION

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> PostgresStore:
        store = cls(url, **kwargs)
        try:
            await store._start()
        except BaseException:
            await store.aclose()
            raise
        return store

    async def _start(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=self._timeout_s)
            async with self._pool.connection() as conn, conn.transaction():
                ddl = DDL
                if not self.schema:
                    self.schema = await self._one(conn, b"SELECT current_schema()") or ""
                    if not self.schema:
                        raise ConfigError(
                            "no schema on the PostgreSQL search_path exists: create one, "
                            "or pass a schema (URL parameter ?schema=NAME)"
                        )
                    ddl = DDL[1:]  # it exists: do not need the right to create schemas
                self._bind_schema(self.schema)
                # replicas starting together: one creates, the others wait and find it done
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))
                quoted = sql.Identifier(self.schema).as_string(None)
                for statement in ddl:
                    await conn.execute(statement.format(s=quoted).encode())
            listener = await self._connect_listener()
        except psycopg.Error as e:
            raise _translate(e) from e
        self._listener = asyncio.create_task(
            self._listen(listener), name=f"edgeweave-pg-listener[{self.schema}]"
        )

    def _bind_schema(self, schema: str) -> None:
        quoted = sql.Identifier(schema).as_string(None)
        queries = {**QUERIES, **SYNC_QUERIES}
        self._q = {name: text.format(s=quoted).encode() for name, text in queries.items()}
        # channel names are identifiers: at most 63 bytes
        self._channel = f"edgeweave_{schema}".encode()[:63].decode(errors="ignore")

    # ---- plumbing -------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        if self._closed:
            raise StoreUnavailable("the PostgreSQL store is closed")
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as e:
            raise _translate(e) from e

    async def _connect_listener(self) -> Conn:
        conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=max(1, int(self._timeout_s))
        )
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _listen(self, conn: Conn | None) -> None:
        """Wake watches on every NOTIFY; reconnect with capped backoff when the link drops
        (watches keep polling the change log meanwhile)."""
        delay_s = 0.1
        while True:
            try:
                if conn is None:
                    conn = await self._connect_listener()
                    self._notifier.notify()  # catch up on what was missed while away
                    delay_s = 0.1
                async with conn:
                    async for _ in conn.notifies():
                        self._notifier.notify()
            except Exception as e:  # the task must outlive any failure of its connection
                _log.warning("store listener lost (%s); reconnecting in %.1fs", e, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)
            conn = None

    async def _one(self, conn: Conn, query: bytes, params: Sequence[Any] = ()) -> Any:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
        return None if row is None else row[0]

    # ---- writes ---------------------------------------------------------------------------

    async def _after_write(self) -> None:
        self._notifier.notify()  # our own watches need not wait for the NOTIFY round trip
        self._writes_since_retention += 1
        if self._writes_since_retention >= RETENTION_EVERY_WRITES:
            self._writes_since_retention = 0
            try:
                await self.compact(self._changelog_retention)
            except StoreError as e:  # the write itself committed; retry at the next one
                self._writes_since_retention = RETENTION_EVERY_WRITES
                _log.warning("change-log retention failed: %s", e)

    async def _put(self, conn: Conn, key: ObjectKey, rv: int, out: JSONObject, event: str) -> None:
        q = self._q["put"]
        await conn.execute(q, (*key, rv, encode_json(out), event, self._channel, str(rv)))

    async def create(self, obj: JSONObject) -> JSONObject:
        key = object_key(obj)
        async with self._connection() as conn, conn.transaction():
            rv: int = await self._one(conn, self._q["next_rv"])
            if await self._one(conn, self._q["get"], key) is not None:
                raise AlreadyExists(f"{describe(key)} already exists")
            out = prepare_create(obj, rv)
            await self._put(conn, key, rv, out, "ADDED")
        await self._after_write()
        return out

    async def update(self, obj: JSONObject) -> JSONObject:
        key = object_key(obj)
        wanted = parse_resource_version(obj["metadata"].get("resourceVersion"))
        async with self._connection() as conn, conn.transaction():
            rv: int = await self._one(conn, self._q["next_rv"])
            row = await (await conn.execute(self._q["get"], key)).fetchone()
            if row is None:
                raise NotFound(f"{describe(key)} not found")
            check_cas(key, row[0], wanted)
            out = prepare_update(obj, decode_json(row[1]), rv)
            await self._put(conn, key, rv, out, "MODIFIED")
        await self._after_write()
        return out

    async def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: int | None = None
    ) -> JSONObject:
        key = (kind, namespace, name)
        async with self._connection() as conn, conn.transaction():
            rv: int = await self._one(conn, self._q["next_rv"])
            row = await (await conn.execute(self._q["get"], key)).fetchone()
            if row is None:
                raise NotFound(f"{describe(key)} not found")
            check_cas(key, row[0], resource_version)
            out = prepare_delete(decode_json(row[1]), rv)
            params = (*key, rv, *key, encode_json(out), self._channel, str(rv))
            await conn.execute(self._q["remove"], params)
        await self._after_write()
        return out

    async def compact(self, keep_last: int) -> int:
        if keep_last < 0:
            raise BadRequest(f"keep_last must be >= 0, got {keep_last}")
        async with self._connection() as conn, conn.transaction():
            compacted: int = await self._one(conn, self._q["lock_compacted"])
            newest_dropped = await self._one(conn, self._q["nth_newest"], (keep_last,))
            if newest_dropped is not None and newest_dropped > compacted:
                compacted = newest_dropped
                await conn.execute(self._q["trim"], (compacted,))
                await conn.execute(self._q["set_compacted"], (compacted,))
        return compacted

    # ---- node sync tables -----------------------------------------------------------------

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

    async def upstream_committed_seq(self, node: str) -> int:
        async with self._connection() as conn:
            seq = await self._one(conn, self._q["upstream_get"], (node,))
        return 0 if seq is None else int(seq)

    async def commit_upstream(
        self,
        node: str,
        committed_seq: int,
        events: list[JSONObject],
        status_writes: list[StatusWrite],
    ) -> int:
        rows = event_rows(node, events)
        grouped = group_status_writes(status_writes)
        wrote = False
        async with self._connection() as conn, conn.transaction():
            await conn.execute(self._q["upstream_init"], (node,))
            stored = int(await self._one(conn, self._q["upstream_lock"], (node,)))
            if committed_seq <= stored:
                return stored
            if rows:
                async with conn.cursor() as cur, cur.copy(self._q["events_copy"]) as copy:
                    for row in rows:
                        await copy.write_row(row)
                await conn.execute(self._q["events_trim"], (self.events_retention,))
            if grouped:
                wrote = await self._merge_statuses(conn, grouped)
            await conn.execute(self._q["upstream_set"], (committed_seq, node))
        if wrote:
            await self._after_write()
        return committed_seq

    async def _merge_statuses(self, conn: Conn, grouped: dict[ObjectKey, list[JSONObject]]) -> bool:
        # the counter row first, as every writer does: it orders this commit among them
        await conn.execute(self._q["lock_rv"])
        keys = [list(c) for c in zip(*grouped, strict=True)]
        found = await (await conn.execute(self._q["get_many"], keys)).fetchall()
        if not found:
            return False
        top = int(await self._one(conn, self._q["add_rv"], (len(found),)))
        stored = {(k, ns, n): text for k, ns, n, text in found}
        present = [key for key in grouped if key in stored]
        columns: list[list[Any]] = [[], [], [], [], []]
        for rv, key in enumerate(present, start=top - len(present) + 1):
            text = encode_json(_apply_status(decode_json(stored[key]), grouped[key], rv))
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
        query = EVENTS_LIST_TEMPLATE.format(
            s=sql.Identifier(self.schema).as_string(None), where=clause
        )
        async with self._connection() as conn:
            rows = await (await conn.execute(query.encode(), (*params, max(0, limit)))).fetchall()
        return [event_from_row(r) for r in reversed(rows)]

    async def mark_token_used(self, jti: str, expires_at: int, now: int) -> bool:
        async with self._connection() as conn, conn.transaction():
            await conn.execute(self._q["tokens_expire"], (now,))
            inserted = await self._one(conn, self._q["token_use"], (jti, expires_at))
        return inserted is not None

    # ---- reads ----------------------------------------------------------------------------

    async def get(self, kind: str, namespace: str, name: str) -> JSONObject:
        key = (kind, namespace, name)
        async with self._connection() as conn:
            row = await (await conn.execute(self._q["get"], key)).fetchone()
        if row is None:
            raise NotFound(f"{describe(key)} not found")
        return decode_json(row[1])

    async def current_resource_version(self) -> int:
        async with self._connection() as conn:
            rv: int = await self._one(conn, self._q["current_rv"])
        return rv

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        selector: LabelSelector | None = None,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        page = PageBuilder(kind, namespace, selector, limit, continue_token)
        async with self._connection() as conn:
            # one statement = one snapshot: the version and the rows agree
            rv = await self._list_chunk(conn, page)
            if page.done:
                return page.result(rv)
            # the selector filtered the first chunk short: read all chunks in one snapshot
            page = PageBuilder(kind, namespace, selector, limit, continue_token)
            async with conn.transaction():
                await conn.execute(b"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                rv = await self._list_chunk(conn, page)
                while not page.done:
                    await self._list_chunk(conn, page)
        return page.result(rv)

    async def _list_chunk(self, conn: Conn, page: PageBuilder) -> int:
        """Feed one chunk to ``page``; returns the store's version in the same snapshot."""
        params: list[str | int] = [page.kind]
        if page.namespace is not None:
            params.append(page.namespace)
        if page.after is not None:
            params.extend(page.after)
        chunk = page.chunk_rows
        if chunk is not None:
            params.append(chunk)
        variant = (page.namespace is not None, page.after is not None, chunk is not None)
        query = self._list_queries.get(variant)
        if query is None:
            query = self._list_queries[variant] = self._list_query(*variant)
        rows = await (await conn.execute(query, params)).fetchall()
        page.feed([(r[1], r[2], r[3]) for r in rows if r[1] is not None])
        return int(rows[0][0])

    def _list_query(self, by_namespace: bool, after: bool, limited: bool) -> bytes:
        where = "kind = %s"
        if by_namespace:
            where += " AND namespace = %s"
        if after:
            where += " AND (namespace, name) > (%s, %s)"
        query = sql.SQL(LIST_TEMPLATE).format(
            s=sql.Identifier(self.schema),
            where=sql.SQL(where),
            limit=sql.SQL(" LIMIT %s" if limited else ""),
        )
        return query.as_bytes(None)

    # ---- watches --------------------------------------------------------------------------

    def open_watch(
        self, since: int, flt: WatchFilter | None = None
    ) -> AbstractAsyncContextManager[Watch]:
        return self._watch(since, flt)

    @asynccontextmanager
    async def _watch(self, since: int, flt: WatchFilter | None) -> AsyncIterator[Watch]:
        async with self._connection() as conn:
            compacted: int = await self._one(conn, self._q["compacted"])
        if since < compacted:
            raise gone(since, compacted)
        watch = LogWatch(
            self._fetch_changes, self._notifier, since, flt, poll_interval_s=self._poll_interval_s
        )
        try:
            yield watch
        finally:
            watch.close()

    async def _fetch_changes(self, after: int, limit: int) -> tuple[int, Sequence[ChangeRow]]:
        async with self._connection() as conn:
            rows = await (await conn.execute(self._q["changes"], (after, limit))).fetchall()
        return int(rows[0][0]), [r[1:] for r in rows if r[1] is not None]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._notifier.close()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        try:
            await self._pool.close()
        except psycopg.Error as e:
            raise _translate(e) from e


async def open_postgres_store(url: str, **kwargs: Any) -> PostgresStore:
    """Open the store at ``url`` (creating its schema and tables when needed). Keyword
    arguments are those of :class:`PostgresStore`."""
    return await PostgresStore.open(url, **kwargs)


async def drop_postgres_schema(url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it (tests and uninstall)."""
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            query = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
            await conn.execute(query.format(sql.Identifier(_check_schema(schema))))
    except psycopg.Error as e:
        raise _translate(e) from e
