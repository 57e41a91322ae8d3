"""The SQLite state store: the cloud's default backend, one file, one process.

All database work runs on ONE dedicated worker thread that owns the only connection (a
single-thread executor); the asyncio side awaits it. WAL mode, ``synchronous=NORMAL``,
a busy timeout. Every write is one ``BEGIN IMMEDIATE`` transaction that bumps the store-wide
resourceVersion, writes the object and appends the change log. After commit the worker wakes
the store's watches on the event loop; watches read the change log themselves.

Must not be shared by several processes writing the same file expecting live watches across
them (notifications are in-process; use PostgreSQL for several cloud replicas). This is the
only module that imports :mod:`sqlite3`, and no sqlite3 exception leaves it.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import TypeVar, TypeVarTuple, Unpack

from edgeweave.cloud.store._nodesync import (
    DEFAULT_EVENTS_RETENTION,
    EVENT_COLUMNS,
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
    NotFound,
    StoreError,
    StoreUnavailable,
)
from edgeweave.models.selectors import LabelSelector

_log = logging.getLogger(__name__)
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

DEFAULT_CHANGELOG_RETENTION = 100_000
RETENTION_EVERY_WRITES = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changelog (
    rv INTEGER PRIMARY KEY, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    type TEXT NOT NULL, json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('rv', 0), ('compacted', 0);
"""
# per-node sync tables (docs/design/edge-link.md §3, §5) and used join tokens
_SYNC_SCHEMA = """
CREATE TABLE IF NOT EXISTS node_acks (
    node TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, PRIMARY KEY (node, kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS node_upstream (
    node TEXT PRIMARY KEY, committed_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, time REAL NOT NULL,
    object_kind TEXT NOT NULL, object_namespace TEXT NOT NULL, object_name TEXT NOT NULL,
    type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_object
    ON events (object_kind, object_namespace, object_name, id);
CREATE TABLE IF NOT EXISTS join_tokens (jti TEXT PRIMARY KEY, exp INTEGER NOT NULL) WITHOUT ROWID;
"""
_ACK_UPSERT = (
    "INSERT INTO node_acks (node, kind, namespace, name, rv) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (node, kind, namespace, name) DO UPDATE SET rv = excluded.rv"
)
_ACK_DROP_DELETED = (
    "DELETE FROM node_acks WHERE node = ? AND kind = ? AND namespace = ? AND name = ? "
    "AND NOT EXISTS (SELECT 1 FROM objects WHERE kind = ? AND namespace = ? AND name = ?)"
)
_EVENT_INSERT = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_GET = "SELECT rv, json FROM objects WHERE kind = ? AND namespace = ? AND name = ?"
_NEXT_RV = "UPDATE meta SET value = value + 1 WHERE key = 'rv' RETURNING value"
_CURRENT_RV = "SELECT value FROM meta WHERE key = 'rv'"
_COMPACTED = "SELECT value FROM meta WHERE key = 'compacted'"
_LOG = "INSERT INTO changelog (rv, kind, namespace, name, type, json) VALUES (?, ?, ?, ?, ?, ?)"
_CHANGES = (
    "SELECT rv, type, kind, namespace, name, json FROM changelog WHERE rv > ? ORDER BY rv LIMIT ?"
)


def _translate(e: sqlite3.Error) -> StoreError:
    text = str(e)
    if isinstance(e, sqlite3.IntegrityError) and "objects" in text:
        return AlreadyExists(f"object already exists: {text}")
    if isinstance(e, sqlite3.OperationalError):
        return StoreUnavailable(f"SQLite store unavailable: {text}")
    return StoreError(f"SQLite store error: {text}")


def _list_query(by_namespace: bool, after: bool, limited: bool) -> str:
    query = "SELECT namespace, name, json FROM objects WHERE kind = ?"
    if by_namespace:
        query += " AND namespace = ?"
    if after:
        query += " AND (namespace, name) > (?, ?)"
    query += " ORDER BY namespace, name"
    return query + " LIMIT ?" if limited else query


class SQLiteStore:
    """A :class:`~edgeweave.cloud.store.base.Store` in one SQLite file. Use
    :func:`open_sqlite_store` (or :meth:`open`); the constructor does no I/O."""

    def __init__(
        self,
        path: Path,
        *,
        changelog_retention: int = DEFAULT_CHANGELOG_RETENTION,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = Path(path)
        self._changelog_retention = changelog_retention
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeweave-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._notifier = Notifier()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writes_since_retention = 0
        self._closed = False
        self.events_retention = DEFAULT_EVENTS_RETENTION

    @classmethod
    async def open(cls, path: Path, **kwargs: int) -> SQLiteStore:
        store = cls(path, **kwargs)
        store._loop = asyncio.get_running_loop()
        try:
            await store._run(store._db_connect)
        except BaseException:
            store._executor.shutdown(wait=True)
            raise
        return store

    # ---- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        if self._closed:
            raise StoreUnavailable("the SQLite store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as e:
            raise _translate(e) from e

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the SQLite store is not open")
        return self._conn

    def _db_connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, cached_statements=256)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA + _SYNC_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute(begin)
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _db_after_write(self) -> None:
        """On the worker, after commit: wake watches, apply retention now and then."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._notifier.notify)
        self._writes_since_retention += 1
        if self._writes_since_retention >= RETENTION_EVERY_WRITES:
            self._writes_since_retention = 0
            try:
                self._db_compact(self._changelog_retention)
            except sqlite3.Error as e:  # the write itself committed; retry at the next one
                self._writes_since_retention = RETENTION_EVERY_WRITES
                _log.warning("change-log retention failed: %s", e)

    # ---- writes (worker thread) -----------------------------------------------------------

    def _db_create(self, obj: JSONObject, key: ObjectKey) -> JSONObject:
        with self._transaction() as db:
            if db.execute(_GET, key).fetchone() is not None:
                raise AlreadyExists(f"{describe(key)} already exists")
            rv: int = db.execute(_NEXT_RV).fetchone()[0]
            out = prepare_create(obj, rv)
            text = encode_json(out)
            db.execute("INSERT INTO objects VALUES (?, ?, ?, ?, ?)", (*key, rv, text))
            db.execute(_LOG, (rv, *key, "ADDED", text))
        self._db_after_write()
        return out

    def _db_update(self, obj: JSONObject, key: ObjectKey, wanted: int | None) -> JSONObject:
        with self._transaction() as db:
            row = db.execute(_GET, key).fetchone()
            if row is None:
                raise NotFound(f"{describe(key)} not found")
            check_cas(key, row[0], wanted)
            rv: int = db.execute(_NEXT_RV).fetchone()[0]
            out = prepare_update(obj, decode_json(row[1]), rv)
            text = encode_json(out)
            db.execute(
                "UPDATE objects SET rv = ?, json = ? WHERE kind = ? AND namespace = ? AND name = ?",
                (rv, text, *key),
            )
            db.execute(_LOG, (rv, *key, "MODIFIED", text))
        self._db_after_write()
        return out

    def _db_delete(self, key: ObjectKey, wanted: int | None) -> JSONObject:
        with self._transaction() as db:
            row = db.execute(_GET, key).fetchone()
            if row is None:
                raise NotFound(f"{describe(key)} not found")
            check_cas(key, row[0], wanted)
            rv: int = db.execute(_NEXT_RV).fetchone()[0]
            out = prepare_delete(decode_json(row[1]), rv)
            db.execute("DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?", key)
            db.execute(_LOG, (rv, *key, "DELETED", encode_json(out)))
        self._db_after_write()
        return out

    def _db_compact(self, keep_last: int) -> int:
        with self._transaction() as db:
            compacted: int = db.execute(_COMPACTED).fetchone()[0]
            row = db.execute(
                "SELECT rv FROM changelog ORDER BY rv DESC LIMIT 1 OFFSET ?", (keep_last,)
            ).fetchone()
            if row is not None and row[0] > compacted:
                compacted = row[0]
                db.execute("DELETE FROM changelog WHERE rv <= ?", (compacted,))
                db.execute("UPDATE meta SET value = ? WHERE key = 'compacted'", (compacted,))
        return compacted

    # ---- node sync tables (worker thread) ---------------------------------------------------

    def _db_record_acks(self, node: str, items: list[AckItem], replace: bool) -> None:
        with self._transaction() as db:
            if replace:
                db.execute("DELETE FROM node_acks WHERE node = ?", (node,))
            db.executemany(_ACK_UPSERT, [(node, *item) for item in items])
            if not replace:  # an ack for an object the store no longer has is a delete ack
                db.executemany(_ACK_DROP_DELETED, [(node, *i[:3], *i[:3]) for i in items])

    def _db_acked(self, node: str) -> dict[AckKey, int]:
        rows = self._db.execute(
            "SELECT kind, namespace, name, rv FROM node_acks WHERE node = ?", (node,)
        ).fetchall()
        return {(k, ns, n): rv for k, ns, n, rv in rows}

    def _db_committed_seq(self, db: sqlite3.Connection, node: str) -> int:
        row = db.execute("SELECT committed_seq FROM node_upstream WHERE node = ?", (node,))
        found = row.fetchone()
        return 0 if found is None else int(found[0])

    def _db_commit_upstream(
        self, node: str, seq: int, events: Sequence[JSONObject], writes: Sequence[StatusWrite]
    ) -> tuple[int, bool]:
        rows = event_rows(node, events)
        grouped = group_status_writes(writes)
        wrote = False
        with self._transaction() as db:
            stored = self._db_committed_seq(db, node)
            if seq <= stored:
                return stored, False
            if rows:
                db.executemany(_EVENT_INSERT, rows)
                last: int = db.execute("SELECT max(id) FROM events").fetchone()[0]
                db.execute("DELETE FROM events WHERE id <= ?", (last - self.events_retention,))
            found = [(key, db.execute(_GET, key).fetchone(), p) for key, p in grouped.items()]
            present = [(key, row, p) for key, row, p in found if row is not None]
            if present:
                top: int = db.execute(
                    "UPDATE meta SET value = value + ? WHERE key = 'rv' RETURNING value",
                    (len(present),),
                ).fetchone()[0]
                updates, changes = [], []
                for rv, (key, row, patches) in enumerate(present, start=top - len(present) + 1):
                    text = encode_json(_apply_status(decode_json(row[1]), patches, rv))
                    updates.append((rv, text, *key))
                    changes.append((rv, *key, "MODIFIED", text))
                db.executemany(
                    "UPDATE objects SET rv = ?, json = ? "
                    "WHERE kind = ? AND namespace = ? AND name = ?",
                    updates,
                )
                db.executemany(_LOG, changes)
                wrote = True
            db.execute(
                "INSERT INTO node_upstream (node, committed_seq) VALUES (?, ?) "
                "ON CONFLICT (node) DO UPDATE SET committed_seq = excluded.committed_seq",
                (node, seq),
            )
        if wrote:
            self._db_after_write()
        return seq, True

    def _db_list_events(self, where: list[str], params: list[str], limit: int) -> list[JSONObject]:
        query = f"SELECT id, {EVENT_COLUMNS} FROM events"  # noqa: S608 (fixed column names)
        if where:
            query += " WHERE " + " AND ".join(c.format(p="?") for c in where)
        rows = self._db.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [event_from_row(r) for r in reversed(rows)]

    def _db_mark_token(self, jti: str, expires_at: int, now: int) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM join_tokens WHERE exp < ?", (now,))
            cur = db.execute(
                "INSERT INTO join_tokens (jti, exp) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (jti, expires_at),
            )
            return cur.rowcount == 1

    # ---- reads (worker thread) ------------------------------------------------------------

    def _db_get(self, key: ObjectKey) -> str | None:
        row = self._db.execute(_GET, key).fetchone()
        return None if row is None else str(row[1])

    def _db_list(self, page: PageBuilder) -> ListResult:
        with self._transaction("BEGIN") as db:
            rv: int = db.execute(_CURRENT_RV).fetchone()[0]
            while not page.done:
                chunk = page.chunk_rows
                params: list[str | int] = [page.kind]
                if page.namespace is not None:
                    params.append(page.namespace)
                if page.after is not None:
                    params.extend(page.after)
                if chunk is not None:
                    params.append(chunk)
                query = _list_query(
                    page.namespace is not None, page.after is not None, chunk is not None
                )
                page.feed(db.execute(query, params).fetchall())
        return page.result(rv)

    def _db_scalar(self, query: str) -> int:
        value: int = self._db.execute(query).fetchone()[0]
        return value

    def _db_changes(self, after: int, limit: int) -> tuple[int, Sequence[ChangeRow]]:
        with self._transaction("BEGIN") as db:
            compacted: int = db.execute(_COMPACTED).fetchone()[0]
            rows: list[ChangeRow] = db.execute(_CHANGES, (after, limit)).fetchall()
        return compacted, rows

    def _db_close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ---- the Store interface --------------------------------------------------------------

    async def create(self, obj: JSONObject) -> JSONObject:
        return await self._run(self._db_create, obj, object_key(obj))

    async def get(self, kind: str, namespace: str, name: str) -> JSONObject:
        text = await self._run(self._db_get, (kind, namespace, name))
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
        return await self._run(self._db_list, page)

    async def update(self, obj: JSONObject) -> JSONObject:
        key = object_key(obj)
        wanted = parse_resource_version(obj["metadata"].get("resourceVersion"))
        return await self._run(self._db_update, obj, key, wanted)

    async def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: int | None = None
    ) -> JSONObject:
        return await self._run(self._db_delete, (kind, namespace, name), resource_version)

    async def current_resource_version(self) -> int:
        return await self._run(self._db_scalar, _CURRENT_RV)

    def open_watch(
        self, since: int, flt: WatchFilter | None = None
    ) -> AbstractAsyncContextManager[Watch]:
        return self._watch(since, flt)

    @asynccontextmanager
    async def _watch(self, since: int, flt: WatchFilter | None) -> AsyncIterator[Watch]:
        compacted = await self._run(self._db_scalar, _COMPACTED)
        if since < compacted:
            raise gone(since, compacted)
        watch = LogWatch(self._fetch_changes, self._notifier, since, flt, poll_interval_s=None)
        try:
            yield watch
        finally:
            watch.close()

    async def _fetch_changes(self, after: int, limit: int) -> tuple[int, Sequence[ChangeRow]]:
        return await self._run(self._db_changes, after, limit)

    async def compact(self, keep_last: int) -> int:
        if keep_last < 0:
            raise BadRequest(f"keep_last must be >= 0, got {keep_last}")
        return await self._run(self._db_compact, keep_last)

    # ---- the NodeSyncStore interface --------------------------------------------------------

    async def acked_versions(self, node: str) -> dict[AckKey, int]:
        return await self._run(self._db_acked, node)

    async def record_acks(self, node: str, items: Sequence[AckItem]) -> None:
        await self._run(self._db_record_acks, node, list(items), False)

    async def replace_acks(self, node: str, items: Sequence[AckItem]) -> None:
        await self._run(self._db_record_acks, node, list(items), True)

    async def upstream_committed_seq(self, node: str) -> int:
        return await self._run(self._db_committed_seq, self._db, node)

    async def commit_upstream(
        self,
        node: str,
        committed_seq: int,
        events: Sequence[JSONObject],
        status_writes: Sequence[StatusWrite],
    ) -> int:
        seq, _ = await self._run(
            self._db_commit_upstream, node, committed_seq, events, status_writes
        )
        return seq

    async def list_events(
        self,
        object_kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        node: str | None = None,
        limit: int = 100,
    ) -> builtins.list[JSONObject]:
        where, params = events_query_filters(object_kind, namespace, name, node)
        return await self._run(self._db_list_events, where, params, max(0, limit))

    async def mark_token_used(self, jti: str, expires_at: int, now: int) -> bool:
        return await self._run(self._db_mark_token, jti, expires_at, now)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._notifier.close()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._db_close)
        except sqlite3.Error as e:
            raise _translate(e) from e
        finally:
            self._executor.shutdown(wait=True)


async def open_sqlite_store(
    path: Path,
    *,
    changelog_retention: int = DEFAULT_CHANGELOG_RETENTION,
    busy_timeout_ms: int = 5000,
) -> SQLiteStore:
    """Open (creating file and schema when needed) the SQLite store at ``path``."""
    return await SQLiteStore.open(
        path, changelog_retention=changelog_retention, busy_timeout_ms=busy_timeout_ms
    )
