"""Moving a finished commit between repo stores: only the chunks the destination lacks travel.

A :class:`CommitManifest` is everything a store needs to rebuild a commit besides chunk bytes:
the commit's metadata, its files (path, object digest, size) and its objects (digest, size,
chunk digests). It crosses process boundaries as JSON (:meth:`CommitManifest.as_json`,
:func:`manifest_from_json`, which checks every field: a manifest may come from a node).

:func:`pull_commit` is the whole protocol, with the source behind one function
(``read_chunk(digest) -> bytes``: a local store, or an HTTP download of a content-addressed
object): ask the destination which chunks it holds, fetch and store the others in batches
(each batch recorded at once, so an interrupted transfer resumes without moving them again),
then import the commit. A commit already at the destination is left as it is, so pushing the
same content twice moves zero chunk bytes; its :class:`CopyReport` says so.

Must not know where the stores live (cloud, edge) or talk to the network itself.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgeweave.errors import BadRequest
from edgeweave.pipelines.commits import CommitInfo, CopyReport
from edgeweave.pipelines.repostore import PACK_LIMIT

if TYPE_CHECKING:
    from edgeweave.pipelines.repo import Repos

ReadChunk = Callable[[str], Awaitable[bytes]]
BATCH_BYTES = 4 * 1024 * 1024  # chunks stored per destination transaction
MAX_MANIFEST_FILES = 1_000_000
_HEX = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[0-9a-zA-Z_.-]{1,128}$")

FileRow = tuple[str, str, int]  # path, object digest, size
ObjectEntry = tuple[str, int, tuple[str, ...]]  # digest, size, chunk digests


@dataclass(frozen=True)
class CommitManifest:
    info: CommitInfo
    files: tuple[FileRow, ...]
    objects: tuple[ObjectEntry, ...]

    def chunk_digests(self) -> list[str]:
        return sorted({c for _, _, chunks in self.objects for c in chunks})

    def size_bytes(self) -> int:
        return sum(size for _, _, size in self.files)

    def as_json(self) -> dict[str, Any]:
        i = self.info
        return {
            "commit": {
                "id": i.id,
                "repo": i.repo,
                "branch": i.branch,
                "origin": i.origin,
                "createdAt": i.created_at,
                "finishedAt": i.finished_at,
                "description": i.description,
                "provenance": list(i.provenance),
            },
            "files": [list(f) for f in self.files],
            "objects": [[d, s, list(c)] for d, s, c in self.objects],
        }


def _str(value: Any, where: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
        raise BadRequest(f"manifest {where}: missing or malformed")
    return value


def _size(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"manifest {where}: must be a non-negative integer")
    return value


def manifest_from_json(doc: Any) -> CommitManifest:
    """A manifest as :meth:`CommitManifest.as_json` wrote it; BadRequest naming the field."""
    if not isinstance(doc, dict) or not isinstance(doc.get("commit"), dict):
        raise BadRequest("manifest: commit is missing")
    c = doc["commit"]
    finished = c.get("finishedAt")
    if not isinstance(finished, int | float) or isinstance(finished, bool):
        raise BadRequest("manifest commit.finishedAt: only finished commits move")
    created = c.get("createdAt")
    origin = c.get("origin")
    info = CommitInfo(
        id=_str(c.get("id"), "commit.id", _ID),
        repo=_str(c.get("repo"), "commit.repo", _ID),
        branch=_str(c.get("branch"), "commit.branch", _ID),
        parent=None,  # the parent at the destination is its branch head
        origin="auto" if origin == "auto" else "user",
        created_at=float(created) if isinstance(created, int | float) else float(finished),
        finished_at=float(finished),
        description=str(c.get("description") or "")[:4096],
        provenance=tuple(str(p) for p in (c.get("provenance") or ())[:256]),
    )
    files, objects = doc.get("files"), doc.get("objects")
    if not isinstance(files, list) or not isinstance(objects, list):
        raise BadRequest("manifest: files and objects must be lists")
    if len(files) > MAX_MANIFEST_FILES:
        raise BadRequest(f"manifest: more than {MAX_MANIFEST_FILES} files")
    rows: list[FileRow] = []
    for f in files:
        if not isinstance(f, list) or len(f) != 3:
            raise BadRequest("manifest files[]: [path, digest, size]")
        path = _str(f[0], "files[].path")
        if not path.startswith("/") or "\x00" in path:
            raise BadRequest(f"manifest files[].path: {path!r} is not an absolute path")
        rows.append((path, _str(f[1], "files[].digest", _HEX), _size(f[2], "files[].size")))
    entries: list[ObjectEntry] = []
    for o in objects:
        if not isinstance(o, list) or len(o) != 3 or not isinstance(o[2], list):
            raise BadRequest("manifest objects[]: [digest, size, [chunk digests]]")
        chunks = tuple(_str(x, "objects[].chunks[]", _HEX) for x in o[2])
        entries.append(
            (_str(o[0], "objects[].digest", _HEX), _size(o[1], "objects[].size"), chunks)
        )
    known = {d for d, _, _ in entries}
    if any(d not in known for _, d, _ in rows):
        raise BadRequest("manifest: a file names an object the manifest does not list")
    return CommitManifest(info, tuple(rows), tuple(entries))


async def pull_commit(
    read_chunk: ReadChunk, manifest: CommitManifest, dest: Repos, branch: str | None = None
) -> CopyReport:
    """Make ``dest`` hold ``manifest``'s commit (on ``branch`` when given), fetching only the
    chunks it lacks through ``read_chunk``; see the module docstring."""
    report = CopyReport(manifest.info.id)
    digests = manifest.chunk_digests()
    report.chunks_total = len(digests)
    if manifest.info.id in {c.id for c in await _commits(dest, manifest.info.repo)}:
        report.skipped = digests  # here already: nothing moves
        return report
    held = await dest.held_chunks(digests)
    report.skipped = [d for d in digests if d in held]
    batch: list[tuple[str, bytes]] = []
    pending = 0
    for digest in (d for d in digests if d not in held):
        data = await read_chunk(digest)
        batch.append((digest, data))
        pending += len(data)
        report.chunks_moved += 1
        report.bytes_moved += len(data)
        if len(data) >= PACK_LIMIT or pending >= BATCH_BYTES:  # a large chunk: recorded now
            await dest.receive_chunks(batch)
            batch, pending = [], 0
    if batch:
        await dest.receive_chunks(batch)
    await dest.import_manifest(manifest, branch)
    return report


async def _commits(dest: Repos, repo: str) -> list[CommitInfo]:
    if repo not in await dest.list_repos():
        return []
    return await dest.list_commits(repo)
