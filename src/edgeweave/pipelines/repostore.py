"""The repo metadata in SQLite: repos, branches, commits, file trees, objects, small chunks.

Tables (one file, on the SQLite kit's worker thread):

- ``repos``, ``branches`` (``head`` is the latest commit, open or finished), ``commits``
  (``parent`` links, ``origin`` user/auto, times, description, provenance as JSON).
- ``changes``: what each commit did to its parent (path → object, or NULL for a delete). They
  stay after the commit is finished: the difference between a commit and an ancestor is the
  union of the changes in between, so an incremental job reads what changed without comparing
  whole trees.
- ``files``: the full tree of each *finished* commit (path → object, size), written by
  :meth:`RepoDB.finish_commit` as the parent's tree overlaid with the changes. An open commit's
  tree is computed the same way on read.
- ``objects``: a file content (sha256 of the whole) → its size and its chunk digests in order.
- ``chunks``: every chunk the store holds; ``data`` holds the bytes of small chunks (under
  ``PACK_LIMIT``: small files are packed into the database instead of one file each) and is
  NULL for large chunks, which live in the chunk directory.

Garbage collection (:meth:`RepoDB.collect_garbage`) drops objects no tree or change uses and
chunks no object uses, in one transaction, and returns the large chunks to unlink; the
database runs with ``auto_vacuum = INCREMENTAL`` and gives freed pages back to the file system.

Every method is async and runs its SQL on the worker; the longer worker-side functions live
in ``reposql.py``. Must not: touch chunk files (the caller does, in a thread), chunk or hash
content, or import :mod:`sqlite3` (the kit does).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from edgeweave.aio.sqlite import SQLiteThread
from edgeweave.errors import AlreadyExists, Conflict, NotFound
from edgeweave.pipelines.commits import CommitInfo, Origin
from edgeweave.pipelines.reposql import (
    COMMIT_SELECT,
    SCHEMA,
    ChunkPart,
    check_shape,
    collect_garbage,
    commit_by_id,
    commit_info,
    commit_stats,
    lookup,
    object_contents,
    open_tree,
    parent_seq,
    require_open,
    require_repo,
    view_paths,
)
from edgeweave.pipelines.trees import FileTree

PACK_LIMIT = 64 * 1024
MAX_DIFF_CHAIN = 1000  # beyond this many commits apart, diffs compare whole trees

ChangeRow = tuple[str, str | None, int]  # path, object digest (None: deleted), size
ObjectRow = tuple[str, int, str]  # digest, size, chunk digests joined by spaces
ChunkRow = tuple[str, int, bytes | None]  # digest, size, data (None: in the chunk directory)


class RepoDB:
    """The metadata of every repo under one data directory."""

    def __init__(self, path: Path) -> None:
        self._sql = SQLiteThread(
            path,
            name="repo store",
            thread_name="edgeweave-repos",
            pragmas={
                "auto_vacuum": "INCREMENTAL",  # before any table exists: freed pages go back
                "journal_mode": "WAL",
                "synchronous": "FULL",
                "foreign_keys": 0,
            },
            schema=SCHEMA,
        )

    async def open(self) -> None:
        await self._sql.open()

    async def aclose(self) -> None:
        await self._sql.aclose()

    # ---- repos and branches --------------------------------------------------------------

    async def create_repo(self, name: str, description: str, now: float) -> None:
        def run() -> None:
            with self._sql.transaction() as db:
                if db.execute("SELECT 1 FROM repos WHERE name = ?", (name,)).fetchone():
                    raise AlreadyExists(f"repo {name!r} already exists")
                db.execute("INSERT INTO repos VALUES (?, ?, ?)", (name, description, now))

        await self._sql.run(run)

    async def list_repos(self) -> list[tuple[str, str, float]]:
        def run() -> list[tuple[str, str, float]]:
            rows = self._sql.connection.execute("SELECT * FROM repos ORDER BY name")
            return [(str(n), str(d), float(t)) for n, d, t in rows]

        return await self._sql.run(run)

    async def delete_repo(self, name: str) -> None:
        def run() -> None:
            with self._sql.transaction() as db:
                require_repo(db, name)
                for table in ("files", "changes"):
                    db.execute(
                        f"DELETE FROM {table} WHERE commit_seq IN "  # noqa: S608
                        "(SELECT seq FROM commits WHERE repo = ?)",
                        (name,),
                    )
                db.execute("DELETE FROM commits WHERE repo = ?", (name,))
                db.execute("DELETE FROM branches WHERE repo = ?", (name,))
                db.execute("DELETE FROM repos WHERE name = ?", (name,))

        await self._sql.run(run)

    async def branches(self, repo: str) -> list[tuple[str, str | None]]:
        def run() -> list[tuple[str, str | None]]:
            db = self._sql.connection
            require_repo(db, repo)
            rows = db.execute(
                "SELECT b.name, c.id FROM branches b LEFT JOIN commits c ON c.seq = b.head "
                "WHERE b.repo = ? ORDER BY b.name",
                (repo,),
            )
            return [(str(n), None if i is None else str(i)) for n, i in rows]

        return await self._sql.run(run)

    # ---- commits ---------------------------------------------------------------------------

    async def start_commit(
        self,
        repo: str,
        branch: str,
        *,
        commit_id: str,
        origin: Origin,
        description: str,
        provenance: Sequence[str],
        now: float,
    ) -> CommitInfo:
        def run() -> CommitInfo:
            with self._sql.transaction() as db:
                require_repo(db, repo)
                row = db.execute(
                    "SELECT head FROM branches WHERE repo = ? AND name = ?", (repo, branch)
                ).fetchone()
                head = row[0] if row else None
                if head is not None:
                    open_id = db.execute(
                        "SELECT id FROM commits WHERE seq = ? AND finished_at IS NULL", (head,)
                    ).fetchone()
                    if open_id:
                        raise Conflict(
                            f"branch {repo}@{branch} has an open commit {open_id[0]}; "
                            "finish it before starting another"
                        )
                cur = db.execute(
                    "INSERT INTO commits (id, repo, branch, parent, origin, created_at, "
                    "description, provenance) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        commit_id,
                        repo,
                        branch,
                        head,
                        origin,
                        now,
                        description,
                        json.dumps(list(provenance)),
                    ),
                )
                db.execute(
                    "INSERT INTO branches VALUES (?, ?, ?) ON CONFLICT (repo, name) "
                    "DO UPDATE SET head = excluded.head",
                    (repo, branch, cur.lastrowid),
                )
                return commit_by_id(db, commit_id)[1]

        return await self._sql.run(run)

    async def finish_commit(self, commit_id: str, now: float) -> CommitInfo:
        def run() -> CommitInfo:
            with self._sql.transaction() as db:
                seq, info = commit_by_id(db, commit_id)
                if info.finished:
                    raise Conflict(f"commit {commit_id} is already finished")
                parent = db.execute("SELECT parent FROM commits WHERE seq = ?", (seq,)).fetchone()
                if parent[0] is not None:
                    db.execute(
                        "INSERT INTO files SELECT ?, f.path, f.object, f.size FROM files f "
                        "WHERE f.commit_seq = ? AND NOT EXISTS (SELECT 1 FROM changes c "
                        "WHERE c.commit_seq = ? AND c.path = f.path)",
                        (seq, parent[0], seq),
                    )
                db.execute(
                    "INSERT INTO files SELECT commit_seq, path, object, size FROM changes "
                    "WHERE commit_seq = ? AND object IS NOT NULL",
                    (seq,),
                )
                db.execute("UPDATE commits SET finished_at = ? WHERE seq = ?", (now, seq))
                return commit_by_id(db, commit_id)[1]

        return await self._sql.run(run)

    async def commit(self, commit_id: str) -> CommitInfo:
        return await self._sql.run(lambda: commit_by_id(self._sql.connection, commit_id)[1])

    async def commit_stats(self, commit_id: str) -> tuple[int, int]:
        return await self._sql.run(lambda: commit_stats(self._sql.connection, commit_id))

    async def head(self, repo: str, branch: str, *, finished: bool) -> CommitInfo | None:
        """The branch head, or with ``finished`` its latest finished commit (None: none)."""

        def run() -> CommitInfo | None:
            db = self._sql.connection
            require_repo(db, repo)
            row = db.execute(
                "SELECT head FROM branches WHERE repo = ? AND name = ?", (repo, branch)
            ).fetchone()
            seq = row[0] if row else None
            while seq is not None:
                found = db.execute(f"{COMMIT_SELECT} WHERE c.seq = ?", (seq,)).fetchone()
                info = commit_info(found)
                if info.finished or not finished:
                    return info
                seq = db.execute("SELECT parent FROM commits WHERE seq = ?", (seq,)).fetchone()[0]
            return None

        return await self._sql.run(run)

    async def list_commits(self, repo: str, branch: str | None) -> list[CommitInfo]:
        def run() -> list[CommitInfo]:
            db = self._sql.connection
            require_repo(db, repo)
            where, args = "c.repo = ?", [repo]
            if branch is not None:
                where, args = where + " AND c.branch = ?", [repo, branch]
            rows = db.execute(f"{COMMIT_SELECT} WHERE {where} ORDER BY c.seq DESC", args)
            return [commit_info(r) for r in rows]

        return await self._sql.run(run)

    async def delete_commit(self, commit_id: str) -> None:
        """Delete a commit no other commit builds on; its branch head moves to its parent."""

        def run() -> None:
            with self._sql.transaction() as db:
                seq, info = commit_by_id(db, commit_id)
                child = db.execute("SELECT id FROM commits WHERE parent = ?", (seq,)).fetchone()
                if child:
                    raise Conflict(f"commit {commit_id} has a child commit {child[0]}")
                parent = db.execute("SELECT parent FROM commits WHERE seq = ?", (seq,)).fetchone()
                db.execute(
                    "UPDATE branches SET head = ? WHERE repo = ? AND head = ?",
                    (parent[0], info.repo, seq),
                )
                db.execute("DELETE FROM files WHERE commit_seq = ?", (seq,))
                db.execute("DELETE FROM changes WHERE commit_seq = ?", (seq,))
                db.execute("DELETE FROM commits WHERE seq = ?", (seq,))

        await self._sql.run(run)

    # ---- file content ----------------------------------------------------------------------

    async def put_changes(
        self,
        commit_id: str,
        changes: Sequence[ChangeRow],
        objects: Sequence[ObjectRow] = (),
        chunks: Sequence[ChunkRow] = (),
    ) -> None:
        """Record puts (and deletes, object None) in an open commit, with the objects and
        chunks they need, in one transaction. A path may not be a file and a directory."""

        def run() -> None:
            with self._sql.transaction() as db:
                seq, info = commit_by_id(db, commit_id)
                require_open(info)
                db.executemany("INSERT OR IGNORE INTO chunks VALUES (?, ?, ?)", chunks)
                db.executemany("INSERT OR IGNORE INTO objects VALUES (?, ?, ?)", objects)
                parent = parent_seq(db, seq)
                for path, obj, _ in changes:
                    if obj is not None:
                        check_shape(db, seq, parent, path)
                db.executemany(
                    "INSERT OR REPLACE INTO changes VALUES (?, ?, ?, ?)",
                    [(seq, path, obj, size) for path, obj, size in changes],
                )

        await self._sql.run(run)

    async def delete_path(self, commit_id: str, path: str) -> int:
        """Delete a file, or every file under a directory, in an open commit; how many."""

        def run() -> int:
            with self._sql.transaction() as db:
                seq, info = commit_by_id(db, commit_id)
                require_open(info)
                parent = parent_seq(db, seq)
                doomed = [p for p in view_paths(db, seq, parent, path) if p]
                if not doomed:
                    raise NotFound(f"no file or directory {path} in commit {commit_id}")
                db.executemany(
                    "INSERT OR REPLACE INTO changes VALUES (?, ?, NULL, 0)",
                    [(seq, p) for p in doomed],
                )
                return len(doomed)

        return await self._sql.run(run)

    async def tree(self, commit_id: str) -> FileTree:
        def run() -> FileTree:
            db = self._sql.connection
            seq, info = commit_by_id(db, commit_id)
            if info.finished:
                return FileTree.from_sorted(
                    db.execute(
                        "SELECT path, object, size FROM files WHERE commit_seq = ? ORDER BY path",
                        (seq,),
                    )
                )
            return open_tree(db, seq)

        return await self._sql.run(run)

    async def file_object(self, commit_id: str, path: str) -> tuple[str, int, list[str]]:
        """``(file digest, size, chunk digests)`` of ``path`` in a commit."""

        def run() -> tuple[str, int, list[str]]:
            db = self._sql.connection
            seq, info = commit_by_id(db, commit_id)
            found = lookup(db, seq, parent_seq(db, seq), path, finished=info.finished)
            if found is None:
                raise NotFound(f"no file {path} in commit {commit_id}")
            obj = db.execute("SELECT size, chunks FROM objects WHERE digest = ?", (found,))
            size, chunks = obj.fetchone()
            return found, int(size), str(chunks).split()

        return await self._sql.run(run)

    async def packed_chunk(self, digest: str) -> bytes | None:
        """The bytes of a packed chunk; None when the chunk lives in the chunk directory."""

        def run() -> bytes | None:
            row = self._sql.connection.execute(
                "SELECT data FROM chunks WHERE digest = ?", (digest,)
            ).fetchone()
            if row is None:
                raise NotFound(f"chunk {digest[:12]} is not in the repo store")
            return None if row[0] is None else bytes(row[0])

        return await self._sql.run(run)

    async def chunk_rows(self, digests: Iterable[str]) -> dict[str, tuple[int, bool]]:
        """Of ``digests``, those stored: digest → (size, packed)."""
        wanted = list(digests)

        def run() -> dict[str, tuple[int, bool]]:
            db = self._sql.connection
            out: dict[str, tuple[int, bool]] = {}
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                marks = ",".join("?" * len(part))
                rows = db.execute(
                    "SELECT digest, size, data IS NOT NULL FROM chunks "  # noqa: S608
                    f"WHERE digest IN ({marks})",
                    part,
                )
                out.update((str(d), (int(s), bool(p))) for d, s, p in rows)
            return out

        return await self._sql.run(run)

    async def commit_objects(self, commit_id: str) -> dict[str, tuple[int, list[str]]]:
        """Every object a finished commit's files use: digest → (size, chunk digests)."""

        def run() -> dict[str, tuple[int, list[str]]]:
            db = self._sql.connection
            seq, info = commit_by_id(db, commit_id)
            if not info.finished:
                raise Conflict(f"commit {commit_id} is open; finish it first")
            rows = db.execute(
                "SELECT o.digest, o.size, o.chunks FROM objects o WHERE o.digest IN "
                "(SELECT object FROM files WHERE commit_seq = ?)",
                (seq,),
            )
            return {str(d): (int(s), str(c).split()) for d, s, c in rows}

        return await self._sql.run(run)

    async def changed_paths(self, old_id: str, new_id: str) -> list[str] | None:
        """Paths changed from ``old_id`` to its descendant ``new_id`` (a superset: a put of
        identical content counts); None when ``old_id`` is not a near ancestor."""

        def run() -> list[str] | None:
            db = self._sql.connection
            old_seq, _ = commit_by_id(db, old_id)
            seq: int | None = commit_by_id(db, new_id)[0]
            paths: set[str] = set()
            for _ in range(MAX_DIFF_CHAIN):
                if seq == old_seq:
                    return sorted(paths)
                if seq is None:
                    return None
                rows = db.execute("SELECT path FROM changes WHERE commit_seq = ?", (seq,))
                paths.update(str(p) for (p,) in rows)
                seq = parent_seq(db, seq)
            return None

        return await self._sql.run(run)

    async def import_commit(
        self, info: CommitInfo, files: Sequence[tuple[str, str, int]], objects: Sequence[ObjectRow]
    ) -> None:
        """Record a finished commit copied from another store, as a child of the branch
        head here (its files are its whole tree; ``changes`` hold the tree too)."""

        def run() -> None:
            with self._sql.transaction() as db:
                require_repo(db, info.repo)
                if db.execute("SELECT 1 FROM commits WHERE id = ?", (info.id,)).fetchone():
                    raise AlreadyExists(f"commit {info.id} is already in this store")
                head = db.execute(
                    "SELECT head FROM branches WHERE repo = ? AND name = ?",
                    (info.repo, info.branch),
                ).fetchone()
                db.executemany("INSERT OR IGNORE INTO objects VALUES (?, ?, ?)", objects)
                cur = db.execute(
                    "INSERT INTO commits (id, repo, branch, parent, origin, created_at, "
                    "finished_at, description, provenance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        info.id,
                        info.repo,
                        info.branch,
                        head[0] if head else None,
                        info.origin,
                        info.created_at,
                        info.finished_at,
                        info.description,
                        json.dumps(list(info.provenance)),
                    ),
                )
                seq = cur.lastrowid
                rows = [(seq, p, o, s) for p, o, s in files]
                db.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", rows)
                db.executemany("INSERT INTO changes VALUES (?, ?, ?, ?)", rows)
                db.execute(
                    "INSERT INTO branches VALUES (?, ?, ?) ON CONFLICT (repo, name) "
                    "DO UPDATE SET head = excluded.head",
                    (info.repo, info.branch, seq),
                )

        await self._sql.run(run)

    async def object_chunks(self, digest: str) -> list[str]:
        def run() -> list[str]:
            row = self._sql.connection.execute(
                "SELECT chunks FROM objects WHERE digest = ?", (digest,)
            ).fetchone()
            if row is None:
                raise NotFound(f"object {digest[:12]} is not in the repo store")
            return str(row[0]).split()

        return await self._sql.run(run)

    async def object_contents(self, digests: Sequence[str]) -> dict[str, list[ChunkPart]]:
        return await self._sql.run(lambda: object_contents(self._sql.connection, digests))

    async def put_chunks(self, chunks: Sequence[ChunkRow]) -> None:
        """Record chunks (a copy in progress: each batch committed, so a copy resumes)."""

        def run() -> None:
            with self._sql.transaction() as db:
                db.executemany("INSERT OR IGNORE INTO chunks VALUES (?, ?, ?)", chunks)

        await self._sql.run(run)

    # ---- garbage collection ----------------------------------------------------------------

    async def collect_garbage(self) -> tuple[list[tuple[str, int]], int, int]:
        """Drop unused objects and chunks. Returns the large chunks to unlink (digest, size),
        the number of packed chunks dropped and their bytes."""

        def run() -> tuple[list[tuple[str, int]], int, int]:
            with self._sql.transaction() as db:
                found: tuple[list[tuple[str, int]], int, int] = collect_garbage(db)
            # executescript steps the pragma to the end (execute stops after one freed page)
            self._sql.connection.executescript("PRAGMA incremental_vacuum;")
            self._sql.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return found

        return await self._sql.run(run)
