"""The PostgreSQL state store: shared by several cloud replicas for scale-out.

psycopg 3 async with a small connection pool. Tables live in one schema: the ``schema``
parameter (created when missing), or else the connection's current schema (the first
existing one on its ``search_path``), so deployments and tests can share a database.

Every object write is ONE statement (SQL in :mod:`._pgsql`) that bumps a single counter row,
writes the object, appends the change log and NOTIFYs; the counter's row lock, held until
commit, serializes writers from every replica, so resourceVersion order is commit order and
a watcher resuming from N can never miss a version below N committed later. A create is one
round trip; an update or delete two: read, then write only if the version is unchanged (else
read again, under the counter lock). One listener connection per store wakes its watches,
which re-read the change log (and poll it every ``poll_interval_s``). Node sync tables are
a mixin (:mod:`.postgres_sync`).

Only this module and :mod:`.postgres_sync` import psycopg; no psycopg exception leaves them.
Must not hold a transaction (and so the counter lock) across anything but its own statements.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from edgeweave.cloud.store import _pgsql
from edgeweave.cloud.store._nodesync import DEFAULT_EVENTS_RETENTION
from edgeweave.cloud.store._objects import (
    ObjectKey,
    check_cas,
    decode_json,
    describe,
    encode_json_around_rv,
    gone,
    object_key,
    parse_resource_version,
    prepare_create,
    prepare_delete,
    prepare_update,
)
from edgeweave.cloud.store._paging import PageBuilder
from edgeweave.cloud.store._watch import ChangeRow, LogWatch, Notifier
from edgeweave.cloud.store.base import (
    DEFAULT_TWIN_HISTORY_MAX_AGE_S,
    DEFAULT_TWIN_HISTORY_POINTS,
    JSONObject,
    ListResult,
    Watch,
    WatchFilter,
)
from edgeweave.cloud.store.postgres_sync import PostgresNodeSync
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
Params = Sequence[Any] | Mapping[str, Any]
Build = Callable[[JSONObject], JSONObject]  # the object to write, from the stored one

DEFAULT_CHANGELOG_RETENTION = 100_000
RETENTION_EVERY_WRITES = 1000
# lost races (each an ERROR in the server log) before an update/delete reads under the lock
OPTIMISTIC_WRITES = 1


def _translate(e: psycopg.Error) -> StoreError:
    if isinstance(e, psycopg.errors.UniqueViolation):
        return AlreadyExists(f"object already exists: {e}")
    if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreUnavailable(f"PostgreSQL store unavailable: {e}")
    return StoreError(f"PostgreSQL store error: {e}")


class PostgresStore(PostgresNodeSync):
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
        twin_history_points: int = DEFAULT_TWIN_HISTORY_POINTS,
        twin_history_max_age_s: float = DEFAULT_TWIN_HISTORY_MAX_AGE_S,
    ) -> None:
        self.schema = "" if schema is None else _pgsql.check_schema(schema)
        self._url = url
        self._timeout_s = timeout_s
        self._poll_interval_s = poll_interval_s
        self._changelog_retention = changelog_retention
        self._q: dict[str, bytes] = {}
        self._quoted_schema = ""
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
        self.twin_history_points = twin_history_points
        self.twin_history_max_age_s = twin_history_max_age_s

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
                ddl = _pgsql.DDL
                if not self.schema:
                    self.schema = await self._one(conn, b"SELECT current_schema()") or ""
                    if not self.schema:
                        raise ConfigError(
                            "no schema on the PostgreSQL search_path exists: create one, "
                            "or pass a schema (URL parameter ?schema=NAME)"
                        )
                    ddl = _pgsql.DDL[1:]  # it exists: do not need the right to create schemas
                self._bind_schema(self.schema)
                # replicas starting together: one creates, the others wait and find it done
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))
                for statement in ddl:
                    await conn.execute(statement.format(s=self._quoted_schema).encode())
            listener = await self._connect_listener()
        except psycopg.Error as e:
            raise _translate(e) from e
        self._listener = asyncio.create_task(
            self._listen(listener), name=f"edgeweave-pg-listener[{self.schema}]"
        )

    def _bind_schema(self, schema: str) -> None:
        self._quoted_schema = quoted = sql.Identifier(schema).as_string(None)
        queries = {**_pgsql.QUERIES, **_pgsql.SYNC_QUERIES}
        self._q = {name: text.format(s=quoted).encode() for name, text in queries.items()}
        flags = (False, True)
        variants = itertools.product(flags, flags, flags)
        self._list_queries = {v: _pgsql.list_query(*v).format(s=quoted).encode() for v in variants}
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

    async def _one(self, conn: Conn, query: bytes, params: Params = ()) -> Any:
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

    async def create(self, obj: JSONObject) -> JSONObject:
        key = object_key(obj)
        out = prepare_create(obj, 0)
        params = _pgsql.write_params(key, encode_json_around_rv(out), self._channel)
        async with self._connection() as conn:
            try:
                rv = await self._one(conn, self._q["create"], params)
            except psycopg.errors.UniqueViolation as e:
                raise AlreadyExists(f"{describe(key)} already exists") from e
        out["metadata"]["resourceVersion"] = str(rv)
        await self._after_write()
        return out

    async def update(self, obj: JSONObject) -> JSONObject:
        key = object_key(obj)
        wanted = parse_resource_version(obj["metadata"].get("resourceVersion"))
        return await self._rewrite("update", key, wanted, lambda old: prepare_update(obj, old, 0))

    async def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: int | None = None
    ) -> JSONObject:
        key = (kind, namespace, name)
        return await self._rewrite("delete", key, resource_version, lambda o: prepare_delete(o, 0))

    async def _rewrite(
        self, query: str, key: ObjectKey, want: int | None, build: Build
    ) -> JSONObject:
        """Update or delete the object at ``key`` (``build`` makes the new text from the stored
        object): read it, check, write it if still unchanged. After ``OPTIMISTIC_WRITES`` lost
        races the write reads under the counter lock, so it cannot lose again."""
        for attempt in range(OPTIMISTIC_WRITES + 1):
            locked = attempt == OPTIMISTIC_WRITES
            async with self._connection() as conn, conn.transaction() if locked else nullcontext():
                if locked:
                    await conn.execute(self._q["lock_rv"])
                row = await (await conn.execute(self._q["get"], key)).fetchone()
                if row is None:
                    raise NotFound(f"{describe(key)} not found")
                check_cas(key, row[0], want)
                out = build(decode_json(row[1]))
                params = _pgsql.write_params(key, encode_json_around_rv(out), self._channel, row[0])
                try:
                    rv = await self._one(conn, self._q[query], params)
                except psycopg.errors.NotNullViolation:  # another write came between
                    if locked:
                        raise
                    continue
            out["metadata"]["resourceVersion"] = str(rv)
            await self._after_write()
            return out
        raise AssertionError("unreachable: the locked attempt writes or raises")

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
        rows = await (await conn.execute(self._list_queries[variant], params)).fetchall()
        page.feed([(r[1], r[2], r[3]) for r in rows if r[1] is not None])
        return int(rows[0][0])

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
            await conn.execute(query.format(sql.Identifier(_pgsql.check_schema(schema))))
    except psycopg.Error as e:
        raise _translate(e) from e
