"""Service and Endpoints objects from the local store, read into the mesh catalog's terms.

A hand reader in the style of ``runtime.spec``: the agent must not load pydantic (it would
cost several MB for the agent's whole life), and the cloud validated every Service already, so
this only checks what the mesh relies on and raises :class:`InvalidObject` naming the field
when an object is unusable. Endpoints objects are the cloud's (read-only); entries that make no
sense are skipped rather than failing the whole service.

Which endpoint is reached how: an endpoint on this node is dialled at ``local_host`` (the app
listens on this machine); one on another node at the address that node advertises, or through
the relay when it advertises none or that failed (``paths``). This module must not do I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from edgeweave.errors import InvalidObject
from edgeweave.mesh.catalog import (
    Endpoint,
    EndpointPath,
    HashKey,
    Policy,
    PortEntry,
    ServiceEntry,
)

JSONObject = dict[str, Any]
BALANCING = ("RoundRobin", "Random", "ConsistentHash")


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    namespace, name = meta.get("namespace") or "default", meta.get("name")
    if not isinstance(name, str) or not name or not isinstance(namespace, str):
        raise InvalidObject("an object without metadata.name", field="metadata.name")
    return namespace, name


def _port(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    return None


def service_entry(obj: Mapping[str, Any]) -> ServiceEntry:
    """A stored ``Service`` as a catalog entry."""
    namespace, name = _meta(obj)
    where = f"Service {namespace}/{name}"
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise InvalidObject(f"{where}: spec is missing", field="spec")
    ports: list[PortEntry] = []
    raw_ports = spec.get("ports")
    for i, raw_item in enumerate(raw_ports if isinstance(raw_ports, list) else []):
        item = raw_item if isinstance(raw_item, dict) else {}
        port = _port(item.get("port"))
        if port is None:
            raise InvalidObject(f"{where}: ports[{i}].port must be 1..65535", field="spec.ports")
        raw = item.get("targetPort")
        target: int | str = raw if isinstance(raw, str) and raw else _port(raw) or port
        label = item.get("name")
        protocol = item.get("protocol") or "TCP"
        ports.append(
            PortEntry(label if isinstance(label, str) else None, port, target, str(protocol))
        )
    if not ports:
        raise InvalidObject(f"{where}: no ports", field="spec.ports")
    balancing = spec.get("loadBalancing") or "RoundRobin"
    if balancing not in BALANCING:
        raise InvalidObject(f"{where}: loadBalancing {balancing!r}", field="spec.loadBalancing")
    hashing = spec.get("consistentHash")
    hashing = hashing if isinstance(hashing, dict) else {}
    key: HashKey = "header" if hashing.get("key") == "header" else "source"
    header = hashing.get("header")
    policy = Policy(
        load_balancing=cast("Any", balancing),
        session_affinity=spec.get("sessionAffinity") == "ClientIP",
        hash_key=key,
        hash_header=header if isinstance(header, str) and key == "header" else None,
    )
    return ServiceEntry(namespace, name, tuple(ports), policy)


@dataclass(frozen=True, slots=True)
class RemoteView:
    """How this node sees the endpoints: its name, where its own apps listen, and the path
    it last found to each endpoint, by key (None: not known yet)."""

    node: str
    local_host: str
    path_to: Callable[[str], EndpointPath | None]


def endpoints_by_port(obj: Mapping[str, Any], view: RemoteView) -> dict[int, list[Endpoint]]:
    """A stored ``Endpoints`` object as catalog endpoints per service port."""
    out: dict[int, list[Endpoint]] = {}
    entries = obj.get("endpoints")
    for item in entries if isinstance(entries, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("node"), str):
            continue
        node = item["node"]
        raw = item.get("address")
        address = raw if isinstance(raw, str) else ""
        if node == view.node:
            address = view.local_host
        ports = item.get("ports")
        for raw_port in ports if isinstance(ports, list) else []:
            port = raw_port if isinstance(raw_port, dict) else {}
            service_port, target = _port(port.get("port")), _port(port.get("targetPort"))
            if service_port is None or target is None:
                continue
            endpoint = Endpoint(node, address, target, item.get("ready") is True)
            path: EndpointPath = "direct"
            if node != view.node:
                path = (view.path_to(endpoint.key) or "direct") if address else "relay"
            out.setdefault(service_port, []).append(replace(endpoint, path=path))
    return out
