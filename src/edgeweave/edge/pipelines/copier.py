"""The node's side of the Copier: fetch the commit the cloud sends, moving only missing chunks.

For each Copier Pipeline the node holds, the commit to hold is the Pipeline's
:data:`~edgeweave.models.pipelines.COPIER_COMMIT_ANNOTATION` (desired state, so it survives
restarts and arrives after an outage). :class:`EdgeCopiers` copies it when the node's repos
lack it: ``sign(commit)`` asks the hub for a URL (refused unless a Copier placed on this node
names that commit), the manifest is fetched and checked, and
:func:`edgeweave.pipelines.transfer.pull_commit` fetches only the chunks the node's store
lacks, each verified and recorded as it lands — a retried copy resumes, and a commit whose
content the node already has moves zero chunk bytes. The result is reported as the
pipeline's status on this node (``state: copied``, the commit, chunks and bytes moved), and
the node's pipelines reading the repo are woken (an edge pipeline can use the model at once).
A failed copy (cloud away, URL expired) is retried with capped backoff.

Must not know the link or HTTP beyond the two callables it is given.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from edgeweave.aio.backoff import Backoff
from edgeweave.aio.rounds import run_rounds
from edgeweave.errors import EdgeweaveError, NotFound
from edgeweave.pipelines.commits import CopyReport
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.scheduler import Status
from edgeweave.pipelines.transfer import CommitManifest, manifest_from_json, pull_commit

log = logging.getLogger(__name__)

Sign = Callable[[str], Awaitable[str]]  # commit -> presigned transfer URL
Fetch = Callable[[str, int, str], Awaitable[bytes]]  # url, max bytes, what -> body
Report = Callable[[str, str, Status], Awaitable[None]]  # namespace, name, status
OnCopied = Callable[[str], None]  # repo
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_CHUNK_BYTES = 2 * 1024 * 1024  # above the chunker's maximum (1 MiB)


@dataclass(frozen=True)
class Wanted:
    namespace: str
    commit: str | None  # None: the cloud has nothing to send yet


def under(url: str, suffix: str) -> str:
    """``url`` with ``suffix`` added to its path (the query, its signature, kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


async def fetch_commit(
    repos: Repos, sign: Sign, fetch: Fetch, commit: str
) -> tuple[CommitManifest, CopyReport]:
    """Bring cloud ``commit`` into ``repos`` (on its repo and branch), moving only the chunks
    they lack: a URL from ``sign``, the manifest, then the missing chunks."""
    url = await sign(commit)
    raw = await fetch(under(url, "/manifest"), MAX_MANIFEST_BYTES, "the manifest")
    try:
        manifest = manifest_from_json(json.loads(raw))
    except ValueError as e:
        raise NotFound(f"the cloud sent no manifest for commit {commit}: {e}") from e
    if manifest.info.id != commit:
        raise NotFound(f"the cloud sent the manifest of {manifest.info.id}, not {commit}")

    async def read_chunk(digest: str) -> bytes:
        return await fetch(under(url, f"/chunks/{digest}"), MAX_CHUNK_BYTES, digest)

    return manifest, await pull_commit(read_chunk, manifest, repos)


class EdgeCopiers:
    def __init__(
        self,
        repos: Repos,
        sign: Sign,
        fetch: Fetch,
        report: Report,
        on_copied: OnCopied,
        backoff: Backoff | None = None,
    ) -> None:
        self._repos = repos
        self._sign = sign
        self._fetch = fetch
        self._report = report
        self._on_copied = on_copied
        self._backoff = backoff or Backoff(1.0, 30.0)
        self._wanted: dict[str, Wanted] = {}
        self._done: dict[str, str] = {}  # name -> commit copied and reported
        self._wake = asyncio.Event()

    def update(self, wanted: dict[str, Wanted]) -> None:
        """The Copiers the node holds now (name → what to hold)."""
        self._wanted = dict(wanted)
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled."""
        await run_rounds(self._wake, self._backoff, self._round)

    async def _round(self) -> bool:
        pending = [
            (name, w)
            for name, w in self._wanted.items()
            if w.commit is not None and self._done.get(name) != w.commit
        ]
        ok = True
        for name, want in pending:
            assert want.commit is not None
            try:
                await self._copy(name, want.namespace, want.commit)
            except EdgeweaveError as e:
                ok = False
                message = f"copying commit {want.commit}: {e.message}; retrying"
                status: Status = {"state": "waiting", "message": message}
                await self._report(want.namespace, name, status)
        return ok

    async def _copy(self, name: str, namespace: str, commit: str) -> None:
        manifest, report = await fetch_commit(self._repos, self._sign, self._fetch, commit)
        self._done[name] = commit
        self._on_copied(manifest.info.repo)
        done: Status = {
            "state": "copied",
            "message": "",
            "commit": commit,
            "outputRepo": manifest.info.repo,
            "chunksTotal": report.chunks_total,
            "chunksMoved": report.chunks_moved,
            "bytesMoved": report.bytes_moved,
        }
        log.info("copier %s: commit %s copied (%d bytes moved)", name, commit, report.bytes_moved)
        await self._report(namespace, name, done)
