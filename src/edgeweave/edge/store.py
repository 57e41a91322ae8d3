"""The agent's local metadata store: every desired object the cloud sent, in one SQLite file.

This is what makes the edge autonomous (DESIGN.md §4): after a restart with the cloud
unreachable the agent starts its apps, serves twins, DNS and endpoints from here. It is also the
"persist" of persist-then-ack (docs/design/edge-link.md §3): :meth:`EdgeStore.apply_batch`
writes a batch of upserts and deletes in ONE transaction, and only after it returns may the
agent send the ``ack``.

Durability: WAL with ``synchronous=FULL``. With ``NORMAL`` a committed transaction survives a
process crash but the last ones can be lost (never corrupted) on power loss; an acked object
lost that way would make the cloud believe the node holds something it does not. FULL costs one
fsync per batch (about 1.5 ms on the reference machine), and desired-state batches are rare,
so the store pays it. The held digest would catch a divergence on the next ``hello``, but
correctness should not rest on the repair path.

Secrets are encrypted at rest: the values under ``data`` and ``stringData`` of ``Secret``
objects are sealed with AES-GCM (key: ``DATA/pki/store.key``, see
:func:`load_or_create_store_key`), each bound to its secret and key name, and opened on read.
Key names and metadata stay readable. ``cryptography`` is imported on the first secret sealed
or opened: an agent whose node holds no Secrets never loads it (several MB of memory).

All database work runs on one dedicated worker thread that owns the only connection
(:class:`~edgeweave.aio.sqlite.SQLiteThread`); the asyncio side awaits it. Reads page through
the table so one call never pulls an unbounded result set out of SQLite at once.

Must not: import :mod:`edgeweave.cloud`; let a :mod:`sqlite3` or :mod:`cryptography`
exception escape (they become :class:`~edgeweave.errors.StoreError`); write a plaintext secret
value to disk; import :mod:`sqlite3` (the kit in :mod:`edgeweave.aio.sqlite` does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeweave.aio.sqlite import Connection, SQLiteThread
from edgeweave.errors import ConfigError, InvalidObject, NotFound, StoreError
from edgeweave.protocol.refs import ResourceRef, Versioned

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

JSONObject = dict[str, Any]
Upsert = tuple[ResourceRef, int, JSONObject]
ObjectList = list[JSONObject]
VersionedList = list[Versioned]

STORE_KEY_BYTES = 32
PAGE_ROWS = 256
MAX_RV = 2**63 - 1
CACHE_SIZE_PRAGMA = -512
"""SQLite page cache bound (negative: KiB); the agent's working set is small."""
SECRET_KIND = "Secret"  # noqa: S105 - a kind name, not a password
SECRET_FIELDS = ("data", "stringData")
_SEALED_PREFIX = "aesgcm1:"
_NONCE_BYTES = 12

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
_UPSERT = (
    "INSERT INTO objects (kind, namespace, name, rv, json) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (kind, namespace, name) DO UPDATE SET rv = excluded.rv, json = excluded.json"
)
_DELETE = "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?"
_GET = "SELECT json FROM objects WHERE kind = ? AND namespace = ? AND name = ?"
_SET_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
# BINARY collation compares UTF-8 bytes, which orders like Python compares code points, so this
# is the order protocol.refs.held_digest sorts its lines in.
_HELD_LINES = "SELECT kind || '/' || namespace || '/' || name || '=' || rv AS line FROM objects"
_HELD = "SELECT kind, namespace, name, rv FROM objects ORDER BY kind, namespace, name"


# ---- the store key ------------------------------------------------------------------------


def load_or_create_store_key(path: Path) -> bytes:
    """The 32-byte key that encrypts secrets at rest, created (mode 0600) when missing.

    Creation is atomic (written to a temporary file, fsynced, then hard-linked into place), so
    a crash never leaves a short key and two agents racing agree on one key. An existing key
    readable by group or others is refused, like ssh refuses such a private key.
    """
    path = Path(path)
    try:
        return _read_store_key(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(STORE_KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its key
        finally:
            os.unlink(tmp)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        raise ConfigError(f"cannot create the store key {path}: {e}") from e
    return _read_store_key(path)


def _read_store_key(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"store key {path} is accessible by group or others (mode "
                f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
            )
        key = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ConfigError(f"cannot read the store key {path}: {e}") from e
    if len(key) != STORE_KEY_BYTES:
        raise ConfigError(
            f"store key {path} holds {len(key)} bytes, expected {STORE_KEY_BYTES}; restore it "
            "from a backup (without it the stored secrets cannot be read)"
        )
    return key


# ---- secrets at rest ----------------------------------------------------------------------


def _aad(ref: ResourceRef, field: str, key: str) -> bytes:
    # binds a sealed value to its place: it cannot be moved to another secret or key name
    return f"{ref.namespace}/{ref.name}/{field}/{key}".encode()


def _seal_secret(aead: AESGCM, ref: ResourceRef, obj: JSONObject) -> JSONObject:
    sealed = dict(obj)
    for field in SECRET_FIELDS:
        values = obj.get(field)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise InvalidObject(f"{ref}: {field} must be a mapping", field=field)
        out: dict[str, str] = {}
        for key, value in values.items():
            nonce = secrets.token_bytes(_NONCE_BYTES)
            plain = json.dumps(value).encode()
            box = nonce + aead.encrypt(nonce, plain, _aad(ref, field, key))
            out[key] = _SEALED_PREFIX + base64.b64encode(box).decode("ascii")
        sealed[field] = out
    return sealed


def _open_secret(aead: AESGCM, ref: ResourceRef, obj: JSONObject) -> JSONObject:
    from cryptography.exceptions import InvalidTag

    for field in SECRET_FIELDS:
        values = obj.get(field)
        if not isinstance(values, dict):
            continue
        out: dict[str, Any] = {}
        for key, text in values.items():
            if not isinstance(text, str) or not text.startswith(_SEALED_PREFIX):
                raise StoreError(f"{ref}: {field}.{key} is not sealed in the edge store")
            try:
                box = base64.b64decode(text[len(_SEALED_PREFIX) :], validate=True)
            except (binascii.Error, ValueError) as e:
                raise StoreError(f"{ref}: {field}.{key} is damaged in the edge store: {e}") from e
            if len(box) <= _NONCE_BYTES:
                raise StoreError(f"{ref}: {field}.{key} is damaged in the edge store: too short")
            try:
                plain = aead.decrypt(box[:_NONCE_BYTES], box[_NONCE_BYTES:], _aad(ref, field, key))
            except InvalidTag as e:
                raise StoreError(
                    f"{ref}: {field}.{key} cannot be decrypted: the store key does not match "
                    "this store (was DATA/pki/store.key replaced?)"
                ) from e
            out[key] = json.loads(plain)
        obj[field] = out
    return obj


# ---- the store ----------------------------------------------------------------------------


def _check_ref(ref: ResourceRef, rv: int) -> None:
    if not isinstance(rv, int) or not 0 <= rv <= MAX_RV:
        raise InvalidObject(f"{ref}: resourceVersion {rv!r} is not an integer in range")


def _check_object(ref: ResourceRef, obj: JSONObject) -> None:
    if not isinstance(obj, dict):
        raise InvalidObject(f"{ref}: the object is not a JSON object")
    kind = obj.get("kind")
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    namespace = (meta.get("namespace") or "") if isinstance(meta, dict) else None
    if (kind, namespace, name) != (ref.kind, ref.namespace, ref.name):
        raise InvalidObject(f"{ref}: the object says {kind} {namespace}/{name}", field="metadata")


def batch_outcome(
    upserts: Sequence[Upsert], deletes: Sequence[Versioned]
) -> dict[ResourceRef, tuple[int, JSONObject | None]]:
    """What a batch leaves of each ref, ``(rv, object)`` (None: deleted): for one ref the
    operation with the highest rv wins, whatever order the lists have. InvalidObject for a bad
    ref, rv or object (the store then writes nothing of the batch)."""
    final: dict[ResourceRef, tuple[int, JSONObject | None]] = {}
    for v in deletes:
        _check_ref(v.ref, v.rv)
        if v.ref not in final or final[v.ref][0] <= v.rv:
            final[v.ref] = (v.rv, None)
    for ref, rv, obj in upserts:
        _check_ref(ref, rv)
        _check_object(ref, obj)
        if ref not in final or final[ref][0] <= rv:
            final[ref] = (rv, obj)
    return final


class EdgeStore:
    """The desired objects and a small key/value ``meta`` table in one SQLite file. Use
    :func:`open_edge_store` (or :meth:`open`); the constructor does no I/O."""

    def __init__(self, path: Path, *, secret_key: bytes, busy_timeout_ms: int = 5000) -> None:
        if len(secret_key) != STORE_KEY_BYTES:
            raise ConfigError(f"the store key must be {STORE_KEY_BYTES} bytes")
        self.path = Path(path)
        self._secret_key = secret_key
        self._aead: AESGCM | None = None  # made on first use; only the worker thread uses it
        self._sql = SQLiteThread(
            self.path,
            name="edge store",
            thread_name="edgeweave-edge-store",
            pragmas={
                "busy_timeout": int(busy_timeout_ms),
                "journal_mode": "WAL",
                "synchronous": "FULL",
                "cache_size": CACHE_SIZE_PRAGMA,  # KiB when negative
            },
            schema=_SCHEMA,
            cached_statements=64,
        )
        self._digest: str | None = None  # cached; only the worker thread touches it

    @classmethod
    async def open(cls, path: Path, *, secret_key: bytes, busy_timeout_ms: int = 5000) -> EdgeStore:
        store = cls(path, secret_key=secret_key, busy_timeout_ms=busy_timeout_ms)
        await store._sql.open()
        return store

    # ---- plumbing -------------------------------------------------------------------------

    def _cipher(self) -> AESGCM:
        """The AES-GCM cipher for secrets, importing ``cryptography`` the first time."""
        if self._aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(self._secret_key)
        return self._aead

    @property
    def _db(self) -> Connection:
        return self._sql.connection

    # ---- worker-thread side ---------------------------------------------------------------

    def _db_apply(
        self,
        upserts: Sequence[Upsert],
        deletes: Sequence[Versioned],
        meta: Mapping[str, str],
    ) -> None:
        final = batch_outcome(upserts, deletes)
        rows: list[tuple[str, str, str, int, str]] = []
        gone: list[tuple[str, str, str]] = []
        for ref, (rv, wanted) in final.items():
            key = (ref.kind, ref.namespace, ref.name)
            if wanted is None:
                gone.append(key)
                continue
            stored = (
                _seal_secret(self._cipher(), ref, wanted) if ref.kind == SECRET_KIND else wanted
            )
            try:
                text = json.dumps(stored, separators=(",", ":"))
            except (TypeError, ValueError) as e:
                raise InvalidObject(f"{ref}: the object is not JSON-serialisable: {e}") from e
            rows.append((*key, rv, text))
        self._digest = None
        with self._sql.transaction() as db:
            db.executemany(_DELETE, gone)
            db.executemany(_UPSERT, rows)
            db.executemany(_SET_META, meta.items())

    def _decode(self, ref: ResourceRef, text: str) -> JSONObject:
        obj: JSONObject = json.loads(text)
        if ref.kind == SECRET_KIND:
            obj = _open_secret(self._cipher(), ref, obj)
        return obj

    def _db_get(self, ref: ResourceRef) -> JSONObject | None:
        row = self._db.execute(_GET, (ref.kind, ref.namespace, ref.name)).fetchone()
        return None if row is None else self._decode(ref, row[0])

    def _db_page(
        self, kind: str | None, namespace: str | None, after: tuple[str, str, str] | None
    ) -> tuple[ObjectList, tuple[str, str, str] | None]:
        """One page of objects and the key to continue after (None: this was the last)."""
        where: list[str] = []
        params: list[str | int] = []
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if namespace is not None:
            where.append("namespace = ?")
            params.append(namespace)
        if after is not None:
            where.append("(kind, namespace, name) > (?, ?, ?)")
            params.extend(after)
        query = "SELECT kind, namespace, name, json FROM objects"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY kind, namespace, name LIMIT ?"
        params.append(PAGE_ROWS)
        rows = self._db.execute(query, params).fetchall()
        objects = [self._decode(ResourceRef(k, ns, n), text) for k, ns, n, text in rows]
        last = (rows[-1][0], rows[-1][1], rows[-1][2]) if len(rows) == PAGE_ROWS else None
        return objects, last

    def _db_held(self) -> VersionedList:
        # one statement: one snapshot, fetched a page at a time
        out: VersionedList = []
        cursor = self._db.execute(_HELD)
        while rows := cursor.fetchmany(PAGE_ROWS):
            out.extend(Versioned(ResourceRef(k, ns, n), rv) for k, ns, n, rv in rows)
        return out

    def _db_held_digest(self) -> str:
        if self._digest is None:
            digest = hashlib.sha256()
            cursor = self._db.execute(_HELD_LINES + " ORDER BY line")
            while rows := cursor.fetchmany(PAGE_ROWS):
                for (line,) in rows:
                    digest.update(line.encode())
                    digest.update(b"\n")
            self._digest = digest.hexdigest()
        return self._digest

    def _db_count(self, kind: str | None) -> int:
        if kind is None:
            row = self._db.execute("SELECT count(*) FROM objects").fetchone()
        else:
            row = self._db.execute(
                "SELECT count(*) FROM objects WHERE kind = ?", (kind,)
            ).fetchone()
        return int(row[0])

    def _db_get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _db_set_meta(self, key: str, value: str) -> None:
        self._db.execute(_SET_META, (key, value))

    # ---- the public interface -------------------------------------------------------------

    async def apply_batch(
        self,
        upserts: Sequence[Upsert],
        deletes: Sequence[Versioned],
        *,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        """Persist a batch of upserts ``(ref, rv, object)`` and deletes in ONE transaction
        (what it leaves of each ref: :func:`batch_outcome`).

        All or nothing: when this raises, nothing of the batch was written. When it returns the
        batch is on disk (fsynced) and the agent may ack it. For one ref appearing more than
        once, the operation with the highest rv wins. ``meta`` entries (e.g. the sync rv) are
        written in the same transaction.
        """
        await self._sql.run(self._db_apply, list(upserts), list(deletes), dict(meta or {}))

    async def get(self, ref: ResourceRef) -> JSONObject:
        """The stored object (secrets decrypted); :class:`NotFound` when not held."""
        obj = await self._sql.run(self._db_get, ref)
        if obj is None:
            raise NotFound(f"{ref} is not held by this node")
        return obj

    async def list(self, kind: str | None = None, namespace: str | None = None) -> ObjectList:
        """Held objects, optionally of one kind and/or namespace, ordered by kind, namespace,
        name. Read page by page, so a persist can run between pages."""
        out: ObjectList = []
        objects, after = await self._sql.run(self._db_page, kind, namespace, None)
        out.extend(objects)
        while after is not None:
            objects, after = await self._sql.run(self._db_page, kind, namespace, after)
            out.extend(objects)
        return out

    async def held(self) -> VersionedList:
        """Every held ``(ref, rv)``, one consistent snapshot (what a ``held`` message carries)."""
        return await self._sql.run(self._db_held)

    async def held_digest(self) -> str:
        """sha256 hex of the held set, the same value as ``protocol.refs.held_digest(held())``;
        computed by SQLite from a sorted query and cached until the next write."""
        return await self._sql.run(self._db_held_digest)

    async def count(self, kind: str | None = None) -> int:
        return await self._sql.run(self._db_count, kind)

    async def get_meta(self, key: str) -> str | None:
        return await self._sql.run(self._db_get_meta, key)

    async def set_meta(self, key: str, value: str) -> None:
        await self._sql.run(self._db_set_meta, key, value)

    async def aclose(self) -> None:
        await self._sql.aclose()


async def open_edge_store(
    path: Path, *, secret_key: bytes, busy_timeout_ms: int = 5000
) -> EdgeStore:
    """Open (creating file and schema when needed) the agent's store at ``path``."""
    return await EdgeStore.open(path, secret_key=secret_key, busy_timeout_ms=busy_timeout_ms)
