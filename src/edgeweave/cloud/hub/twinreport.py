"""Reading one ``device.twin`` upstream payload: strict shape checks, then plain values.

The agent reports a device's twins through its outbox (docs/devices.md, "Twins from the
cloud")::

    {"device": {"namespace", "name"}, "state"?, "lastOnlineTime"?,
     "twins": [{"propertyName", "reported"?: {"value", "metadata"?}, "observedDesired"?: ...}],
     "samples"?: [{"property", "value", "timestamp": <Unix ms>}],
     "localDesired"?: [{"property", "value", "base": <str|null>, "timestamp": <Unix ms>}]}

The payload comes from a node and is not trusted: every field is type-checked, strings are
bounded (values at most 512 characters, property names ``^[a-zA-Z0-9-_.,:/@#]{1,128}$``), lists
hold at most :data:`MAX_ITEMS` entries, and the status written to the Device is rebuilt from
the checked fields only (unknown keys are ignored, never stored). Anything else raises
:class:`~edgeweave.errors.BadRequest` with a short reason.

:func:`encode_local_desired` / :func:`decode_local_desired` keep ``localDesired`` items as
text in the store until the cloud adopted them (:mod:`.twinadopt`).

Pure: must not do I/O, decide whether the node may report about the device (the translator
does) or raise anything but ``BadRequest`` for any JSON value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeweave.cloud.store.base import JSONObject
from edgeweave.errors import BadRequest
from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin.report import LocalDesired

MAX_ITEMS = 1024  # twins, samples or localDesired items in one entry
MAX_VALUE_CHARS = 512
MAX_NAME_CHARS = 253  # a Kubernetes object name or namespace
MAX_METADATA_KEYS = 16
MAX_TIMESTAMP_MS = 2**53  # JSON numbers stay exact below this
_PROPERTY_RE = re.compile(r"[a-zA-Z0-9_.,:/@#-]{1,128}")
_TWIN_VALUES = ("reported", "observedDesired")


@dataclass(frozen=True, slots=True)
class TwinReport:
    device: ResourceRef
    status: JSONObject  # the Device status merge patch: twins (whole list), state, lastOnlineTime
    samples: tuple[tuple[str, int, str], ...]  # (property, time in Unix ms, value), oldest first
    local_desired: tuple[LocalDesired, ...]


def _fail(message: str) -> BadRequest:
    return BadRequest(message)


def _text(value: Any, where: str, limit: int = MAX_VALUE_CHARS) -> str:
    if type(value) is not str:
        raise _fail(f"{where} must be a string")
    if len(value) > limit:
        raise _fail(f"{where} is longer than {limit} characters")
    return value


def _optional_text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return None if value is None else _text(value, key)


def _property(value: Any, where: str) -> str:
    if type(value) is not str or _PROPERTY_RE.fullmatch(value) is None:
        raise _fail(f"{where} is not a property name (1-128 of a-z A-Z 0-9 - _ . , : / @ #)")
    return value


def _timestamp(value: Any, where: str) -> int:
    if type(value) is not int or not 0 <= value < MAX_TIMESTAMP_MS:
        raise _fail(f"{where} must be an integer of Unix milliseconds")
    return value


def _items(payload: dict[str, Any], key: str, *, required: bool = False) -> list[Any]:
    value = payload.get(key)
    if value is None and not required:
        return []
    if type(value) is not list:
        raise _fail(f"{key} must be a list")
    if len(value) > MAX_ITEMS:
        raise _fail(f"{key} has more than {MAX_ITEMS} items")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _fail(f"{where} must be an object")
    return value


def _twin_value(value: Any, where: str) -> JSONObject:
    """``{"value", "metadata"?}`` with metadata a small map of strings."""
    raw = _object(value, where)
    out: JSONObject = {"value": _text(raw.get("value"), f"{where}.value")}
    metadata = raw.get("metadata")
    if metadata is not None:
        meta = _object(metadata, f"{where}.metadata")
        if len(meta) > MAX_METADATA_KEYS:
            raise _fail(f"{where}.metadata has more than {MAX_METADATA_KEYS} keys")
        out["metadata"] = {
            _text(k, f"{where}.metadata key", 128): _text(v, f"{where}.metadata.{k}")
            for k, v in meta.items()
        }
    return out


def _twins(payload: dict[str, Any]) -> list[JSONObject]:
    twins: list[JSONObject] = []
    seen: set[str] = set()
    for i, item in enumerate(_items(payload, "twins", required=True)):
        raw = _object(item, f"twins[{i}]")
        name = _property(raw.get("propertyName"), f"twins[{i}].propertyName")
        if name in seen:
            raise _fail(f"twins[{i}]: property {name!r} is listed twice")
        seen.add(name)
        twin: JSONObject = {"propertyName": name}
        for key in _TWIN_VALUES:
            if raw.get(key) is not None:
                twin[key] = _twin_value(raw[key], f"twins[{i}].{key}")
        twins.append(twin)
    return twins


def _device(payload: dict[str, Any]) -> ResourceRef:
    raw = _object(payload.get("device"), "device")
    namespace = _text(raw.get("namespace"), "device.namespace", MAX_NAME_CHARS)
    name = _text(raw.get("name"), "device.name", MAX_NAME_CHARS)
    if not namespace or not name:
        raise _fail("device needs a namespace and a name")
    return ResourceRef("Device", namespace, name)


def parse_twin_report(payload: Any) -> TwinReport:
    """The checked content of a ``device.twin`` payload; BadRequest when malformed."""
    body = _object(payload, "the payload")
    device = _device(body)
    status: JSONObject = {"twins": _twins(body)}
    for key in ("state", "lastOnlineTime"):
        value = _optional_text(body, key)
        if value is not None:
            status[key] = value
    samples = []
    for i, item in enumerate(_items(body, "samples")):
        raw = _object(item, f"samples[{i}]")
        samples.append(
            (
                _property(raw.get("property"), f"samples[{i}].property"),
                _timestamp(raw.get("timestamp"), f"samples[{i}].timestamp"),
                _text(raw.get("value"), f"samples[{i}].value"),
            )
        )
    local = _local_desired(_items(body, "localDesired"))
    return TwinReport(device, status, tuple(samples), tuple(local))


def _local_desired(items: list[Any]) -> list[LocalDesired]:
    local = []
    for i, item in enumerate(items):
        raw = _object(item, f"localDesired[{i}]")
        base = raw.get("base")
        local.append(
            LocalDesired(
                property=_property(raw.get("property"), f"localDesired[{i}].property"),
                value=_text(raw.get("value"), f"localDesired[{i}].value"),
                base=None if base is None else _text(base, f"localDesired[{i}].base"),
                timestamp_ms=_timestamp(raw.get("timestamp"), f"localDesired[{i}].timestamp"),
            )
        )
    return local


def encode_local_desired(items: Sequence[LocalDesired]) -> str:
    """``items`` as JSON text in the report's ``localDesired`` shape (kept in the store until
    the cloud adopted them)."""
    return json.dumps(
        [
            {"property": i.property, "value": i.value, "base": i.base, "timestamp": i.timestamp_ms}
            for i in items
        ],
        separators=(",", ":"),
    )


def decode_local_desired(text: str) -> list[LocalDesired]:
    """What :func:`encode_local_desired` wrote, checked again; BadRequest when malformed."""
    try:
        items = json.loads(text)
    except ValueError as e:
        raise _fail(f"localDesired is not JSON: {e}") from None
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise _fail(f"localDesired must be a list of at most {MAX_ITEMS} items")
    return _local_desired(items)
