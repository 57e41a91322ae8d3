"""Repos: branches, immutable commits, files stored as content-addressed chunks (DESIGN §6).

:class:`Repos` is the async API over one data directory::

    DATA/repos.db       metadata and small chunks (repostore.py, on the SQLite kit)
    DATA/chunks/ab/...  large chunks, one file each (chunkdir.py)

Writing: :meth:`Repos.start_commit` opens a commit on a branch (its parent is the branch head;
one open commit per branch), ``put_*``/``delete_file`` change it, :meth:`Repos.finish_commit`
makes it immutable. Content is cut by content-defined chunking (chunks.py); every chunk is
stored once under its sha256, so identical files, and the unchanged parts of a changed large
file, take no new space. Content up to the chunk minimum is one chunk, packed in the database.

Reading: a commit's :meth:`Repos.tree` (what datums are made from), ``get_file``/``write_file``,
``list_files``, ``glob_files``, and :meth:`Repos.changed_paths` between a commit and an ancestor
(from the recorded changes, not a comparison of trees).

Space: :meth:`Repos.delete_commit` and :meth:`Repos.delete_repo` drop references;
:meth:`Repos.gc` deletes what nothing references and frees the space. GC waits for running
writes and holds new ones back while it runs, so it never deletes a chunk a write is about to
reference. :meth:`Repos.copy_commit` copies a finished commit into another store moving only
the chunks it lacks; each chunk is recorded as it lands, so a copy that was interrupted
resumes where it stopped (unless a GC on the destination ran in between). The same steps —
``manifest``, ``held_chunks``, ``read_chunk``/``receive_chunks``, ``import_manifest`` — are
public so ``transfer.py`` can move a commit between stores that are not in one process.

Chunking, hashing large content and file I/O run in worker threads; the event loop only
awaits. This module must not know about pipelines, jobs or the network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from edgeweave.aio.clock import Clock, SystemClock
from edgeweave.errors import AlreadyExists, Conflict, InvalidObject, NotFound
from edgeweave.models.pipelines import BRANCH_RE, check_pipeline_name
from edgeweave.pipelines.chunkdir import ChunkDir
from edgeweave.pipelines.chunks import ChunkSizes, chunk_blocks
from edgeweave.pipelines.commits import (
    CommitInfo,
    CopyReport,
    FileInfo,
    GCReport,
    Origin,
    RepoInfo,
    check_commit_id,
)
from edgeweave.pipelines.gate import WriteGate
from edgeweave.pipelines.glob import Glob
from edgeweave.pipelines.repostore import PACK_LIMIT, ChunkRow, ObjectRow, RepoDB
from edgeweave.pipelines.transfer import CommitManifest, pull_commit
from edgeweave.pipelines.trees import FileTree, diff_paths, normalize_dir, normalize_path

READ_BLOCK_BYTES = 4 * 1024 * 1024


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_branch(branch: str) -> str:
    if not BRANCH_RE.match(branch):
        raise InvalidObject(f"branch name {branch!r} is invalid: letters, digits, '_', '-', '.'")
    return branch


class Repos:
    """Every repo under ``root``. Open with :func:`open_repos` (or ``open``/``aclose``)."""

    def __init__(
        self,
        root: Path,
        *,
        clock: Clock | None = None,
        chunk_sizes: ChunkSizes | None = None,
        fsync: bool = True,
    ) -> None:
        self.root = Path(root)
        self._db = RepoDB(self.root / "repos.db")
        self._chunks = ChunkDir(self.root / "chunks", fsync=fsync)
        self._clock = clock or SystemClock()
        self._sizes = chunk_sizes or ChunkSizes()
        self._gate = WriteGate()

    async def open(self) -> None:
        await self._db.open()
        await asyncio.to_thread(self._chunks.sweep_tmp)

    async def aclose(self) -> None:
        await self._db.aclose()

    # ---- repos and commits -----------------------------------------------------------------

    async def create_repo(self, name: str, description: str = "") -> None:
        try:
            check_pipeline_name(name, "repo name")
        except ValueError as e:
            raise InvalidObject(str(e), field="name") from None
        await self._db.create_repo(name, description, self._clock.time())

    async def list_repos(self) -> list[str]:
        return [name for name, _, _ in await self._db.list_repos()]

    async def repo_infos(self) -> list[RepoInfo]:
        """Every repo with its description, creation time and branch heads."""
        out = []
        for name, description, created_at in await self._db.list_repos():
            branches = dict(await self._db.branches(name))
            out.append(RepoInfo(name, description, created_at, branches))
        return out

    async def delete_repo(self, name: str) -> None:
        """Forget a repo and its commits; run :meth:`gc` to free the space."""
        await self._db.delete_repo(name)

    async def branches(self, repo: str) -> dict[str, str | None]:
        return dict(await self._db.branches(repo))

    async def start_commit(
        self,
        repo: str,
        branch: str = "master",
        *,
        origin: Origin = "user",
        description: str = "",
        provenance: Sequence[str] = (),
    ) -> CommitInfo:
        return await self._db.start_commit(
            repo,
            check_branch(branch),
            commit_id=uuid.uuid4().hex,
            origin=origin,
            description=description,
            provenance=provenance,
            now=self._clock.time(),
        )

    async def finish_commit(self, commit_id: str) -> CommitInfo:
        return await self._db.finish_commit(check_commit_id(commit_id), self._clock.time())

    async def inspect_commit(self, commit_id: str) -> CommitInfo:
        return await self._db.commit(check_commit_id(commit_id))

    async def latest(self, repo: str, branch: str = "master") -> CommitInfo | None:
        """The newest finished commit of a branch (None when it has none)."""
        return await self._db.head(repo, branch, finished=True)

    async def resolve(self, repo: str, ref: str) -> CommitInfo:
        """``ref`` is a commit id or a branch name (its head, open or not)."""
        head = await self._db.head(repo, ref, finished=False) if len(ref) != 32 else None
        if head is not None:
            return head
        info = await self._db.commit(check_commit_id(ref))
        if info.repo != repo:
            raise NotFound(f"commit {ref} belongs to repo {info.repo!r}, not {repo!r}")
        return info

    async def commit_stats(self, commit_id: str) -> tuple[int, int]:
        """``(files, bytes)`` in a commit."""
        return await self._db.commit_stats(check_commit_id(commit_id))

    async def list_commits(self, repo: str, branch: str | None = None) -> list[CommitInfo]:
        """Newest first."""
        return await self._db.list_commits(repo, branch)

    async def delete_commit(self, commit_id: str) -> None:
        """Delete a commit nothing builds on; run :meth:`gc` to free the space."""
        await self._db.delete_commit(check_commit_id(commit_id))

    # ---- writing files ---------------------------------------------------------------------

    async def put_file(self, commit_id: str, path: str, data: bytes) -> FileInfo:
        path = normalize_path(path)
        async with self._gate.shared():
            if len(data) <= self._sizes.min_bytes:
                obj, chunks = self._store([data])  # small: hashing only, no file I/O
            else:
                obj, chunks = await asyncio.to_thread(self._store, [data])
            await self._db.put_changes(commit_id, [(path, obj[0], obj[1])], [obj], chunks)
        return FileInfo(path, obj[0], obj[1])

    async def put_file_from(self, commit_id: str, path: str, source: Path) -> FileInfo:
        """Put the content of a local file, read and chunked in a thread (any size)."""
        path = normalize_path(path)
        async with self._gate.shared():
            obj, chunks = await asyncio.to_thread(self._store_path, Path(source))
            await self._db.put_changes(commit_id, [(path, obj[0], obj[1])], [obj], chunks)
        return FileInfo(path, obj[0], obj[1])

    async def put_files(self, commit_id: str, items: Iterable[tuple[str, bytes]]) -> int:
        """Put many files in one transaction (chunked in a thread); how many."""
        pairs = [(normalize_path(p), d) for p, d in items]

        def store_all() -> tuple[list[tuple[str, str, int]], list[ObjectRow], list[ChunkRow]]:
            changes, objects, chunks = [], [], []
            for path, data in pairs:
                obj, rows = self._store([data])
                changes.append((path, obj[0], obj[1]))
                objects.append(obj)
                chunks.extend(rows)
            return changes, objects, chunks

        async with self._gate.shared():
            changes, objects, chunks = await asyncio.to_thread(store_all)
            await self._db.put_changes(commit_id, changes, objects, chunks)
        return len(changes)

    async def put_entries(
        self, commit_id: str, puts: Sequence[tuple[str, str, int]], deletes: Sequence[str] = ()
    ) -> None:
        """Put files whose content this store holds already (``(path, object digest, size)``:
        another commit's files, placed anew without reading them) and delete files, in an
        open commit, in one transaction. NotFound when an object is not here."""
        for digest in {d for _, d, _ in puts}:
            await self._db.object_chunks(digest)
        changes = [(normalize_path(p), d, s) for p, d, s in puts]
        gone = [(normalize_path(p), None, 0) for p in deletes]
        async with self._gate.shared():
            await self._db.put_changes(check_commit_id(commit_id), [*gone, *changes])

    async def delete_file(self, commit_id: str, path: str) -> int:
        """Delete a file or a directory from an open commit; how many files went."""
        return await self._db.delete_path(check_commit_id(commit_id), normalize_dir(path))

    def _store_path(self, source: Path) -> tuple[ObjectRow, list[ChunkRow]]:
        with source.open("rb") as f:
            return self._store(iter(lambda: f.read(READ_BLOCK_BYTES), b""))

    def _store(self, blocks: Iterable[bytes]) -> tuple[ObjectRow, list[ChunkRow]]:
        """Chunk, hash and (for large chunks) write content; its object and chunk rows."""
        whole = hashlib.sha256()
        size = 0
        rows: list[ChunkRow] = []

        def counted() -> Iterator[bytes]:
            nonlocal size
            for block in blocks:
                whole.update(block)
                size += len(block)
                yield block

        for chunk in chunk_blocks(counted(), self._sizes):
            digest = hashlib.sha256(chunk).hexdigest()
            if len(chunk) < PACK_LIMIT:
                rows.append((digest, len(chunk), chunk))
            else:
                self._chunks.write(digest, chunk)
                rows.append((digest, len(chunk), None))
        return (whole.hexdigest(), size, " ".join(r[0] for r in rows)), rows

    # ---- reading files ---------------------------------------------------------------------

    async def tree(self, commit_id: str) -> FileTree:
        return await self._db.tree(check_commit_id(commit_id))

    async def get_file(self, commit_id: str, path: str) -> bytes:
        """A file's content in memory (for large files prefer :meth:`write_file`)."""
        _, _, chunks = await self._db.file_object(check_commit_id(commit_id), normalize_path(path))
        return b"".join([await self._chunk(d) for d in chunks])

    async def file_info(self, commit_id: str, path: str) -> FileInfo:
        """A file's digest and size (NotFound when the commit has no such file)."""
        path = normalize_path(path)
        digest, size, _ = await self._db.file_object(check_commit_id(commit_id), path)
        return FileInfo(path, digest, size)

    async def iter_file(self, commit_id: str, path: str) -> AsyncIterator[bytes]:
        """A file's content chunk by chunk (each at most the chunk maximum)."""
        _, _, chunks = await self._db.file_object(check_commit_id(commit_id), normalize_path(path))
        for digest in chunks:
            yield await self._chunk(digest)

    async def file_held(self, commit_id: str, path: str) -> bool:
        """Whether every chunk of a file is in this store (a commit recorded from a node's
        report has its file list here, its bytes on the node)."""
        _, _, chunks = await self._db.file_object(check_commit_id(commit_id), normalize_path(path))
        return len(await self.held_chunks(chunks)) == len(set(chunks))

    async def write_object(self, digest: str, dest: Path) -> None:
        """Write the content ``digest`` to ``dest`` (a new file)."""
        await self.write_objects([(digest, dest)])

    async def write_objects(self, items: Sequence[tuple[str, Path]]) -> None:
        """Write each content (by digest) to its new file: one database read for them all,
        then one worker thread writing them chunk by chunk."""
        contents = await self._db.object_contents([digest for digest, _ in items])

        def write() -> None:
            for digest, dest in items:
                with Path(dest).open("xb") as handle:
                    for chunk, packed in contents[digest]:
                        handle.write(self._chunks.read(chunk) if packed is None else packed)

        await asyncio.to_thread(write)

    async def write_file(self, commit_id: str, path: str, dest: Path) -> None:
        digest, _, _ = await self._db.file_object(check_commit_id(commit_id), normalize_path(path))
        await self.write_object(digest, dest)

    async def _chunk(self, digest: str) -> bytes:
        packed = await self._db.packed_chunk(digest)
        if packed is not None:
            return packed
        return await asyncio.to_thread(self._chunks.read, digest)

    async def list_files(self, commit_id: str, directory: str = "/") -> list[FileInfo]:
        """The entries directly in ``directory``: files, and directories with their sizes."""
        directory = normalize_dir(directory)
        tree = await self.tree(commit_id)
        lo, hi = tree.dir_range(directory)
        if lo == hi and directory != "/":
            i = tree.index(directory)
            if i is None:
                raise NotFound(f"no file or directory {directory} in commit {commit_id}")
            return [FileInfo(directory, tree.digests[i], tree.sizes[i])]
        prefix = "/" if directory == "/" else directory + "/"
        out: dict[str, FileInfo] = {}
        for i in range(lo, hi):
            rest = tree.paths[i][len(prefix) :]
            name, sep, _ = rest.partition("/")
            entry = prefix + name
            if not sep:
                out[entry] = FileInfo(entry, tree.digests[i], tree.sizes[i])
            else:
                before = out.get(entry)
                total = (before.size if before else 0) + tree.sizes[i]
                out[entry] = FileInfo(entry, "", total, is_dir=True)
        return list(out.values())

    async def glob_files(self, commit_id: str, pattern: str) -> list[FileInfo]:
        tree = await self.tree(commit_id)
        out: list[FileInfo] = []
        for m in Glob(pattern).match(tree.paths):
            single = m.end - m.start == 1 and tree.paths[m.start] == m.path
            if single:
                out.append(FileInfo(m.path, tree.digests[m.start], tree.sizes[m.start]))
            else:
                out.append(FileInfo(m.path, "", sum(tree.sizes[m.start : m.end]), is_dir=True))
        return out

    async def changed_paths(self, old_commit: str, new_commit: str) -> list[str]:
        """Paths that may differ from ``old_commit`` to ``new_commit``: the recorded changes
        when ``old_commit`` is an ancestor, else a comparison of the two trees."""
        found = await self._db.changed_paths(
            check_commit_id(old_commit), check_commit_id(new_commit)
        )
        if found is not None:
            return found
        return diff_paths(await self.tree(old_commit), await self.tree(new_commit))

    # ---- space -----------------------------------------------------------------------------

    async def gc(self) -> GCReport:
        """Delete every object and chunk no commit references; report what was freed."""
        async with self._gate.exclusive():
            unlink, packed_count, packed_bytes = await self._db.collect_garbage()
            freed = await asyncio.to_thread(lambda: sum(self._chunks.delete(d) for d, _ in unlink))
        return GCReport(chunks_deleted=len(unlink) + packed_count, bytes_freed=freed + packed_bytes)

    async def chunk_digests(self, commit_id: str) -> set[str]:
        objects = await self._db.commit_objects(check_commit_id(commit_id))
        return {c for _, chunks in objects.values() for c in chunks}

    async def missing_chunks(self, other: Repos, commit_id: str) -> list[str]:
        """Chunks of ``commit_id`` (here) that ``other`` does not hold."""
        wanted = sorted(await self.chunk_digests(commit_id))
        held = await other.held_chunks(wanted)
        return [d for d in wanted if d not in held]

    async def copy_commit(self, other: Repos, commit_id: str) -> CopyReport:
        """Copy a finished commit into ``other`` (same repo name and branch, created there if
        needed), moving only the chunks ``other`` lacks; resumable (see the docstring)."""
        return await pull_commit(self.read_chunk, await self.manifest(commit_id), other)

    # ---- commit transfer (transfer.py moves commits with these) ----------------------------

    async def manifest(self, commit_id: str) -> CommitManifest:
        """What another store needs to rebuild a finished commit: its files and objects."""
        info = await self.inspect_commit(commit_id)
        objects = await self._db.commit_objects(commit_id)
        tree = await self.tree(commit_id)
        return CommitManifest(
            info,
            tuple(zip(tree.paths, tree.digests, tree.sizes, strict=True)),
            tuple((d, size, tuple(chunks)) for d, (size, chunks) in sorted(objects.items())),
        )

    async def held_chunks(self, digests: Sequence[str]) -> set[str]:
        return set(await self._db.chunk_rows(digests))

    async def read_chunk(self, digest: str) -> bytes:
        """One chunk's bytes (verified against its sha256 when read from a file)."""
        return await self._chunk(digest)

    async def receive_chunks(self, chunks: Sequence[tuple[str, bytes]]) -> int:
        """Store chunks that arrived from elsewhere, each checked against its sha256 and
        recorded at once (a transfer resumes after an interruption); the bytes stored."""
        rows: list[ChunkRow] = []
        async with self._gate.shared():
            for digest, data in chunks:
                actual = await asyncio.to_thread(_sha256_hex, data)
                if actual != digest:
                    raise InvalidObject(f"chunk {digest[:12]} arrived as {actual[:12]}: corrupt")
                if len(data) < PACK_LIMIT:
                    rows.append((digest, len(data), data))
                else:
                    await asyncio.to_thread(self._chunks.write, digest, data)
                    rows.append((digest, len(data), None))
            await self._db.put_chunks(rows)
        return sum(len(d) for _, d in chunks)

    async def import_manifest(
        self,
        manifest: CommitManifest,
        branch: str | None = None,
        repo: str | None = None,
        *,
        metadata_only: bool = False,
    ) -> bool:
        """Record a commit whose chunks are all here (with ``metadata_only``, whose chunks
        stay elsewhere: its files can be listed, not read), on its branch (or ``branch``) of
        its repo (or ``repo``; created when missing); False when the commit is here already
        (idempotent)."""
        info = manifest.info
        if branch is not None:
            info = dataclasses.replace(info, branch=check_branch(branch))
        if repo is not None:
            info = dataclasses.replace(info, repo=repo)
        if info.repo not in await self.list_repos():
            with suppress(AlreadyExists):
                await self.create_repo(info.repo)
        async with self._gate.shared():
            wanted = [] if metadata_only else manifest.chunk_digests()
            missing = set(wanted) - await self.held_chunks(wanted)
            if missing:
                raise Conflict(f"{len(missing)} chunk(s) of commit {info.id} are not here yet")
            rows = [(d, size, " ".join(chunks)) for d, size, chunks in manifest.objects]
            try:
                await self._db.import_commit(info, list(manifest.files), rows)
            except AlreadyExists:
                return False
        return True


@asynccontextmanager
async def open_repos(
    root: Path,
    *,
    clock: Clock | None = None,
    chunk_sizes: ChunkSizes | None = None,
    fsync: bool = True,
) -> AsyncIterator[Repos]:
    """An open :class:`Repos` that is closed when the block ends."""
    repos = Repos(root, clock=clock, chunk_sizes=chunk_sizes, fsync=fsync)
    await repos.open()
    try:
        yield repos
    finally:
        await repos.aclose()
