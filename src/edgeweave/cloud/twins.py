"""A Device's twins as the cloud sees them: desired values in ``spec``, reports in ``status``.

Shared by the twin API (:mod:`edgeweave.cloud.api.twins`) and the hub's adoption of desired
values set on the edge (:mod:`edgeweave.cloud.hub.twinadopt`):

- :func:`desired_values` / :func:`with_desired` read and write
  ``spec.properties[].desired.value`` (a property the model has but the Device does not list
  yet is appended; ``None`` removes the desired value);
- :func:`desired_problems` checks new desired values against the DeviceModel with
  :func:`~edgeweave.models.device_checks.validate_device_against_model`, one message per
  property (unknown property, ReadOnly, wrong type, out of range);
- :func:`twin_view` joins spec, status and model into the view ``GET .../twin`` returns.

Pure: no I/O and no store; must not mutate its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeweave.cloud.store.base import JSONObject
from edgeweave.errors import InvalidObject
from edgeweave.models.device_checks import validate_device_against_model

DEVICE, DEVICE_MODEL = "Device", "DeviceModel"
DEVICES_API_VERSION = "devices.kubeedge.io/v1beta1"


def _spec(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    spec = obj.get("spec") if obj is not None else None
    return spec if isinstance(spec, dict) else {}


def _list_of_dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def model_name(device: Mapping[str, Any]) -> str | None:
    ref = _spec(device).get("deviceModelRef")
    name = ref.get("name") if isinstance(ref, dict) else None
    return name if isinstance(name, str) and name else None


def desired_values(device: Mapping[str, Any]) -> dict[str, str | None]:
    """Property name → its desired value (None when it has none), in spec order."""
    out: dict[str, str | None] = {}
    for prop in _list_of_dicts(_spec(device).get("properties")):
        name = prop.get("name")
        if not isinstance(name, str):
            continue
        desired = prop.get("desired")
        value = desired.get("value") if isinstance(desired, dict) else None
        out[name] = value if isinstance(value, str) and value != "" else None
    return out


def with_desired(device: Mapping[str, Any], values: Mapping[str, str | None]) -> JSONObject:
    """A copy of ``device`` whose properties carry ``values`` as desired values (``desired``
    metadata is kept; None removes ``desired``; unlisted properties are appended).

    Only what may change is copied — the object, its metadata, spec, property list and
    properties — and the rest is shared with ``device``: a deep copy of every Device cost
    more than the rest of a ``twin set``."""
    out = dict(device)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = dict(meta)
    spec = out["spec"] = dict(_spec(device))
    props = spec.get("properties")
    props = spec["properties"] = (
        [dict(p) if isinstance(p, dict) else p for p in props] if isinstance(props, list) else []
    )
    by_name = {p.get("name"): p for p in props if isinstance(p, dict)}
    for name, value in values.items():
        prop = by_name.get(name)
        if prop is None:
            if value is None:
                continue
            prop = by_name[name] = {"name": name}
            props.append(prop)
        if value is None:
            prop.pop("desired", None)
            continue
        desired = prop.get("desired")
        prop["desired"] = {**(desired if isinstance(desired, dict) else {}), "value": value}
    return out


def desired_problems(
    device: Mapping[str, Any], model: Mapping[str, Any] | None, values: Mapping[str, str | None]
) -> list[str]:
    """Why the DeviceModel refuses some of ``values`` (empty: all fine), one line per
    property, each naming it. Clearing a value (None) is always fine."""
    meta = device.get("metadata")
    problems: list[str] = []
    for name, value in values.items():
        if value is None:
            continue
        probe = {
            "metadata": meta if isinstance(meta, dict) else {},
            "spec": {
                "deviceModelRef": {"name": model_name(device)},
                "properties": [{"name": name, "desired": {"value": value}}],
            },
        }
        try:
            validate_device_against_model(probe, dict(model) if model is not None else None)
        except InvalidObject as e:
            # errors are "spec.properties[0]...: message"; the path names the probe, not the
            # caller's input, so keep the message only
            text = "; ".join(err.split(": ", 1)[-1] for err in e.errors)
            problems.append(text if repr(name) in text else f"property {name!r}: {text}")
    return problems


def _twin_value(twin: Mapping[str, Any], key: str) -> tuple[str | None, int | None]:
    """``(value, timestamp in Unix ms)`` of ``twin[key]`` (reported / observedDesired)."""
    raw = twin.get(key)
    if not isinstance(raw, dict):
        return None, None
    value = raw.get("value")
    metadata = raw.get("metadata")
    stamp = metadata.get("timestamp") if isinstance(metadata, dict) else None
    when: int | None = None
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        when = stamp
    elif isinstance(stamp, str) and stamp.isdigit():
        when = int(stamp)
    return (value if isinstance(value, str) else None), when


def twin_view(device: Mapping[str, Any], model: Mapping[str, Any] | None) -> JSONObject:
    """What ``GET .../devices/NAME/twin`` answers: per property its model type and access
    mode, the desired value (spec), and the reported and observed desired values (status)."""
    meta = device.get("metadata") if isinstance(device.get("metadata"), dict) else {}
    spec = _spec(device)
    status = device.get("status") if isinstance(device.get("status"), dict) else {}
    assert isinstance(meta, dict) and isinstance(status, dict)
    model_props = {
        p.get("name"): p for p in _list_of_dicts(_spec(model).get("properties")) if p.get("name")
    }
    desired = desired_values(device)
    twins = {
        t.get("propertyName"): t
        for t in _list_of_dicts(status.get("twins"))
        if isinstance(t.get("propertyName"), str)
    }
    names: list[str] = []
    for name in (*model_props, *desired, *twins):
        if isinstance(name, str) and name not in names:
            names.append(name)
    properties = []
    for name in names:
        model_prop = model_props.get(name) or {}
        twin = twins.get(name) or {}
        reported, reported_at = _twin_value(twin, "reported")
        observed, _ = _twin_value(twin, "observedDesired")
        access = model_prop.get("accessMode") or ("ReadWrite" if model_prop else None)
        properties.append(
            {
                "name": name,
                "type": model_prop.get("type"),
                "accessMode": access,
                "desired": desired.get(name),
                "reported": reported,
                "reportedAt": reported_at,
                "observedDesired": observed,
            }
        )
    node = spec.get("nodeName")
    return {
        "apiVersion": DEVICES_API_VERSION,
        "kind": "DeviceTwin",
        "device": {
            "namespace": meta.get("namespace") or "default",
            "name": meta.get("name"),
            "model": model_name(device),
            "nodeName": node if isinstance(node, str) else None,
            "resourceVersion": meta.get("resourceVersion"),
        },
        "properties": properties,
        "state": status.get("state"),
        "lastOnlineTime": status.get("lastOnlineTime"),
    }
