"""The cloud's side of the Merger: commits delivered by nodes, merged per key when complete.

A Merger is a Pipeline with ``pattern: {merger: {...}}`` (:mod:`.mergespec`) placed on edge
nodes; its input is one ``pfs`` branch of each node's own repo (its ``transform`` is not
run). Each node delivers its newest commit of that branch (:mod:`edgeweave.edge.pipelines.merger`):
the chunks the cloud lacks over HTTPS, then the commit, which :meth:`Mergers.deliver`
imports into the cloud repo named after the pipeline **on a branch named after the node** —
the raw delivery, imported once: a retried delivery changes nothing.

Completion is evaluated per key (:mod:`.mergestate`, kept in ``status.merger``). When a key
is complete, its files from every node that delivered it are placed on branch ``master`` of
the same repo — ``/<node>/...`` under node keying, ``/<key>/<node>/...`` under a correlation
key — as a new commit (the files are referenced, not copied) that wakes the cloud pipelines
reading the repo; its provenance names the node-branch commits it was made from (lineage
follows a merged file back through them, :mod:`edgeweave.pipelines.mergedview`). Later
deliveries update complete keys in the same way. :meth:`Mergers.check` re-evaluates a Merger
without a delivery: the timer (:mod:`.mergetimer`) calls it when a ``timeoutSeconds``
deadline passes.

Must not talk HTTP (the API's merge routes call it) or decide placement (``hub.placed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from edgeweave.aio.clock import Clock, SystemClock
from edgeweave.cloud.hub.placed import placement_of
from edgeweave.cloud.pipelines.mergespec import NODE_KEY, MergerSpec, check_merger, merged_path
from edgeweave.cloud.pipelines.mergestate import MergeState
from edgeweave.cloud.store.base import JSONObject, Store
from edgeweave.errors import BadRequest, Conflict, NotFound
from edgeweave.pipelines.mergedview import provenance_entry
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.transfer import CommitManifest

PIPELINE = "Pipeline"
MERGED_BRANCH = "master"
CAS_ATTEMPTS = 8
OnMerged = Callable[[str, str, MergeState], None]  # namespace, name, state (the timer)


def merger_spec(obj: JSONObject) -> MergerSpec:
    pattern = (obj.get("spec") or {}).get("pattern") or {}
    return check_merger(pattern.get("merger") if isinstance(pattern, dict) else None)


class Mergers:
    def __init__(
        self,
        store: Store,
        repos: Repos,
        on_commit: Callable[[str], None],
        clock: Clock | None = None,
        on_merged: OnMerged | None = None,
    ) -> None:
        self._store = store
        self._repos = repos
        self._on_commit = on_commit
        self._clock = clock or SystemClock()
        self._on_merged = on_merged
        self._locks: dict[str, asyncio.Lock] = {}

    async def merger(self, namespace: str, name: str) -> JSONObject:
        """The Merger Pipeline object; NotFound when there is none of that name."""
        obj = await self._store.get(PIPELINE, namespace, name)
        pattern = (obj.get("spec") or {}).get("pattern") or {}
        if not isinstance(pattern, dict) or "merger" not in pattern:
            raise NotFound(f"pipeline {namespace}/{name} is not a Merger")
        return obj

    async def deliver(
        self, namespace: str, name: str, node: str, manifest: CommitManifest
    ) -> dict[str, Any]:
        """Import ``node``'s commit into repo ``name`` on branch ``node``; the merge state."""
        if node == MERGED_BRANCH:
            raise BadRequest(f"a node named {MERGED_BRANCH!r} cannot deliver to a Merger")
        obj = await self.merger(namespace, name)
        spec = merger_spec(obj)
        imported = await self._repos.import_manifest(manifest, branch=node, repo=name)
        if imported:
            self._on_commit(name)
        keys: set[str] = set()
        unkeyed = 0
        for path, _, _ in manifest.files:
            key = spec.key_of(path)
            if key is None:
                unkeyed += 1
            else:
                keys.add(key)
        delivery = (node, manifest.info.id, keys, unkeyed)
        async with self._locks.setdefault(name, asyncio.Lock()):
            state = await self._update(obj, delivery)
        merge = state.as_json()
        return {"imported": imported, "complete": merge["complete"], "merger": merge}

    async def check(self, namespace: str, name: str) -> MergeState | None:
        """Re-evaluate completion now (a timeout may have passed); None: no such Merger."""
        try:
            obj = await self.merger(namespace, name)
        except NotFound:
            return None
        async with self._locks.setdefault(name, asyncio.Lock()):
            return await self._update(obj, None)

    async def _sources(self, obj: JSONObject) -> list[str]:
        placement = placement_of(obj)
        if placement is None:
            return []
        nodes = (await self._store.list("Node")).items
        return sorted(
            n["metadata"]["name"]
            for n in nodes
            if placement.admits(n["metadata"]["name"], n["metadata"].get("labels") or {})
        )

    async def _update(
        self, obj: JSONObject, delivery: tuple[str, str, set[str], int] | None
    ) -> MergeState:
        namespace, name = obj["metadata"].get("namespace") or "", obj["metadata"]["name"]
        sources = await self._sources(obj)
        for _ in range(CAS_ATTEMPTS):
            spec = merger_spec(obj)
            status = dict(obj.get("status") or {})
            state = MergeState.load(status.get("merger"), spec)
            now = self._clock.time()
            if delivery is not None:
                state.receive(*delivery[:3], delivery[3], now)
            state.evaluate(sources, now)
            state.merged = await self._assemble(name, state)
            merge = state.as_json()
            if status.get("merger") != merge:
                obj["status"] = {**status, "merger": merge}
                try:
                    await self._store.update(obj)
                except Conflict:
                    obj = await self.merger(namespace, name)
                    continue
            if self._on_merged is not None:
                self._on_merged(namespace, name, state)
            return state
        raise Conflict(f"pipeline {namespace}/{name}: its status kept changing; deliver again")

    async def _assemble(self, repo: str, state: MergeState) -> str | None:
        """Bring the merged view (branch master) up to date with every complete key; its
        head (None: nothing is complete yet)."""
        complete = state.complete_keys()
        try:
            branches = await self._repos.branches(repo)
        except NotFound:
            return None
        head = branches.get(MERGED_BRANCH)
        current: dict[str, tuple[str, int]] = {}
        if head is not None:
            tree = await self._repos.tree(head)
            rows = zip(tree.paths, tree.digests, tree.sizes, strict=True)
            current = {p: (d, s) for p, d, s in rows}
            if state.spec.glob is not None:  # keys forgotten by the status stay complete
                complete |= {p.split("/", 2)[1] for p in current}
        if not complete:
            return head
        wanted: dict[str, tuple[str, int]] = {}
        sources: list[str] = []  # the node-branch commits the view is made from
        for node, commit in sorted(branches.items()):
            if node == MERGED_BRANCH or commit is None:
                continue
            tree = await self._repos.tree(commit)
            placed = len(wanted)
            for path, digest, size in zip(tree.paths, tree.digests, tree.sizes, strict=True):
                key = state.spec.key_of(path)
                if key is not None and key in complete:
                    wanted[merged_path(key, node, path)] = (digest, size)
            if len(wanted) > placed:
                sources.append(provenance_entry(repo, commit))
        if wanted == current:
            return head
        keys = "all sources" if complete == {NODE_KEY} else f"{len(complete)} key(s)"
        info = await self._repos.start_commit(
            repo, MERGED_BRANCH, origin="auto", description=f"merged: {keys}", provenance=sources
        )
        try:
            puts = [(p, d, s) for p, (d, s) in wanted.items() if current.get(p) != (d, s)]
            await self._repos.put_entries(info.id, puts, [p for p in current if p not in wanted])
            await self._repos.finish_commit(info.id)
        except BaseException:
            await self._repos.delete_commit(info.id)
            raise
        self._on_commit(repo)
        return info.id
