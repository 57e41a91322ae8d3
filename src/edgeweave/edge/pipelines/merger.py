"""The node's side of the Merger: deliver the newest commit of its input to the cloud.

For each Merger Pipeline the node holds (``pattern.merger``; its input is one ``pfs`` branch
of a repo on this node), :class:`EdgeMergers` delivers the branch's newest finished commit —
after a file put, an edge job's output, a copied commit, and once after start. A delivery
asks the hub for a URL (``merge_url``; only for a Merger placed on this node), posts the
commit's manifest to learn which chunks the cloud lacks, puts those (bulk bytes over HTTPS,
never through the link), then posts the commit, which the cloud imports on the branch named
after this node (:mod:`edgeweave.cloud.pipelines.merger`). The cloud is idempotent, so a
delivery retried after a failure or a restart moves only what is still missing. The result
(``state: merged``, the commit, bytes moved, whether the merge is complete) is reported as the
pipeline's status on this node. Failures are retried with capped backoff.

Must not know the link or HTTP beyond the two callables it is given.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from edgeweave.aio.backoff import Backoff
from edgeweave.aio.rounds import run_rounds
from edgeweave.edge.pipelines.copier import Report, under
from edgeweave.errors import BadRequest, EdgeweaveError, NotFound
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.scheduler import Status

log = logging.getLogger(__name__)

SignMerge = Callable[[str, str], Awaitable[str]]  # namespace, name -> presigned merge URL
Send = Callable[[str, str, bytes | None, str], Awaitable[bytes]]  # method, url, body, what


@dataclass(frozen=True)
class MergeWanted:
    namespace: str
    repo: str
    branch: str


class EdgeMergers:
    def __init__(
        self,
        repos: Repos,
        sign: SignMerge,
        send: Send,
        report: Report,
        backoff: Backoff | None = None,
    ) -> None:
        self._repos = repos
        self._sign = sign
        self._send = send
        self._report = report
        self._backoff = backoff or Backoff(1.0, 30.0)
        self._wanted: dict[str, MergeWanted] = {}
        self._done: dict[str, str] = {}  # name -> commit delivered
        self._wake = asyncio.Event()

    def update(self, wanted: dict[str, MergeWanted]) -> None:
        self._wanted = dict(wanted)
        self._wake.set()

    def commit_finished(self, repo: str) -> None:
        if any(w.repo == repo for w in self._wanted.values()):
            self._wake.set()

    async def run(self) -> None:
        """Until cancelled."""
        await run_rounds(self._wake, self._backoff, self._round)

    async def _round(self) -> bool:
        ok = True
        for name, want in list(self._wanted.items()):
            try:
                await self._deliver_newest(name, want)
            except EdgeweaveError as e:
                ok = False
                status: Status = {"state": "waiting", "message": f"{e.message}; retrying"}
                await self._report(want.namespace, name, status)
        return ok

    async def _deliver_newest(self, name: str, want: MergeWanted) -> None:
        try:
            head = await self._repos.latest(want.repo, want.branch)
        except NotFound:
            return  # the repo appears with its first put
        if head is None or self._done.get(name) == head.id:
            return
        url = await self._sign(want.namespace, name)
        answer, chunks, moved = await push_commit(self._repos, self._send, url, head.id)
        self._done[name] = head.id
        done: Status = {
            "state": "merged",
            "message": "",
            "commit": head.id,
            "chunksMoved": chunks,
            "bytesMoved": moved,
            "imported": bool(answer.get("imported")),
            "complete": bool(answer.get("complete")),
        }
        log.info("merger %s: commit %s delivered (%d bytes moved)", name, head.id, moved)
        await self._report(want.namespace, name, done)


async def push_commit(
    repos: Repos, send: Send, url: str, commit: str
) -> tuple[dict[str, Any], int, int]:
    """Push local ``commit`` to the cloud at ``url`` (a merge or output URL): the manifest
    offered, the chunks the cloud lacks, then the commit. The cloud's answer, the chunks and
    the bytes moved."""
    manifest = await repos.manifest(commit)
    body = json.dumps(manifest.as_json()).encode()
    missing = _json(await send("POST", under(url, "/missing"), body, f"offer of {commit}"))
    wanted = [str(d) for d in missing.get("missing") or []]
    moved = 0
    for digest in wanted:
        data = await repos.read_chunk(digest)
        await send("PUT", under(url, f"/chunks/{digest}"), data, f"chunk {digest}")
        moved += len(data)
    answer = _json(await send("POST", under(url, "/commit"), body, f"commit {commit}"))
    return answer, len(wanted), moved


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise BadRequest(f"the cloud's answer is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise BadRequest("the cloud's answer is not a JSON object")
    return doc
