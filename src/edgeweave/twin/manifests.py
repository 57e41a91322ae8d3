"""A fresh twin from a KubeEdge Device and its DeviceModel (COMPAT.md §1).

The cloud builds a device's first twin from the manifests, and the agent does the same when
a device arrives in its membership: one property per ``Device.spec.properties[]`` entry,
typed by the model (``INT`` -> ``int``, ``DOUBLE`` -> ``float``, ...; ``ReadOnly`` properties
take no expected value), with each non-empty ``desired.value`` as the expected value at
cloud version 1.

Takes the plain dicts the store holds (already validated by
:func:`edgeweave.models.device_checks.validate_device_against_model`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeweave.twin import values
from edgeweave.twin.errors import bad_request
from edgeweave.twin.state import DeviceTwin, apply_cloud_desired, define_property
from edgeweave.twin.topics import device_ref


def _list(obj: Mapping[str, Any] | None, key: str) -> list[Any]:
    items = (obj or {}).get(key)
    return items if isinstance(items, list) else []


def twin_from_device(
    device: Mapping[str, Any], model: Mapping[str, Any], *, now_ms: int
) -> DeviceTwin:
    """The twin of ``device``; a 400 TwinError if a property name or value is unusable."""
    meta = device.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("Device has no metadata.name")
    twin = DeviceTwin(device_ref(str(meta.get("namespace") or "default"), name))
    model_props = {
        p.get("name"): p for p in _list(model.get("spec"), "properties") if isinstance(p, dict)
    }
    desired: dict[str, str | None] = {}
    for prop in _list(device.get("spec"), "properties"):
        key = prop.get("name") if isinstance(prop, dict) else None
        if not isinstance(key, str):
            continue
        model_prop = model_props.get(key) or {}
        twin = define_property(
            twin,
            key,
            values.twin_type_of_model(str(model_prop.get("type", "STRING"))),
            read_only=model_prop.get("accessMode") == "ReadOnly",
        )
        value = (prop.get("desired") or {}).get("value")
        if isinstance(value, str) and value:
            desired[key] = value
    return apply_cloud_desired(twin, desired, event_id="", now_ms=now_ms).twin
