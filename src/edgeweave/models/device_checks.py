"""Checks that need a Device together with its DeviceModel, and property value parsing.

The API fetches the DeviceModel a Device names and calls :func:`validate_device_against_model`
with both plain dicts (already shape-validated). Values travel as strings in KubeEdge, so
:func:`parse_property_value` is also what the twin uses to read them. Pure: no I/O, no store.
"""

from __future__ import annotations

from typing import Any

from edgeweave.errors import InvalidObject
from edgeweave.models.propvalue import PROPERTY_TYPES, parse_property_value
from edgeweave.models.validation import invalid_from_problems

__all__ = ["PROPERTY_TYPES", "parse_property_value", "validate_device_against_model"]


def _bound(prop: dict[str, Any], key: str) -> float | None:
    raw = prop.get(key)
    if raw is None or raw == "" or isinstance(raw, bool):
        return None
    try:
        return float(parse_property_value(prop.get("type", ""), str(raw)))
    except ValueError:
        return None


def _check_desired(
    index: int, prop: dict[str, Any], model_prop: dict[str, Any], model_name: str
) -> list[tuple[str, str]]:
    name = prop.get("name")
    desired = prop.get("desired") or {}
    value = desired.get("value")
    if value is None or value == "":  # an empty desired value means "none"
        return []
    where = f"spec.properties[{index}].desired"
    if model_prop.get("accessMode") == "ReadOnly":
        return [
            (
                where,
                f"property {name!r} is ReadOnly in DeviceModel {model_name!r} and takes no "
                "desired value; remove desired (only ReadWrite properties can be set)",
            )
        ]
    prop_type = str(model_prop.get("type", ""))
    try:
        parsed = parse_property_value(prop_type, str(value))
    except ValueError as e:
        return [
            (f"{where}.value", f"{e}; DeviceModel {model_name!r} declares {name!r} as {prop_type}")
        ]
    if isinstance(parsed, int | float) and not isinstance(parsed, bool):
        low, high = _bound(model_prop, "minimum"), _bound(model_prop, "maximum")
        if (low is not None and parsed < low) or (high is not None and parsed > high):
            limits = f"{model_prop.get('minimum', '-∞')}..{model_prop.get('maximum', '∞')}"
            return [(f"{where}.value", f"{value!r} is outside {name!r}'s range {limits}")]
    return []


def validate_device_against_model(device: dict[str, Any], model: dict[str, Any] | None) -> None:
    """Check ``device`` against the DeviceModel it names; raises :class:`InvalidObject`.

    ``model`` is the fetched DeviceModel, or ``None`` when it does not exist.
    """
    meta = device.get("metadata") or {}
    spec = device.get("spec") or {}
    namespace = meta.get("namespace") or "default"
    what = f"Device {namespace}/{meta.get('name', '?')}"
    ref = (spec.get("deviceModelRef") or {}).get("name")
    if model is None:
        raise InvalidObject(
            f"{what}: DeviceModel {ref!r} does not exist in namespace {namespace!r}; "
            "create the DeviceModel first or fix spec.deviceModelRef.name",
            field="spec.deviceModelRef.name",
        )
    model_name = (model.get("metadata") or {}).get("name")
    if model_name != ref:
        raise InvalidObject(
            f"{what} refers to DeviceModel {ref!r} but was checked against {model_name!r}",
            field="spec.deviceModelRef.name",
        )
    model_props = {p.get("name"): p for p in (model.get("spec") or {}).get("properties") or []}
    known = ", ".join(sorted(str(n) for n in model_props)) or "none"
    problems: list[tuple[str, str]] = []
    for i, prop in enumerate(spec.get("properties") or []):
        model_prop = model_props.get(prop.get("name"))
        if model_prop is None:
            problems.append(
                (
                    f"spec.properties[{i}].name",
                    f"DeviceModel {ref!r} has no property {prop.get('name')!r} "
                    f"(it defines: {known})",
                )
            )
            continue
        problems += _check_desired(i, prop, model_prop, str(ref))
    for i, method in enumerate(spec.get("methods") or []):
        for j, prop_name in enumerate(method.get("propertyNames") or []):
            if prop_name not in model_props:
                problems.append(
                    (
                        f"spec.methods[{i}].propertyNames[{j}]",
                        f"DeviceModel {ref!r} has no property {prop_name!r} (it defines: {known})",
                    )
                )
    if problems:
        raise invalid_from_problems(problems, what)
