"""The cloud's side of the Copier: which commit each Copier sends to its nodes.

A Copier is a Pipeline with ``pattern: {copier: {}}``, placed on edge nodes, whose input is
one ``pfs`` branch of a cloud repo (its ``transform`` is not run). Whenever that branch gets a
new finished commit, :class:`CopierPublisher` writes its id into the Pipeline's annotation
:data:`~edgeweave.models.pipelines.COPIER_COMMIT_ANNOTATION`. The change reaches every
selected node as desired state (persisted, then acked; resent after a reconnect), the node
fetches the commit — only the chunks it lacks — with a URL the hub signs only for that
commit (:mod:`edgeweave.cloud.api.transfer`), and reports it in ``status.nodes.NODE``. So
acks, retries and dedup are per destination, and a node that was away catches up.

Must not run jobs, or send anything to nodes itself (the hub's desired state does).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from edgeweave.cloud.store.base import Store
from edgeweave.errors import Conflict, EdgeweaveError, NotFound
from edgeweave.models.pipelines import COPIER_COMMIT_ANNOTATION
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.spec import PipelineDoc

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 8


@dataclass(frozen=True)
class _Copier:
    namespace: str
    repo: str
    branch: str


def copier_source(doc: PipelineDoc) -> tuple[str, str] | None:
    """A Copier's (repo, branch); None when ``doc`` is no Copier. InvalidObject-free: a
    Copier whose input is not one pfs branch gets None too (the feed reports it)."""
    spec = doc.pipeline.spec
    if spec.pattern is None or spec.pattern.copier is None or spec.input.pfs is None:
        return None
    return spec.input.pfs.repo, spec.input.pfs.branch or "master"


class CopierPublisher:
    def __init__(self, store: Store, repos: Repos) -> None:
        self._store = store
        self._repos = repos
        self._copiers: dict[str, _Copier] = {}
        self._wake = asyncio.Event()

    def upsert(self, namespace: str, name: str, doc: PipelineDoc | None) -> None:
        source = copier_source(doc) if doc is not None else None
        if source is None:
            self._copiers.pop(name, None)
            return
        self._copiers[name] = _Copier(namespace, *source)
        self._wake.set()

    def remove(self, name: str) -> None:
        self._copiers.pop(name, None)

    def commit_finished(self, repo: str) -> None:
        if any(c.repo == repo for c in self._copiers.values()):
            self._wake.set()

    async def run(self) -> None:
        """Until cancelled: on each wake, bring every Copier's annotation up to date."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            for name, copier in list(self._copiers.items()):
                try:
                    await self._publish(name, copier)
                except EdgeweaveError as e:
                    log.warning("copier %s: cannot publish its commit: %s", name, e.message)

    async def _publish(self, name: str, copier: _Copier) -> None:
        try:
            head = await self._repos.latest(copier.repo, copier.branch)
        except NotFound:
            return  # no such repo yet: nothing to send
        if head is None:
            return
        for _ in range(CAS_ATTEMPTS):
            try:
                obj = await self._store.get("Pipeline", copier.namespace, name)
            except NotFound:
                return
            notes = obj["metadata"].setdefault("annotations", {}) or {}
            if notes.get(COPIER_COMMIT_ANNOTATION) == head.id:
                return
            notes[COPIER_COMMIT_ANNOTATION] = head.id
            obj["metadata"]["annotations"] = notes
            try:
                await self._store.update(obj)
                return
            except Conflict:
                continue
