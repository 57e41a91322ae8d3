"""The SQLite state store: the cloud's default backend, one file, one process.

All writes, lists and watches run on ONE dedicated worker thread that owns the writing
connection (:class:`~edgeweave.aio.sqlite.SQLiteThread`); the asyncio side awaits it. A ``get``
by key is read on the event loop with a read-only connection: in WAL mode it sees every
committed write, and it costs less than the hop to the worker and back. WAL mode,
``synchronous=NORMAL``, a busy timeout. Every write is one ``BEGIN IMMEDIATE`` transaction that
bumps the store-wide resourceVersion, writes the object and appends the change log. After
commit the worker wakes the store's watches on the event loop; watches read the change log
themselves.

The node sync tables are a mixin (:mod:`.sqlite_sync`); SQL text is in :mod:`._sqlitesql`.

Must not be shared by several processes writing the same file expecting live watches across
them (notifications are in-process; use PostgreSQL for several cloud replicas); import
:mod:`sqlite3` (the kit does, and no sqlite3 exception leaves it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from edgeweave.aio.sqlite import Connection, SQLiteThread
from edgeweave.cloud.store import _sqlitesql as q
from edgeweave.cloud.store._nodesync import DEFAULT_EVENTS_RETENTION
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
from edgeweave.cloud.store._recent import RecentChanges
from edgeweave.cloud.store._watch import ChangeRow, LogWatch, Notifier
from edgeweave.cloud.store.base import (
    DEFAULT_TWIN_HISTORY_MAX_AGE_S,
    DEFAULT_TWIN_HISTORY_POINTS,
    JSONObject,
    ListResult,
    Watch,
    WatchFilter,
)
from edgeweave.cloud.store.sqlite_sync import SQLiteNodeSync
from edgeweave.errors import AlreadyExists, BadRequest, NotFound, StoreError
from edgeweave.models.selectors import LabelSelector

_log = logging.getLogger(__name__)

DEFAULT_CHANGELOG_RETENTION = 100_000
RETENTION_EVERY_WRITES = 1000


def _integrity_error(text: str) -> StoreError | None:
    if "objects" in text:
        return AlreadyExists(f"object already exists: {text}")
    return None


class SQLiteStore(SQLiteNodeSync):
    """A :class:`~edgeweave.cloud.store.base.Store` in one SQLite file. Use
    :func:`open_sqlite_store` (or :meth:`open`); the constructor does no I/O."""

    def __init__(
        self,
        path: Path,
        *,
        changelog_retention: int = DEFAULT_CHANGELOG_RETENTION,
        busy_timeout_ms: int = 5000,
        twin_history_points: int = DEFAULT_TWIN_HISTORY_POINTS,
        twin_history_max_age_s: float = DEFAULT_TWIN_HISTORY_MAX_AGE_S,
    ) -> None:
        self.path = Path(path)
        self._changelog_retention = changelog_retention
        self._sql = SQLiteThread(
            self.path,
            name="SQLite store",
            thread_name="edgeweave-sqlite",
            pragmas={
                "busy_timeout": int(busy_timeout_ms),
                "journal_mode": "WAL",
                "synchronous": "NORMAL",
            },
            schema=q.SCHEMA + q.SYNC_SCHEMA,
            cached_statements=256,
            on_integrity_error=_integrity_error,
            inline_writes=True,  # one object's write: on the loop while the worker is idle
        )
        self._notifier = Notifier()
        self._recent: RecentChanges | None = None  # set once open (the log's mark is read)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writes_since_retention = 0
        self.events_retention = DEFAULT_EVENTS_RETENTION
        self.twin_history_points = twin_history_points
        self.twin_history_max_age_s = twin_history_max_age_s

    @classmethod
    async def open(cls, path: Path, **kwargs: Any) -> SQLiteStore:
        store = cls(path, **kwargs)
        store._loop = asyncio.get_running_loop()
        await store._sql.open()
        rv, compacted = await store._sql.run(store._db_marks)
        store._recent = RecentChanges(floor=rv, compacted=compacted)
        return store

    # ---- plumbing -------------------------------------------------------------------------

    def _db_after_write(self, rows: Sequence[ChangeRow]) -> None:
        """On the worker, after commit: keep the rows, wake watches, apply retention now and
        then."""
        if self._recent is not None:
            self._recent.add(rows)
        inline = self._sql.in_loop_thread()  # a write run inline (SQLiteThread.run_inline)
        kinds = {row[2] for row in rows}  # a watch of other kinds sleeps on
        if inline:
            self._notifier.notify(kinds, len(rows))
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._notifier.notify, kinds, len(rows))
        self._writes_since_retention += 1
        if self._writes_since_retention >= RETENTION_EVERY_WRITES:
            self._writes_since_retention = 0
            if inline:  # not on the loop: the worker does it
                self._sql.submit(self._db_compact, self._changelog_retention, what="retention")
                return
            try:
                self._sql.call(self._db_compact, self._changelog_retention)
            except StoreError as e:  # the write itself committed; retry at the next one
                self._writes_since_retention = RETENTION_EVERY_WRITES
                _log.warning("change-log retention failed: %s", e)

    # ---- writes (worker thread) -----------------------------------------------------------

    def _db_create(self, obj: JSONObject, key: ObjectKey) -> JSONObject:
        with self._sql.transaction() as db:
            if db.execute(q.GET, key).fetchone() is not None:
                raise AlreadyExists(f"{describe(key)} already exists")
            rv: int = db.execute(q.NEXT_RV).fetchone()[0]
            out = prepare_create(obj, rv)
            text = encode_json(out)
            db.execute(q.INSERT, (*key, rv, text))
            db.execute(q.LOG, (rv, *key, "ADDED", text))
        self._db_after_write([(rv, "ADDED", *key, text)])
        return out

    def _db_update(self, obj: JSONObject, key: ObjectKey, wanted: int | None) -> JSONObject:
        with self._sql.transaction() as db:
            row = db.execute(q.GET, key).fetchone()
            if row is None:
                raise NotFound(f"{describe(key)} not found")
            check_cas(key, row[0], wanted)
            rv: int = db.execute(q.NEXT_RV).fetchone()[0]
            out = prepare_update(obj, decode_json(row[1]), rv)
            text = encode_json(out)
            db.execute(q.UPDATE, (rv, text, *key))
            db.execute(q.LOG, (rv, *key, "MODIFIED", text))
        self._db_after_write([(rv, "MODIFIED", *key, text)])
        return out

    def _db_delete(self, key: ObjectKey, wanted: int | None) -> JSONObject:
        with self._sql.transaction() as db:
            row = db.execute(q.GET, key).fetchone()
            if row is None:
                raise NotFound(f"{describe(key)} not found")
            check_cas(key, row[0], wanted)
            rv: int = db.execute(q.NEXT_RV).fetchone()[0]
            out = prepare_delete(decode_json(row[1]), rv)
            db.execute(q.DELETE, key)
            text = encode_json(out)
            db.execute(q.LOG, (rv, *key, "DELETED", text))
        self._db_after_write([(rv, "DELETED", *key, text)])
        return out

    def _db_compact(self, keep_last: int) -> int:
        with self._sql.transaction() as db:
            compacted: int = db.execute(q.COMPACTED).fetchone()[0]
            row = db.execute(q.NTH_NEWEST, (keep_last,)).fetchone()
            if row is not None and row[0] > compacted:
                compacted = row[0]
                db.execute(q.TRIM, (compacted,))
                db.execute(q.SET_COMPACTED, (compacted,))
        if self._recent is not None:
            self._recent.compacted = compacted
        return compacted

    # ---- reads (worker thread) ------------------------------------------------------------

    @staticmethod
    def _read_get(db: Connection, key: ObjectKey) -> str | None:
        row = db.execute(q.GET, key).fetchone()
        return None if row is None else str(row[1])

    def _db_list(self, page: PageBuilder) -> ListResult:
        with self._sql.transaction("BEGIN") as db:
            rv: int = db.execute(q.CURRENT_RV).fetchone()[0]
            while not page.done:
                chunk = page.chunk_rows
                params: list[str | int] = [page.kind]
                if page.namespace is not None:
                    params.append(page.namespace)
                if page.after is not None:
                    params.extend(page.after)
                if chunk is not None:
                    params.append(chunk)
                query = q.list_query(
                    page.namespace is not None, page.after is not None, chunk is not None
                )
                page.feed(db.execute(query, params).fetchall())
        return page.result(rv)

    def _db_marks(self) -> tuple[int, int]:
        """The newest rv and the compaction mark, in one read transaction."""
        with self._sql.transaction("BEGIN") as db:
            rv: int = db.execute(q.CURRENT_RV).fetchone()[0]
            compacted: int = db.execute(q.COMPACTED).fetchone()[0]
        return rv, compacted

    def _db_scalar(self, query: str) -> int:
        value: int = self._sql.connection.execute(query).fetchone()[0]
        return value

    def _db_changes(self, after: int, limit: int) -> tuple[int, Sequence[ChangeRow]]:
        with self._sql.transaction("BEGIN") as db:
            compacted: int = db.execute(q.COMPACTED).fetchone()[0]
            rows: list[ChangeRow] = db.execute(q.CHANGES, (after, limit)).fetchall()
        return compacted, rows

    # ---- the Store interface --------------------------------------------------------------

    async def create(self, obj: JSONObject) -> JSONObject:
        return await self._sql.run_inline(self._db_create, obj, object_key(obj))

    async def get(self, kind: str, namespace: str, name: str) -> JSONObject:
        text = self._sql.read(self._read_get, (kind, namespace, name))
        if text is None:
            raise NotFound(f"{describe((kind, namespace, name))} not found")
        return decode_json(text)

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
        return await self._sql.run(self._db_list, page)

    async def update(self, obj: JSONObject) -> JSONObject:
        key = object_key(obj)
        wanted = parse_resource_version(obj["metadata"].get("resourceVersion"))
        return await self._sql.run_inline(self._db_update, obj, key, wanted)

    async def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: int | None = None
    ) -> JSONObject:
        return await self._sql.run_inline(
            self._db_delete, (kind, namespace, name), resource_version
        )

    async def current_resource_version(self) -> int:
        return await self._sql.run(self._db_scalar, q.CURRENT_RV)

    def open_watch(
        self, since: int, flt: WatchFilter | None = None
    ) -> AbstractAsyncContextManager[Watch]:
        return self._watch(since, flt)

    @asynccontextmanager
    async def _watch(self, since: int, flt: WatchFilter | None) -> AsyncIterator[Watch]:
        compacted = await self._sql.run(self._db_scalar, q.COMPACTED)
        if since < compacted:
            raise gone(since, compacted)
        watch = LogWatch(self._fetch_changes, self._notifier, since, flt, poll_interval_s=None)
        try:
            yield watch
        finally:
            watch.close()

    async def _fetch_changes(self, after: int, limit: int) -> tuple[int, Sequence[ChangeRow]]:
        served = None if self._recent is None else self._recent.fetch(after, limit)
        if served is not None:
            return served
        return await self._sql.run(self._db_changes, after, limit)

    async def compact(self, keep_last: int) -> int:
        if keep_last < 0:
            raise BadRequest(f"keep_last must be >= 0, got {keep_last}")
        return await self._sql.run(self._db_compact, keep_last)

    async def aclose(self) -> None:
        if self._sql.closed:
            return
        self._notifier.close()
        await self._sql.aclose()


async def open_sqlite_store(
    path: Path,
    *,
    changelog_retention: int = DEFAULT_CHANGELOG_RETENTION,
    busy_timeout_ms: int = 5000,
    twin_history_points: int = DEFAULT_TWIN_HISTORY_POINTS,
    twin_history_max_age_s: float = DEFAULT_TWIN_HISTORY_MAX_AGE_S,
) -> SQLiteStore:
    """Open (creating file and schema when needed) the SQLite store at ``path``."""
    return await SQLiteStore.open(
        path,
        changelog_retention=changelog_retention,
        busy_timeout_ms=busy_timeout_ms,
        twin_history_points=twin_history_points,
        twin_history_max_age_s=twin_history_max_age_s,
    )
