"""Which nodes a ``Pipeline`` is placed on: its ``spec.placement`` against the nodes' labels.

``placement`` is ``"cloud"`` (or absent: the cloud runs it) or ``{nodeSelector,
nodeNames}`` with the App's rules: a node must match the selector and be named when both are
given. A cloud-placed pipeline is placed on one node only when the cloud's controller
handed it to that cloud worker (the ``edgeweave.io/cloud-worker`` annotation names the
node; :mod:`edgeweave.cloud.pipelines.workers`).

:class:`PipelinePlacements` keeps, per pipeline, the nodes it is placed on and, per node, its
pipelines; :mod:`.index` owns the node labels and asks it.

Pure data: this module must not do I/O, await, or know about sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgeweave.cloud.store.base import JSONObject
from edgeweave.models.pipelines import CLOUD_WORKER_ANNOTATION
from edgeweave.protocol.refs import ResourceRef

NodesMatching = Callable[[Mapping[str, str]], set[str]]


@dataclass(frozen=True, slots=True)
class Placement:
    selector: dict[str, str] | None  # None: not selecting by labels
    names: frozenset[str] | None  # None: not naming nodes

    def admits(self, node: str, labels: Mapping[str, str] | None) -> bool:
        if labels is None:
            return False
        if self.selector is not None and any(labels.get(k) != v for k, v in self.selector.items()):
            return False
        return self.names is None or node in self.names


def placement_of(body: JSONObject | None) -> Placement | None:
    """The node placement of a stored Pipeline, or None when it runs in the cloud."""
    spec = body.get("spec") if body is not None else None
    placement: Any = spec.get("placement") if isinstance(spec, dict) else None
    if not isinstance(placement, dict):
        return None  # absent or "cloud"
    sel = placement.get("nodeSelector")
    selector = {str(k): str(v) for k, v in sel.items()} if isinstance(sel, dict) and sel else None
    raw = placement.get("nodeNames")
    names = frozenset(n for n in raw if isinstance(n, str)) if isinstance(raw, list) else None
    if selector is None and not names:
        return None  # the API refuses this shape; place it nowhere
    return Placement(selector, names)


def worker_of(body: JSONObject | None) -> str | None:
    """The cloud worker a cloud-placed Pipeline is handed to (None: the cloud runs it)."""
    if body is None or placement_of(body) is not None:
        return None
    meta = body.get("metadata")
    notes = meta.get("annotations") if isinstance(meta, dict) else None
    node = notes.get(CLOUD_WORKER_ANNOTATION) if isinstance(notes, dict) else None
    return node if isinstance(node, str) and node else None


class PipelinePlacements:
    def __init__(self) -> None:
        self._placements: dict[ResourceRef, Placement] = {}
        self._nodes: dict[ResourceRef, set[str]] = {}
        self._by_node: dict[str, set[ResourceRef]] = {}

    def holds(self, node: str, ref: ResourceRef) -> bool:
        return node in self._nodes.get(ref, ())

    def refs_of(self, node: str) -> set[ResourceRef]:
        return self._by_node.get(node, set())

    def nodes_of(self, ref: ResourceRef) -> frozenset[str]:
        return frozenset(self._nodes.get(ref, ()))

    def update(
        self,
        ref: ResourceRef,
        body: JSONObject | None,
        nodes_matching: NodesMatching,
    ) -> set[str]:
        """Place (or remove, ``body`` None) a pipeline; the nodes whose holding may change."""
        old = self._nodes.get(ref, set())
        placement = placement_of(body)
        new: set[str] = set()
        if placement is None:
            self._placements.pop(ref, None)
            worker = worker_of(body)
            if worker is not None:
                new = {worker}
        else:
            self._placements[ref] = placement
            if placement.selector is not None:
                new = nodes_matching(placement.selector)
                if placement.names is not None:
                    new &= placement.names
            else:
                new = set(placement.names or ())
        for node in old - new:
            self._set(ref, node, False)
        for node in new - old:
            self._set(ref, node, True)
        return old | new

    def relabel(self, node: str, labels: Mapping[str, str] | None) -> set[ResourceRef]:
        """A node's labels changed (None: the node is gone); the pipelines it gains or loses."""
        moved: set[ResourceRef] = set()
        for ref, placement in self._placements.items():
            if placement.selector is None:
                continue  # placed by name only: labels do not matter
            want = placement.admits(node, labels)
            if want != self.holds(node, ref):
                self._set(ref, node, want)
                moved.add(ref)
        return moved

    def _set(self, ref: ResourceRef, node: str, placed: bool) -> None:
        if placed:
            self._nodes.setdefault(ref, set()).add(node)
            self._by_node.setdefault(node, set()).add(ref)
            return
        nodes, refs = self._nodes.get(ref), self._by_node.get(node)
        if nodes is not None:
            nodes.discard(node)
            if not nodes:
                del self._nodes[ref]
        if refs is not None:
            refs.discard(ref)
            if not refs:
                del self._by_node[node]
