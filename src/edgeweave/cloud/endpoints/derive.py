"""What a Service's ``Endpoints`` object should say, computed from Services, Apps and Nodes.

The views (``ServiceView``, ``AppView``, ``NodeView``) keep only what endpoints depend on, so
the controller can tell at once whether a change to a big object (an App's status holds every
node's report) matters: two equal views mean nothing to recompute.

Rules (docs/mesh.md):

- an App is selected when its labels contain the Service's selector, in the Service's namespace;
- each node in ``App.status.nodes`` whose phase is ``Running`` is one endpoint, healthy when
  the node reported it ``ready``; other phases are not endpoints at all;
- a service port's ``targetPort`` is a number, or the name of one of the App's ``spec.ports``
  (an App without that port name serves nothing on that service port; an instance serving no
  service port is left out);
- the endpoint's address is the node's first ``InternalIP``, else its first ``ExternalIP``,
  else empty (consumers then reach it through the relay only);
- ``status.paths`` copies, for each consuming node, the path it reported towards each endpoint
  node of this service.

Pure: this module must not do I/O, await, or know about the store or the hub.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

JSONObject = dict[str, Any]
API_VERSION = "edgeweave.io/v1"
ENDPOINTS = "Endpoints"
ADDRESS_TYPES = ("InternalIP", "ExternalIP")
PATHS = frozenset({"direct", "relay"})


@dataclass(frozen=True, slots=True)
class PortView:
    name: str | None
    port: int
    target: int | str


@dataclass(frozen=True, slots=True)
class ServiceView:
    namespace: str
    name: str
    selector: tuple[tuple[str, str], ...]
    ports: tuple[PortView, ...]

    def selects(self, labels: Mapping[str, str]) -> bool:
        return bool(self.selector) and all(labels.get(k) == v for k, v in self.selector)


@dataclass(frozen=True, slots=True)
class Instance:
    node: str
    ready: bool


@dataclass(frozen=True, slots=True)
class AppView:
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...]
    port_names: tuple[tuple[str, int], ...]
    running: tuple[Instance, ...]

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    address: str
    paths: tuple[tuple[str, str], ...]


def _meta(obj: JSONObject) -> tuple[str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return "", ""
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _port(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    return None


def service_view(obj: JSONObject) -> ServiceView | None:
    namespace, name = _meta(obj)
    spec = _dict(obj.get("spec"))
    selector = _dict(spec.get("selector"))
    ports: list[PortView] = []
    for raw_item in _list(spec.get("ports")):
        item = _dict(raw_item)
        port = _port(item.get("port"))
        if port is None:
            continue
        raw = item.get("targetPort")
        target: int | str = raw if isinstance(raw, str) and raw else _port(raw) or port
        label = item.get("name")
        ports.append(PortView(label if isinstance(label, str) else None, port, target))
    if not name:
        return None
    pairs = tuple(sorted((str(k), str(v)) for k, v in selector.items()))
    return ServiceView(namespace, name, pairs, tuple(ports))


def app_view(obj: JSONObject) -> AppView | None:
    namespace, name = _meta(obj)
    if not name:
        return None
    labels = _dict(_dict(obj.get("metadata")).get("labels"))
    names: list[tuple[str, int]] = []
    for raw_item in _list(_dict(obj.get("spec")).get("ports")):
        item = _dict(raw_item)
        port = _port(item.get("port"))
        if isinstance(item.get("name"), str) and port is not None:
            names.append((item["name"], port))
    running: list[Instance] = []
    for node, raw_report in sorted(_dict(_dict(obj.get("status")).get("nodes")).items()):
        report = _dict(raw_report)
        if report.get("phase") == "Running":
            running.append(Instance(str(node), report.get("ready") is True))
    return AppView(
        namespace,
        name,
        tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        tuple(names),
        tuple(running),
    )


def node_address(status: Mapping[str, Any]) -> str:
    addresses = [_dict(a) for a in _list(status.get("addresses"))]
    for wanted in ADDRESS_TYPES:
        for item in addresses:
            if item.get("type") == wanted and isinstance(item.get("address"), str):
                return str(item["address"])
    return ""


def node_view(obj: JSONObject) -> NodeView | None:
    _, name = _meta(obj)
    if not name:
        return None
    status = _dict(obj.get("status"))
    paths = _dict(status.get("meshPaths"))
    kept = tuple(sorted((str(k), v) for k, v in paths.items() if v in PATHS))
    return NodeView(name, node_address(status), kept)


def _target_port(app: AppView, target: int | str) -> int | None:
    if isinstance(target, int):
        return target
    return dict(app.port_names).get(target)


def derive_entries(
    service: ServiceView, apps: Iterable[AppView], nodes: Mapping[str, NodeView]
) -> list[JSONObject]:
    """The ``endpoints`` list of ``service``'s Endpoints object, sorted by (node, app)."""
    entries: list[JSONObject] = []
    for app in apps:
        if app.namespace != service.namespace or not service.selects(app.label_map()):
            continue
        ports: list[JSONObject] = []
        for port in service.ports:
            target = _target_port(app, port.target)
            if target is not None:
                named = {"name": port.name} if port.name else {}
                ports.append({**named, "port": port.port, "targetPort": target})
        if not ports:
            continue
        for instance in app.running:
            node = nodes.get(instance.node)
            entries.append(
                {
                    "node": instance.node,
                    "app": app.name,
                    "address": node.address if node is not None else "",
                    "ready": instance.ready,
                    "ports": ports,
                }
            )
    entries.sort(key=lambda e: (e["node"], e["app"]))
    return entries


def derive_paths(
    entries: Iterable[JSONObject], nodes: Mapping[str, NodeView]
) -> dict[str, dict[str, str]]:
    """``{consumer: {endpoint node: path}}`` for the endpoint nodes in ``entries``."""
    targets = {e["node"] for e in entries}
    out: dict[str, dict[str, str]] = {}
    for consumer in sorted(nodes):
        seen = {peer: path for peer, path in nodes[consumer].paths if peer in targets}
        if seen:
            out[consumer] = seen
    return out


def endpoints_object(
    service: ServiceView, entries: list[JSONObject], paths: dict[str, dict[str, str]]
) -> JSONObject:
    return {
        "apiVersion": API_VERSION,
        "kind": ENDPOINTS,
        "metadata": {"name": service.name, "namespace": service.namespace},
        "endpoints": entries,
        "status": {"paths": paths},
    }


def same_endpoints(a: JSONObject, b: JSONObject) -> bool:
    """Equal content (endpoints and paths), whatever the metadata."""
    return a.get("endpoints") == b.get("endpoints") and _dict(a.get("status")).get(
        "paths"
    ) == _dict(b.get("status")).get("paths")
