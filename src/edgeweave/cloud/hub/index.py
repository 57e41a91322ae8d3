"""Which objects each node should hold: the in-memory index behind downstream sync.

The rules are docs/design/edge-link.md §3 "Which objects a node receives": a node gets its own
``Node``; the ``App`` objects whose ``nodeNames`` list it and/or whose ``nodeSelector`` matches
its labels (both must hold when both are given; neither places the app nowhere); the
``ConfigMap``/``Secret`` objects its apps reference (``configRefs``/``secretRefs``, same
namespace); the ``Device`` objects with ``spec.nodeName`` = the node and the ``DeviceModel`` they
reference; every ``Service`` in a namespace where it runs an app, with the Service's
``Endpoints``; the ``Pipeline`` objects whose ``spec.placement`` selects it (:mod:`.placed`;
the node runs their jobs on its own repos — a cloud-placed one when it is handed to the node
as a cloud worker); and the ``Repo`` objects located on it
(``spec.location: {node: NAME}``: the node creates the repo and reports its commits). Nothing
else.

:meth:`DesiredIndex.apply` takes one store change and answers *which (node, ref) pairs may have
changed*; the answer may over-approximate (the session re-checks each ref with
:meth:`DesiredIndex.desired` before sending), never under-approximate. The work per change is
proportional to the nodes and objects it touches, not to the size of the fleet: nodes are
indexed by label pair, apps by referenced object, devices by model, namespaces by node.

Objects are kept without ``status`` (nodes are sent desired state only; an App's status holds
every node's report and would not fit a frame), and a status-only write does not change the
version a node is sent: the index keeps, per object, the resourceVersion of its last
non-status change. Secrets stay as stored (encrypted); the session decrypts when sending.

Pure data: this module must not do I/O, await, or know about sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edgeweave.cloud.hub.placed import PipelinePlacements, worker_of
from edgeweave.cloud.store.base import JSONObject
from edgeweave.models.pipelines import COPIER_COMMIT_ANNOTATION, WORKER_INPUTS_ANNOTATION
from edgeweave.pipelines.cloudworkers import decode_inputs
from edgeweave.protocol.refs import ResourceRef

NODE, APP, CONFIGMAP, SECRET = "Node", "App", "ConfigMap", "Secret"
DEVICE, DEVICE_MODEL, SERVICE = "Device", "DeviceModel", "Service"
ENDPOINTS, PIPELINE, REPO = "Endpoints", "Pipeline", "Repo"
MESH_KINDS = (SERVICE, ENDPOINTS)  # sent alike: to nodes with an app in their namespace
RELEVANT_KINDS = (
    *(NODE, CONFIGMAP, SECRET, DEVICE_MODEL, DEVICE, SERVICE, ENDPOINTS, APP, REPO, PIPELINE),
)
# a fresh node is sent what apps need before the apps themselves
KIND_ORDER = {kind: i for i, kind in enumerate(RELEVANT_KINDS)}

Marks = dict[str, set[ResourceRef]]
"""node name -> refs whose desired state on that node may have changed."""

_NO_NODES: frozenset[str] = frozenset()
_NO_REFS: frozenset[ResourceRef] = frozenset()


@dataclass(slots=True)
class Entry:
    rv: int  # resourceVersion of the last change other than status
    body: JSONObject  # the object without status


def node_ref(name: str) -> ResourceRef:
    return ResourceRef(NODE, "", name)


def _strip(obj: JSONObject) -> JSONObject:
    return {k: v for k, v in obj.items() if k != "status"}


def _same_content(a: JSONObject, b: JSONObject) -> bool:
    """Equal apart from ``metadata.resourceVersion``."""
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        other = b[key]
        if key == "metadata" and isinstance(value, dict) and isinstance(other, dict):
            if {k: v for k, v in value.items() if k != "resourceVersion"} != {
                k: v for k, v in other.items() if k != "resourceVersion"
            }:
                return False
        elif value != other:
            return False
    return True


def _spec(body: JSONObject | None) -> Mapping[str, Any]:
    spec = body.get("spec") if body is not None else None
    return spec if isinstance(spec, dict) else {}


def _labels(body: JSONObject | None) -> dict[str, str]:
    meta = body.get("metadata") if body is not None else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict):
        return {}
    return {str(k): str(v) for k, v in labels.items()}


def _selector(spec: Mapping[str, Any]) -> dict[str, str] | None:
    sel = spec.get("nodeSelector")
    if not isinstance(sel, dict) or not sel:
        return None  # absent or {}: not selecting by labels
    return {str(k): str(v) for k, v in sel.items()}


def _node_names(spec: Mapping[str, Any]) -> frozenset[str] | None:
    names = spec.get("nodeNames")
    if not isinstance(names, list):
        return None
    return frozenset(n for n in names if isinstance(n, str))


def _object_refs(ns: str, spec: Mapping[str, Any]) -> frozenset[ResourceRef]:
    refs: set[ResourceRef] = set()
    for field, kind in (("configRefs", CONFIGMAP), ("secretRefs", SECRET)):
        items = spec.get(field)
        for item in items if isinstance(items, list) else ():
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name:
                refs.add(ResourceRef(kind, ns, name))
    return frozenset(refs)


def _artifact_digests(spec: Mapping[str, Any]) -> frozenset[str]:
    items = spec.get("artifacts")
    return frozenset(
        a["digest"]
        for a in (items if isinstance(items, list) else ())
        if isinstance(a, dict) and isinstance(a.get("digest"), str)
    )


def _add(index: dict[Any, set[Any]], key: Any, value: Any) -> None:
    index.setdefault(key, set()).add(value)


def _discard(index: dict[Any, set[Any]], key: Any, value: Any) -> None:
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]


class DesiredIndex:
    """Every object a node may receive, and who should receive it (see the module docstring)."""

    def __init__(self) -> None:
        self.rv = 0  # the newest store version applied
        self._objects: dict[ResourceRef, Entry] = {}
        self._node_labels: dict[str, dict[str, str]] = {}
        self._nodes_by_label: dict[tuple[str, str], set[str]] = {}
        self._selector_apps: dict[ResourceRef, dict[str, str]] = {}
        self._app_names: dict[ResourceRef, frozenset[str] | None] = {}
        self._app_nodes: dict[ResourceRef, set[str]] = {}
        self._node_apps: dict[str, set[ResourceRef]] = {}
        self._app_refs: dict[ResourceRef, frozenset[ResourceRef]] = {}
        self._ref_apps: dict[ResourceRef, set[ResourceRef]] = {}
        self._app_artifacts: dict[ResourceRef, frozenset[str]] = {}
        self._ns_nodes: dict[str, dict[str, int]] = {}  # namespace -> node -> apps there
        self._services: dict[str, set[ResourceRef]] = {}  # namespace -> services, endpoints
        self._device_node: dict[ResourceRef, str] = {}
        self._node_devices: dict[str, set[ResourceRef]] = {}
        self._device_model: dict[ResourceRef, ResourceRef] = {}
        self._model_devices: dict[ResourceRef, set[ResourceRef]] = {}
        self._pipelines = PipelinePlacements()
        self._repo_node: dict[ResourceRef, str] = {}  # Repo objects located on a node
        self._node_repos: dict[str, set[ResourceRef]] = {}

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self._objects)

    def desired(self, node: str, ref: ResourceRef) -> Entry | None:
        """The object ``node`` should hold under ``ref``, or None when it should hold nothing."""
        entry = self._objects.get(ref)
        if entry is None:
            return None
        kind = ref.kind
        if kind == NODE:
            held = ref.name == node
        elif kind == APP:
            held = node in self._app_nodes.get(ref, _NO_NODES)
        elif kind in (CONFIGMAP, SECRET):
            held = any(
                node in self._app_nodes.get(a, _NO_NODES) for a in self._ref_apps.get(ref, ())
            )
        elif kind == DEVICE:
            held = self._device_node.get(ref) == node
        elif kind == DEVICE_MODEL:
            held = any(self._device_node.get(d) == node for d in self._model_devices.get(ref, ()))
        elif kind in MESH_KINDS:
            held = self._ns_nodes.get(ref.namespace, {}).get(node, 0) > 0
        elif kind == PIPELINE:
            held = self._pipelines.holds(node, ref)
        elif kind == REPO:
            held = self._repo_node.get(ref) == node
        else:
            held = False
        return entry if held else None

    def desired_refs(self, node: str) -> list[ResourceRef]:
        """Every ref ``node`` should hold, in send order (what apps need first)."""
        candidates: set[ResourceRef] = {node_ref(node)}
        namespaces: set[str] = set()
        for app in self._node_apps.get(node, ()):
            candidates.add(app)
            candidates.update(self._app_refs.get(app, _NO_REFS))
            namespaces.add(app.namespace)
        for ns in namespaces:
            candidates.update(self._services.get(ns, ()))
        for device in self._node_devices.get(node, ()):
            candidates.add(device)
            model = self._device_model.get(device)
            if model is not None:
                candidates.add(model)
        candidates.update(self._pipelines.refs_of(node))
        candidates.update(self._node_repos.get(node, ()))
        wanted = [r for r in candidates if self.desired(node, r) is not None]
        wanted.sort(key=lambda r: (KIND_ORDER.get(r.kind, 99), r.namespace, r.name))
        return wanted

    def entry(self, ref: ResourceRef) -> Entry | None:
        """The indexed object under ``ref`` (without status), whoever holds it."""
        return self._objects.get(ref)

    def app_assigned(self, node: str, app: ResourceRef) -> bool:
        return app in self._objects and node in self._app_nodes.get(app, _NO_NODES)

    def node_uses_artifact(self, node: str, digest: str) -> bool:
        """True when an App assigned to ``node`` lists an artifact with ``digest``."""
        return any(
            digest in self._app_artifacts.get(app, ()) for app in self._node_apps.get(node, ())
        )

    def nodes_of_app(self, app: ResourceRef) -> frozenset[str]:
        return frozenset(self._app_nodes.get(app, _NO_NODES))

    def nodes_of_pipeline(self, pipeline: ResourceRef) -> frozenset[str]:
        return self._pipelines.nodes_of(pipeline)

    def merger_on(self, node: str, pipeline: ResourceRef) -> bool:
        """True when ``pipeline`` is a Merger placed on ``node``."""
        entry = self._objects.get(pipeline)
        if entry is None or not self._pipelines.holds(node, pipeline):
            return False
        pattern = _spec(entry.body).get("pattern")
        return isinstance(pattern, dict) and isinstance(pattern.get("merger"), dict)

    def repo_on(self, node: str, repo: str) -> bool:
        """True when a Repo object named ``repo`` is located on ``node``."""
        return any(r.name == repo for r in self._node_repos.get(node, ()))

    def copier_sends(self, node: str, commit: str) -> bool:
        """True when a Copier placed on ``node`` sends it ``commit`` (its annotation)."""
        for ref in self._pipelines.refs_of(node):
            entry = self._objects.get(ref)
            meta = entry.body.get("metadata") if entry is not None else None
            notes = meta.get("annotations") if isinstance(meta, dict) else None
            if isinstance(notes, dict) and notes.get(COPIER_COMMIT_ANNOTATION) == commit:
                return True
        return False

    def worker_on(self, node: str, pipeline: ResourceRef) -> bool:
        """True when cloud-placed ``pipeline`` is handed to cloud worker ``node``."""
        entry = self._objects.get(pipeline)
        return entry is not None and worker_of(entry.body) == node

    def worker_fetches(self, node: str, commit: str) -> bool:
        """True when a pipeline handed to cloud worker ``node`` reads ``commit`` (its inputs
        annotation names it)."""
        for ref in self._pipelines.refs_of(node):
            entry = self._objects.get(ref)
            if entry is None or worker_of(entry.body) != node:
                continue
            notes = entry.body["metadata"].get("annotations") or {}
            if commit in decode_inputs(notes.get(WORKER_INPUTS_ANNOTATION)).values():
                return True
        return False

    # ------------------------------------------------------------------ changes

    def apply(self, event_type: str, obj: JSONObject, rv: int) -> Marks:
        """Apply one store change (``ADDED`` / ``MODIFIED`` / ``DELETED`` at ``rv``)."""
        self.rv = max(self.rv, rv)
        try:
            ref = ResourceRef.of(obj)
        except ValueError:
            return {}
        if ref.kind not in KIND_ORDER:
            return {}
        old = self._objects.get(ref)
        new: JSONObject | None
        if event_type == "DELETED":
            if old is None or rv < old.rv:
                return {}
            del self._objects[ref]
            new = None
        else:
            if old is not None and rv <= old.rv:
                return {}  # seen already (a list and a watch overlap)
            new = _strip(obj)
            if old is not None and _same_content(old.body, new):
                return {}  # status-only: nodes are not sent status
            self._objects[ref] = Entry(rv, new)
        old_body = old.body if old is not None else None
        marks: Marks = {}
        if ref.kind == NODE:
            self._on_node(ref, old_body, new, marks)
        elif ref.kind == APP:
            self._on_app(ref, new, marks)
        elif ref.kind in (CONFIGMAP, SECRET):
            for app in self._ref_apps.get(ref, ()):
                for node in self._app_nodes.get(app, ()):
                    _add(marks, node, ref)
        elif ref.kind in MESH_KINDS:
            if new is None:
                _discard(self._services, ref.namespace, ref)
            else:
                _add(self._services, ref.namespace, ref)
            for node in self._ns_nodes.get(ref.namespace, {}):
                _add(marks, node, ref)
        elif ref.kind == DEVICE:
            self._on_device(ref, new, marks)
        elif ref.kind == PIPELINE:
            for node in self._pipelines.update(ref, new, self._nodes_matching):
                _add(marks, node, ref)
        elif ref.kind == REPO:
            old_node = self._repo_node.pop(ref, None)
            if old_node is not None:
                _discard(self._node_repos, old_node, ref)
                _add(marks, old_node, ref)
            located = _spec(new).get("location")
            holder = located.get("node") if isinstance(located, dict) else None
            if isinstance(holder, str) and holder:
                self._repo_node[ref] = holder
                _add(self._node_repos, holder, ref)
                _add(marks, holder, ref)
        elif ref.kind == DEVICE_MODEL:
            for device in self._model_devices.get(ref, ()):
                holder = self._device_node.get(device)
                if holder is not None:
                    _add(marks, holder, ref)
        return marks

    def _on_node(
        self, ref: ResourceRef, old: JSONObject | None, new: JSONObject | None, marks: Marks
    ) -> None:
        name = ref.name
        _add(marks, name, ref)
        old_labels = self._node_labels.get(name) if old is not None else None
        new_labels = _labels(new) if new is not None else None
        if old_labels == new_labels:
            return
        for pair in (old_labels or {}).items():
            _discard(self._nodes_by_label, pair, name)
        if new_labels is None:
            self._node_labels.pop(name, None)
        else:
            self._node_labels[name] = new_labels
            for pair in new_labels.items():
                _add(self._nodes_by_label, pair, name)
        for pipeline in self._pipelines.relabel(name, new_labels):
            _add(marks, name, pipeline)
        # a label change moves only selector-placed apps: evaluate each once for this node
        for app, selector in self._selector_apps.items():
            names = self._app_names.get(app)
            want = (
                new_labels is not None
                and all(new_labels.get(k) == v for k, v in selector.items())
                and (names is None or name in names)
            )
            if want != (name in self._app_nodes.get(app, _NO_NODES)):
                self._place(app, name, want, marks)

    def _on_app(self, ref: ResourceRef, new: JSONObject | None, marks: Marks) -> None:
        old_nodes = set(self._app_nodes.get(ref, ()))
        old_refs = self._app_refs.get(ref, _NO_REFS)
        if new is None:
            new_nodes: set[str] = set()
            new_refs = _NO_REFS
            self._selector_apps.pop(ref, None)
            self._app_names.pop(ref, None)
            self._app_artifacts.pop(ref, None)
        else:
            spec = _spec(new)
            selector, names = _selector(spec), _node_names(spec)
            if selector is not None:
                self._selector_apps[ref] = selector
                new_nodes = self._nodes_matching(selector)
                if names is not None:
                    new_nodes &= names
            else:
                self._selector_apps.pop(ref, None)
                new_nodes = set(names or ())
            self._app_names[ref] = names
            new_refs = _object_refs(ref.namespace, spec)
            self._app_artifacts[ref] = _artifact_digests(spec)
        for gone in old_refs - new_refs:
            _discard(self._ref_apps, gone, ref)
        for added in new_refs - old_refs:
            _add(self._ref_apps, added, ref)
        if new_refs:
            self._app_refs[ref] = new_refs
        else:
            self._app_refs.pop(ref, None)
        touched = old_refs | new_refs
        for node in old_nodes | new_nodes:
            node_marks = marks.setdefault(node, set())
            node_marks.add(ref)
            node_marks.update(touched)
        for node in old_nodes - new_nodes:
            self._place(ref, node, False, marks)
        for node in new_nodes - old_nodes:
            self._place(ref, node, True, marks)

    def _place(self, app: ResourceRef, node: str, assigned: bool, marks: Marks) -> None:
        """Assign ``app`` to ``node`` (or take it away) and mark what that changes."""
        counts = self._ns_nodes.setdefault(app.namespace, {})
        before = counts.get(node, 0)
        if assigned:
            _add(self._app_nodes, app, node)
            _add(self._node_apps, node, app)
            counts[node] = before + 1
        else:
            _discard(self._app_nodes, app, node)
            _discard(self._node_apps, node, app)
            if before <= 1:
                counts.pop(node, None)
            else:
                counts[node] = before - 1
        if not counts:
            del self._ns_nodes[app.namespace]
        node_marks = marks.setdefault(node, set())
        node_marks.add(app)
        node_marks.update(self._app_refs.get(app, _NO_REFS))
        after = counts.get(node, 0)
        if (before == 0) != (after == 0):  # first app in, or last app out of, the namespace
            node_marks.update(self._services.get(app.namespace, ()))

    def _nodes_matching(self, selector: Mapping[str, str]) -> set[str]:
        sets = sorted((self._nodes_by_label.get(pair, set()) for pair in selector.items()), key=len)
        if not sets or not sets[0]:
            return set()
        out = set(sets[0])
        for other in sets[1:]:
            out &= other
        return out

    def _on_device(self, ref: ResourceRef, new: JSONObject | None, marks: Marks) -> None:
        old_node = self._device_node.pop(ref, None)
        old_model = self._device_model.pop(ref, None)
        if old_node is not None:
            _discard(self._node_devices, old_node, ref)
        if old_model is not None:
            _discard(self._model_devices, old_model, ref)
        new_node: str | None = None
        new_model: ResourceRef | None = None
        if new is not None:
            spec = _spec(new)
            node_name = spec.get("nodeName")
            if isinstance(node_name, str) and node_name:
                new_node = node_name
                self._device_node[ref] = node_name
                _add(self._node_devices, node_name, ref)
            model = spec.get("deviceModelRef")
            model_name = model.get("name") if isinstance(model, dict) else None
            if isinstance(model_name, str) and model_name:
                new_model = ResourceRef(DEVICE_MODEL, ref.namespace, model_name)
                self._device_model[ref] = new_model
                _add(self._model_devices, new_model, ref)
        touched = {ref, *(m for m in (old_model, new_model) if m is not None)}
        for node in {old_node, new_node}:
            if node is not None:
                marks.setdefault(node, set()).update(touched)

    def marks_for_all(self, nodes: Iterable[str]) -> Marks:
        """Everything each of ``nodes`` should hold (after a relist)."""
        return {node: set(self.desired_refs(node)) for node in nodes}
