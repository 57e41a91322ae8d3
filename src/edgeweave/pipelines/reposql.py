"""The SQL of the repo store: its schema and the functions that run on its worker thread.

Every function takes the worker's connection (inside a transaction when it writes) and is
called only from :class:`~edgeweave.pipelines.repostore.RepoDB` methods running on the SQLite
kit's worker. The table layout is described in ``repostore.py``.

This module must not be called from the event loop, start threads, touch chunk files, or
import :mod:`sqlite3` (the kit's :data:`~edgeweave.aio.sqlite.Connection` type is enough).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from edgeweave.aio.sqlite import Connection
from edgeweave.errors import Conflict, InvalidObject, NotFound
from edgeweave.pipelines.commits import CommitInfo
from edgeweave.pipelines.trees import FileTree

ChunkPart = tuple[str, bytes | None]  # a chunk's digest and, when packed, its bytes

SCHEMA = """
CREATE TABLE IF NOT EXISTS repos (
    name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS branches (
    repo TEXT NOT NULL, name TEXT NOT NULL, head INTEGER, PRIMARY KEY (repo, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, repo TEXT NOT NULL, branch TEXT NOT NULL,
    parent INTEGER, origin TEXT NOT NULL, created_at REAL NOT NULL, finished_at REAL,
    description TEXT NOT NULL DEFAULT '', provenance TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS commits_repo ON commits (repo, seq);
CREATE INDEX IF NOT EXISTS commits_parent ON commits (parent);
CREATE TABLE IF NOT EXISTS changes (
    commit_seq INTEGER NOT NULL, path TEXT NOT NULL, object TEXT, size INTEGER NOT NULL,
    PRIMARY KEY (commit_seq, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    commit_seq INTEGER NOT NULL, path TEXT NOT NULL, object TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (commit_seq, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, chunks TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, data BLOB
) WITHOUT ROWID;
"""

COMMIT_COLUMNS = (
    "c.seq, c.id, c.repo, c.branch, p.id, c.origin, c.created_at, c.finished_at, "
    "c.description, c.provenance"
)
COMMIT_SELECT = f"SELECT {COMMIT_COLUMNS} FROM commits c LEFT JOIN commits p ON p.seq = c.parent"  # noqa: S608


def collect_garbage(db: Connection) -> tuple[list[tuple[str, int]], int, int]:
    """In a transaction: drop objects no tree or change uses and chunks no object uses.
    Returns the large chunks to unlink (digest, size), and the count and bytes of the packed
    chunks dropped."""
    live_objects = {
        str(o)
        for (o,) in db.execute(
            "SELECT object FROM files UNION SELECT object FROM changes WHERE object IS NOT NULL"
        )
    }
    live_chunks: set[str] = set()
    dead_objects: list[tuple[str]] = []
    for digest, chunks in db.execute("SELECT digest, chunks FROM objects"):
        if digest in live_objects:
            live_chunks.update(str(chunks).split())
        else:
            dead_objects.append((digest,))
    db.executemany("DELETE FROM objects WHERE digest = ?", dead_objects)
    unlink: list[tuple[str, int]] = []
    packed_count = packed_bytes = 0
    dead: list[tuple[str]] = []
    for digest, size, packed in db.execute("SELECT digest, size, data IS NOT NULL FROM chunks"):
        if digest in live_chunks:
            continue
        dead.append((digest,))
        if packed:
            packed_count += 1
            packed_bytes += int(size)
        else:
            unlink.append((str(digest), int(size)))
    db.executemany("DELETE FROM chunks WHERE digest = ?", dead)
    return unlink, packed_count, packed_bytes


def require_repo(db: Connection, name: str) -> None:
    if not db.execute("SELECT 1 FROM repos WHERE name = ?", (name,)).fetchone():
        raise NotFound(f"repo {name!r} does not exist; create it with `repo create {name}`")


def require_open(info: CommitInfo) -> None:
    if info.finished:
        raise Conflict(f"commit {info.id} is finished; start a new commit to change files")


def commit_info(row: Sequence[object]) -> CommitInfo:
    _, cid, repo, branch, parent, origin, created, finished, desc, prov = row
    return CommitInfo(
        id=str(cid),
        repo=str(repo),
        branch=str(branch),
        parent=None if parent is None else str(parent),
        origin="auto" if origin == "auto" else "user",
        created_at=float(created),  # type: ignore[arg-type]
        finished_at=None if finished is None else float(finished),  # type: ignore[arg-type]
        description=str(desc),
        provenance=tuple(json.loads(str(prov))),
    )


def commit_by_id(db: Connection, commit_id: str) -> tuple[int, CommitInfo]:
    row = db.execute(f"{COMMIT_SELECT} WHERE c.id = ?", (commit_id,)).fetchone()
    if row is None:
        raise NotFound(f"commit {commit_id} does not exist")
    return int(row[0]), commit_info(row)


def parent_seq(db: Connection, seq: int) -> int | None:
    row = db.execute("SELECT parent FROM commits WHERE seq = ?", (seq,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def lookup(
    db: Connection, seq: int, parent: int | None, path: str, *, finished: bool
) -> str | None:
    """The object of ``path`` in a commit (an open one reads its changes over its parent)."""
    if finished:
        row = db.execute(
            "SELECT object FROM files WHERE commit_seq = ? AND path = ?", (seq, path)
        ).fetchone()
        return None if row is None else str(row[0])
    change = db.execute(
        "SELECT object FROM changes WHERE commit_seq = ? AND path = ?", (seq, path)
    ).fetchone()
    if change is not None:
        return None if change[0] is None else str(change[0])
    if parent is None:
        return None
    row = db.execute(
        "SELECT object FROM files WHERE commit_seq = ? AND path = ?", (parent, path)
    ).fetchone()
    return None if row is None else str(row[0])


def view_paths(db: Connection, seq: int, parent: int | None, path: str) -> list[str]:
    """Paths in an open commit at ``path`` (a file) or under it (a directory)."""
    found = paths_under(db, seq, parent, path)
    if path != "/" and lookup(db, seq, parent, path, finished=False) is not None:
        found.append(path)
    return sorted(found)


def paths_under(db: Connection, seq: int, parent: int | None, directory: str) -> list[str]:
    """Paths in an open commit under ``directory``. Two range scans on the primary keys
    (an ``OR`` with an equality would make SQLite scan the whole commit)."""
    lo, hi = ("/", "0") if directory == "/" else (directory + "/", directory + "0")
    found: dict[str, bool] = {}
    if parent is not None:
        rows = db.execute(
            "SELECT path FROM files WHERE commit_seq = ? AND path >= ? AND path < ?",
            (parent, lo, hi),
        )
        found.update((str(p), True) for (p,) in rows)
    rows = db.execute(
        "SELECT path, object FROM changes WHERE commit_seq = ? AND path >= ? AND path < ?",
        (seq, lo, hi),
    )
    found.update((str(p), obj is not None) for p, obj in rows)
    return [p for p, alive in found.items() if alive]


def check_shape(db: Connection, seq: int, parent: int | None, path: str) -> None:
    """``path`` may not sit under a file, nor be a directory already."""
    cut = path.rfind("/")
    while cut > 0:
        ancestor = path[:cut]
        if lookup(db, seq, parent, ancestor, finished=False) is not None:
            raise InvalidObject(f"cannot put {path}: {ancestor} is a file")
        cut = path.rfind("/", 0, cut)
    if paths_under(db, seq, parent, path):
        raise InvalidObject(f"cannot put {path}: it is a directory")


def open_tree(db: Connection, seq: int) -> FileTree:
    parent = parent_seq(db, seq)
    entries: dict[str, tuple[str, int]] = {}
    if parent is not None:
        for p, o, s in db.execute(
            "SELECT path, object, size FROM files WHERE commit_seq = ?", (parent,)
        ):
            entries[str(p)] = (str(o), int(s))
    for p, o, s in db.execute(
        "SELECT path, object, size FROM changes WHERE commit_seq = ?", (seq,)
    ):
        if o is None:
            entries.pop(str(p), None)
        else:
            entries[str(p)] = (str(o), int(s))
    return FileTree.from_entries((p, o, s) for p, (o, s) in entries.items())


def commit_stats(db: Connection, commit_id: str) -> tuple[int, int]:
    """``(files, bytes)`` of a commit's tree (an open commit: of its finished parent's tree
    overlaid with its changes)."""
    seq, info = commit_by_id(db, commit_id)
    if info.finished:
        row = db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM files WHERE commit_seq = ?", (seq,)
        ).fetchone()
        return int(row[0]), int(row[1])
    tree = open_tree(db, seq)
    return len(tree), tree.total_size()


def object_contents(db: Connection, digests: Sequence[str]) -> dict[str, list[ChunkPart]]:
    """Each object's chunks in order, a packed chunk with its bytes (None: a chunk file)."""
    contents: dict[str, list[ChunkPart]] = {}
    for digest in dict.fromkeys(digests):
        row = db.execute("SELECT chunks FROM objects WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            raise NotFound(f"object {digest[:12]} is not in the repo store")
        parts: list[ChunkPart] = []
        for chunk in str(row[0]).split():
            data = db.execute("SELECT data FROM chunks WHERE digest = ?", (chunk,)).fetchone()
            if data is None:
                raise NotFound(f"chunk {chunk[:12]} is not in the repo store")
            parts.append((chunk, None if data[0] is None else bytes(data[0])))
        contents[digest] = parts
    return contents
