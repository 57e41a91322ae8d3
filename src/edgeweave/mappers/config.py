"""The mapper's config file: which devices to serve, read into typed, checked values.

The agent writes the file atomically and says ``membership/updated`` when it changed::

    {"node": "node-a", "protocol": "modbus",
     "devices": [{"device": <Device, devices.kubeedge.io/v1beta1>, "model": <its DeviceModel>}]}

Per device this keeps its id (``namespace/name``), ``spec.protocol.configData`` and, per
``spec.properties[]`` entry, what the runner needs: the model's ``type`` and ``accessMode``,
``collectCycle`` (milliseconds, default 1000), ``reportCycle`` (milliseconds, default the
collect cycle), ``reportToCloud`` (default true) and ``visitors.configData`` (the device's, else
the model property's ``visitors``) for the driver to interpret.

A file that cannot be used at all is a :class:`~edgeweave.errors.ConfigError`; a device that
cannot be used is left out and its problem listed in :attr:`MapperConfig.problems`, so one bad
device does not stop the others. Every message names the file and the field path
(``devices[0].device.spec.properties[1].collectCycle``). Must not interpret protocol
``configData`` (the drivers do) or touch the bus.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from edgeweave.errors import ConfigError
from edgeweave.models.device_checks import PROPERTY_TYPES
from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin.topics import device_ref
from edgeweave.twin.values import twin_type_of_model

DEFAULT_COLLECT_CYCLE_MS: Final = 1000
MAX_CYCLE_MS: Final = 7 * 24 * 3600 * 1000
MAX_CONFIG_BYTES: Final = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MapperSettings:
    """How the runner behaves (not from the file: the CLI or a test sets these)."""

    call_timeout_s: float = 10.0  # any one driver call; overrunning counts as unavailable
    reconnect_base_s: float = 0.5  # device reconnect backoff: first delay ...
    reconnect_cap_s: float = 30.0  # ... and the most it grows to
    bus_reconnect_base_s: float = 0.2  # broker reconnect backoff
    bus_reconnect_cap_s: float = 5.0


@dataclass(frozen=True, slots=True)
class PropertyConfig:
    name: str
    model_type: str  # the DeviceModel type, upper case: INT, FLOAT, DOUBLE, BOOLEAN, STRING, ...
    twin_type: str  # metadata.type on the bus: int, float, boolean, string
    read_write: bool
    collect_cycle_ms: int
    report_cycle_ms: int
    report_to_cloud: bool
    visitor: Mapping[str, Any]  # visitors.configData, for the driver
    where: str  # field path of this property in the file, for error messages
    minimum: float | None = None  # the model's bounds, when numeric
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    namespace: str
    name: str
    model_name: str
    protocol: str
    config_data: Mapping[str, Any]  # spec.protocol.configData, for the driver
    properties: tuple[PropertyConfig, ...]
    where: str  # "devices[i].device"
    fingerprint: str = ""  # changes whenever the Device or its model changes

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ref(self) -> ResourceRef:
        return device_ref(self.namespace, self.name)

    def property(self, name: str) -> PropertyConfig | None:
        for prop in self.properties:
            if prop.name == name:
                return prop
        return None


@dataclass(frozen=True, slots=True)
class MapperConfig:
    node: str
    protocol: str
    devices: tuple[DeviceConfig, ...]
    problems: tuple[str, ...] = ()  # one message per device left out


def load_mapper_config(path: Path) -> MapperConfig:
    """The config file at ``path``; ConfigError when it cannot be read or used at all."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read the mapper config {path}: {e.strerror or e}") from e
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from e
    return parse_mapper_config(doc, source=str(path))


def parse_mapper_config(doc: Any, *, source: str = "config") -> MapperConfig:
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: must be a JSON object with node, protocol and devices")
    node = doc.get("node")
    protocol = doc.get("protocol")
    entries = doc.get("devices", [])
    if not isinstance(node, str) or not node:
        raise ConfigError(f"{source}: node must be a non-empty string")
    if not isinstance(protocol, str) or not protocol:
        raise ConfigError(f"{source}: protocol must be a non-empty string")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: devices must be an array of {{device, model}}")
    devices: list[DeviceConfig] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        try:
            device = parse_device_entry(entry, f"devices[{i}]", protocol)
            if device.id in seen:
                raise ConfigError(f"devices[{i}]: device {device.id} is listed twice")
        except ConfigError as e:
            problems.append(f"{source}: {e.message}")
            continue
        seen.add(device.id)
        devices.append(device)
    return MapperConfig(node, protocol, tuple(devices), tuple(problems))


def config_from_manifests(
    objects: Sequence[Mapping[str, Any]], *, node: str, protocol: str
) -> dict[str, Any]:
    """The config file the agent would write for ``node``'s ``protocol`` devices among
    ``objects`` (Device and DeviceModel manifests); for trying a mapper without an agent."""
    models = {(_namespace(o), _name(o)): o for o in objects if o.get("kind") == "DeviceModel"}
    entries: list[dict[str, Any]] = []
    for obj in objects:
        spec = obj.get("spec")
        if obj.get("kind") != "Device" or not isinstance(spec, dict):
            continue
        proto = _mapping(spec.get("protocol"))
        if spec.get("nodeName") != node or proto.get("protocolName") != protocol:
            continue
        ref = _mapping(spec.get("deviceModelRef"))
        model = models.get((_namespace(obj), str(ref.get("name"))))
        if model is None:
            raise ConfigError(
                f"Device {_namespace(obj)}/{_name(obj)}: its DeviceModel {ref.get('name')!r} "
                "is not among the manifests given"
            )
        entries.append({"device": dict(obj), "model": dict(model)})
    return {"node": node, "protocol": protocol, "devices": entries}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, dict) else ""


def _namespace(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("namespace") or "default") if isinstance(meta, dict) else "default"


def parse_device_entry(entry: Any, where: str, protocol: str) -> DeviceConfig:
    """One ``{"device", "model"}`` entry; ConfigError naming the field."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be an object with device and model")
    device = _object(entry, "device", where)
    model = _object(entry, "model", where)
    dwhere = f"{where}.device"
    meta = _object(device, "metadata", dwhere)
    name = _text(meta, "name", f"{dwhere}.metadata")
    namespace = meta.get("namespace") or "default"
    if not isinstance(namespace, str):
        raise ConfigError(f"{dwhere}.metadata.namespace: must be a string")
    spec = _object(device, "spec", dwhere)
    proto = _object(spec, "protocol", f"{dwhere}.spec")
    proto_name = _text(proto, "protocolName", f"{dwhere}.spec.protocol")
    if proto_name != protocol:
        raise ConfigError(
            f"{dwhere}.spec.protocol.protocolName: {proto_name!r}, but this is the "
            f"{protocol!r} mapper"
        )
    config_data = _optional_object(proto, "configData", f"{dwhere}.spec.protocol")
    mmeta = model.get("metadata")
    model_name = str(mmeta.get("name") or "") if isinstance(mmeta, dict) else ""
    model_props = _model_properties(model, f"{where}.model", model_name)
    raw_props = spec.get("properties") or []
    if not isinstance(raw_props, list):
        raise ConfigError(f"{dwhere}.spec.properties: must be an array")
    props: list[PropertyConfig] = []
    for j, raw in enumerate(raw_props):
        prop = _property(raw, f"{dwhere}.spec.properties[{j}]", model_props, model_name)
        if any(p.name == prop.name for p in props):
            raise ConfigError(f"{dwhere}.spec.properties[{j}]: {prop.name!r} is listed twice")
        props.append(prop)
    fingerprint = hashlib.sha256(
        json.dumps([device.get("spec"), model.get("spec")], sort_keys=True, default=str).encode()
    ).hexdigest()
    return DeviceConfig(
        namespace=namespace,
        name=name,
        model_name=model_name,
        protocol=proto_name,
        config_data=config_data,
        properties=tuple(props),
        where=dwhere,
        fingerprint=fingerprint,
    )


def _model_properties(
    model: Mapping[str, Any], where: str, model_name: str
) -> dict[str, Mapping[str, Any]]:
    spec = _object(model, "spec", where)
    raw = spec.get("properties") or []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}.spec.properties: must be an array")
    found: dict[str, Mapping[str, Any]] = {}
    for k, prop in enumerate(raw):
        if not isinstance(prop, dict) or not isinstance(prop.get("name"), str):
            raise ConfigError(f"{where}.spec.properties[{k}]: must be an object with a name")
        kind = str(prop.get("type", "")).upper()
        if kind not in PROPERTY_TYPES:
            raise ConfigError(
                f"{where}.spec.properties[{k}].type: {prop.get('type')!r} in DeviceModel "
                f"{model_name!r} is not one of {', '.join(PROPERTY_TYPES)}"
            )
        found[prop["name"]] = prop
    return found


def _property(
    raw: Any, where: str, model_props: Mapping[str, Mapping[str, Any]], model_name: str
) -> PropertyConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be an object")
    name = _text(raw, "name", where)
    model_prop = model_props.get(name)
    if model_prop is None:
        raise ConfigError(f"{where}.name: {name!r} is not a property of DeviceModel {model_name!r}")
    model_type = str(model_prop.get("type")).upper()
    collect_ms = _cycle(raw, "collectCycle", where, DEFAULT_COLLECT_CYCLE_MS)
    report_ms = _cycle(raw, "reportCycle", where, collect_ms)
    report = raw.get("reportToCloud", True)
    if report is None:
        report = True
    if not isinstance(report, bool):
        raise ConfigError(f"{where}.reportToCloud: must be true or false")
    visitor = _visitor(raw, where) or _visitor(model_prop, f"model property {name!r}") or {}
    return PropertyConfig(
        name=name,
        model_type=model_type,
        twin_type=twin_type_of_model(model_type),
        read_write=model_prop.get("accessMode") == "ReadWrite",
        collect_cycle_ms=collect_ms,
        report_cycle_ms=report_ms,
        report_to_cloud=report,
        visitor=visitor,
        where=f"{where}.visitors.configData",
        minimum=_bound(model_prop.get("minimum")),
        maximum=_bound(model_prop.get("maximum")),
    )


def _visitor(obj: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    visitors = obj.get("visitors")
    if visitors is None:
        return None
    if not isinstance(visitors, dict):
        raise ConfigError(f"{where}.visitors: must be an object")
    data = visitors.get("configData")
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}.visitors.configData: must be an object")
    return data


def _cycle(obj: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = obj.get(key)
    if value is None or value == 0:  # KubeEdge treats 0 as "not set"
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_CYCLE_MS:
        raise ConfigError(
            f"{where}.{key}: must be a positive integer number of milliseconds "
            f"(at most {MAX_CYCLE_MS}), got {value!r}"
        )
    return value


def _bound(raw: Any) -> float | None:
    if isinstance(raw, bool) or raw is None or raw == "":
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _object(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.{key}: must be an object")
    return value


def _optional_object(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.{key}: must be an object")
    return value


def _text(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: must be a non-empty string")
    return value
