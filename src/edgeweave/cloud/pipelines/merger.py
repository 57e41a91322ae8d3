"""The cloud's side of the Merger: commits delivered by nodes, one branch per source.

A Merger is a Pipeline with ``pattern: {merger: {complete: ...}}`` placed on edge nodes; its
input is one ``pfs`` branch of each node's own repo (its ``transform`` is not run). Each node
delivers its newest commit of that branch (:mod:`edgeweave.edge.pipelines.merger`): the
chunks the cloud lacks over HTTPS, then the commit, which :meth:`Mergers.deliver` imports into
the cloud repo named after the pipeline **on a branch named after the node** — keyed by
source, and idempotent: a commit is imported once, a retried delivery changes nothing.

``complete`` decides when the merge is complete, kept in the Pipeline's ``status.merger``
(``{sources, received: {node: {commit, time}}, complete}``): ``{sources: all}`` (the default:
every node the placement selects now has delivered), ``{count: N}`` (N nodes have), or
``{timeoutSeconds: T}`` (T seconds after the first delivery; checked when a delivery
arrives). A finished import wakes the cloud pipelines reading the merged repo.

Must not talk HTTP (the API's merge routes call it) or decide placement (``hub.placed``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edgeweave.cloud.hub.placed import placement_of
from edgeweave.cloud.store.base import JSONObject, Store
from edgeweave.errors import Conflict, InvalidObject, NotFound
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.transfer import CommitManifest

PIPELINE = "Pipeline"
CAS_ATTEMPTS = 8


def check_completion(settings: Any) -> dict[str, Any]:
    """``pattern.merger`` as written: its ``complete`` condition (default all sources)."""
    if settings is None:
        return {"sources": "all"}
    if not isinstance(settings, dict) or set(settings) - {"complete"}:
        raise InvalidObject("pattern.merger: takes only complete", field="pattern.merger")
    complete = settings.get("complete") or {"sources": "all"}
    ok = (
        isinstance(complete, dict)
        and len(complete) == 1
        and (
            complete.get("sources") == "all"
            or (type(complete.get("count")) is int and complete["count"] >= 1)
            or (
                type(complete.get("timeoutSeconds")) in (int, float)
                and complete["timeoutSeconds"] > 0
            )
        )
    )
    if not ok:
        raise InvalidObject(
            "pattern.merger.complete: one of {sources: all}, {count: N}, {timeoutSeconds: T}",
            field="pattern.merger.complete",
        )
    return dict(complete)


def is_complete(
    condition: dict[str, Any], sources: list[str], received: dict[str, Any], now: float
) -> bool:
    if not received:
        return False
    if "count" in condition:
        return len(received) >= int(condition["count"])
    if "timeoutSeconds" in condition:
        first = min(float(r.get("time", now)) for r in received.values())
        return now - first >= float(condition["timeoutSeconds"]) or set(sources) <= set(received)
    return bool(sources) and set(sources) <= set(received)


class Mergers:
    def __init__(self, store: Store, repos: Repos, on_commit: Callable[[str], None]) -> None:
        self._store = store
        self._repos = repos
        self._on_commit = on_commit

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
        obj = await self.merger(namespace, name)
        imported = await self._repos.import_manifest(manifest, branch=node, repo=name)
        if imported:
            self._on_commit(name)
        merge = await self._record(obj, node, manifest.info.id)
        return {"imported": imported, "complete": merge["complete"], "merger": merge}

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

    async def _record(self, obj: JSONObject, node: str, commit: str) -> dict[str, Any]:
        pattern = obj["spec"]["pattern"]
        condition = check_completion(pattern.get("merger"))
        sources = await self._sources(obj)
        namespace, name = obj["metadata"].get("namespace") or "", obj["metadata"]["name"]
        for _ in range(CAS_ATTEMPTS):
            status = dict(obj.get("status") or {})
            merge = dict(status.get("merger") or {})
            received = dict(merge.get("received") or {})
            if (received.get(node) or {}).get("commit") != commit:
                received[node] = {"commit": commit, "time": time.time()}
            merge = {
                "condition": condition,
                "sources": sources,
                "received": received,
                "complete": is_complete(condition, sources, received, time.time()),
            }
            if status.get("merger") == merge:
                return merge
            obj["status"] = {**status, "merger": merge}
            try:
                await self._store.update(obj)
                return merge
            except Conflict:
                obj = await self.merger(namespace, name)
        raise Conflict(f"pipeline {namespace}/{name}: its status kept changing; deliver again")
