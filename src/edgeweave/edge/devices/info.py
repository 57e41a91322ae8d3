"""What the agent reads from a Device and its DeviceModel besides the twin itself.

Report cycles (ms) and ``reportToCloud`` per property, the desired values the cloud set
(``spec.properties[].desired.value``), the protocol (which mapper serves the device) and the
membership attributes. Older manifests put ``reportCycle``/``reportToCloud`` under
``status``; a property's own setting wins over the device-wide one. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin.topics import device_ref

JSON = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    ref: ResourceRef
    protocol: str
    description: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    cycles_ms: Mapping[str, int] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()  # properties with reportToCloud: false
    desired: Mapping[str, str | None] = field(default_factory=dict)
    device: JSON = field(default_factory=dict)
    model: JSON = field(default_factory=dict)


def _map(obj: Any) -> JSON:
    return obj if isinstance(obj, Mapping) else {}


def _list(obj: Any) -> list[Any]:
    return obj if isinstance(obj, list) else []


def model_name(device: JSON) -> str:
    return str(_map(_map(device.get("spec")).get("deviceModelRef")).get("name") or "")


def info_of(device: JSON, model: JSON) -> DeviceInfo:
    meta, spec = _map(device.get("metadata")), _map(device.get("spec"))
    status = _map(device.get("status"))
    report = _map(spec.get("stateReport"))
    device_cycle = report.get("reportCycle", status.get("reportCycle"))
    device_to_cloud = report.get("reportToCloud", status.get("reportToCloud"))
    cycles: dict[str, int] = {}
    hidden: set[str] = set()
    desired: dict[str, str | None] = {}
    for item in _list(spec.get("properties")):
        prop = _map(item)
        key = prop.get("name")
        if not isinstance(key, str):
            continue
        cycle = prop.get("reportCycle", device_cycle)
        if isinstance(cycle, int) and cycle > 0:
            cycles[key] = cycle
        if prop.get("reportToCloud", device_to_cloud) is False:
            hidden.add(key)
        value = _map(prop.get("desired")).get("value")
        desired[key] = value if isinstance(value, str) and value else None
    model_spec = _map(model.get("spec"))
    attributes = {
        "model": str(_map(model.get("metadata")).get("name") or ""),
        "protocol": str(_map(spec.get("protocol")).get("protocolName") or ""),
    }
    return DeviceInfo(
        ref=device_ref(str(meta.get("namespace") or "default"), str(meta.get("name") or "")),
        protocol=attributes["protocol"] or str(model_spec.get("protocol") or ""),
        description=str(_map(meta.get("annotations")).get("description") or ""),
        attributes=attributes,
        cycles_ms=cycles,
        hidden=frozenset(hidden),
        desired=desired,
        device=device,
        model=model,
    )
