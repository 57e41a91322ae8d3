"""KubeEdge twin payloads (COMPAT.md §2): bytes to typed messages and back, for every topic.

:func:`decode` reads the payload of a topic's action into a message class of
:mod:`edgeweave.twin.messages`; :func:`encode` writes one. Decoding is strict about what it
reads and lenient about what it ignores: field names are matched case-insensitively, unknown
fields are skipped, and property names and values are checked against the limits of
:mod:`edgeweave.twin.values` (keys ``^[a-zA-Z0-9-_.,:/@#]{1,128}$``, values of the same
characters and at most 512 of them, at most :data:`MAX_PROPERTIES` properties, at most
:data:`~edgeweave.twin.wire.MAX_PAYLOAD_BYTES` bytes). Any bad input raises a 400
:class:`~edgeweave.twin.errors.TwinError` and nothing else.

A value's fit to its type (``"abc"`` for an ``int``) is checked here only when the message
itself names the type; the twin checks it against the property's stored type
(:mod:`edgeweave.twin.state`). Must not know about twins, versions rules or the broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from edgeweave.twin import values
from edgeweave.twin.errors import TwinError, bad_request
from edgeweave.twin.messages import (
    STATES,
    DocumentEntry,
    ErrorResult,
    MembershipDevice,
    MembershipGet,
    MembershipGetResult,
    MembershipUpdated,
    Message,
    MsgTwin,
    StateUpdate,
    StateUpdateResult,
    TwinDelta,
    TwinDocument,
    TwinGet,
    TwinGetResult,
    TwinUpdate,
    TwinUpdateResult,
    TwinValue,
    Versions,
)
from edgeweave.twin.topics import DeviceAction, NodeAction
from edgeweave.twin.wire import MAX_PAYLOAD_BYTES, Fields, dump, element, load_object

MAX_PROPERTIES: Final = 1024
MAX_DEVICES: Final = 10_000
MAX_TEXT_CHARS: Final = 1024
MAX_VERSION: Final = 2**63 - 1

# ---------------------------------------------------------------- decoding


def _versions(fields: Fields | None) -> Versions | None:
    if fields is None:
        return None
    return Versions(
        cloud=fields.integer("cloud", high=MAX_VERSION) or 0,
        edge=fields.integer("edge", high=MAX_VERSION) or 0,
    )


def _twin_value(fields: Fields | None, value_type: str, prop: str) -> TwinValue | None:
    if fields is None:
        return None
    value = fields.text("value", max_chars=values.MAX_VALUE_CHARS)
    if value is None:
        raise bad_request(f"{fields.where}.value is missing (values travel as strings)")
    meta = fields.object("metadata")
    return TwinValue(
        value=values.check_value(value, value_type, prop),
        timestamp_ms=meta.timestamp_ms() if meta is not None else None,
    )


def decode_msg_twin(fields: Fields, prop: str) -> MsgTwin:
    """One property's MsgTwin (``prop`` already checked)."""
    meta = fields.object("metadata")
    raw_type = meta.text("type", max_chars=32) if meta is not None else None
    value_type = values.check_type(raw_type, prop) if raw_type is not None else None
    return MsgTwin(
        expected=_twin_value(fields.object("expected"), value_type or values.STRING, prop),
        actual=_twin_value(fields.object("actual"), value_type or values.STRING, prop),
        optional=fields.boolean("optional"),
        type=value_type,
        expected_version=_versions(fields.object("expected_version")),
        actual_version=_versions(fields.object("actual_version")),
    )


def _properties(raw: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if len(raw) > MAX_PROPERTIES:
        raise bad_request(f"{where} has {len(raw)} properties; at most {MAX_PROPERTIES}")
    for key in raw:
        values.check_key(key)
    return dict(raw)


def decode_twin_map(raw: Mapping[str, Any] | None, where: str = "twin") -> dict[str, MsgTwin]:
    return {
        key: decode_msg_twin(element(item, f"{where}.{key}"), key)
        for key, item in _properties(raw, where).items()
    }


def _document(raw: Mapping[str, Any] | None) -> dict[str, DocumentEntry]:
    entries: dict[str, DocumentEntry] = {}
    for key, item in _properties(raw, "twin").items():
        doc = element(item, f"twin.{key}")
        last = doc.object("last")
        current = doc.object("current")
        if current is None:
            raise bad_request(f"twin.{key}.current is missing")
        entries[key] = DocumentEntry(
            last=decode_msg_twin(last, key) if last is not None else None,
            current=decode_msg_twin(current, key),
        )
    return entries


def _delta(raw: Mapping[str, Any] | None) -> dict[str, str]:
    delta: dict[str, str] = {}
    for key, value in _properties(raw, "delta").items():
        if not isinstance(value, str):
            raise bad_request(f"delta.{key} must be a string")
        delta[key] = values.check_value(value, values.STRING, key)
    return delta


def _state(fields: Fields, name: str) -> str:
    state = fields.required_text(name, max_chars=32).lower()
    if state not in STATES:
        raise bad_request(f"{name} must be one of {', '.join(STATES)}, got {state!r}")
    return state


def _attributes(raw: Mapping[str, Any] | None, where: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key, item in _properties(raw, where).items():
        value = item
        if isinstance(item, dict):  # KubeEdge's MsgAttr: {"value", "optional", "metadata"}
            value = element(item, f"{where}.{key}").text("value", max_chars=MAX_TEXT_CHARS)
        if not isinstance(value, str):
            raise bad_request(f"{where}.{key} must be a string or {{'value': string}}")
        attributes[key] = value
    return attributes


def _device(fields: Fields) -> MembershipDevice:
    return MembershipDevice(
        id=fields.required_text("id", max_chars=MAX_TEXT_CHARS),
        name=fields.text("name", max_chars=MAX_TEXT_CHARS, default="") or "",
        description=fields.text("description", max_chars=MAX_TEXT_CHARS, default="") or "",
        state=fields.text("state", max_chars=32, default="unknown") or "unknown",
        last_online=fields.text("last_online", max_chars=64, default="") or "",
        attributes=_attributes(fields.mapping("attributes"), f"{fields.where}.attributes"),
    )


def _devices(fields: Fields, name: str) -> list[MembershipDevice]:
    items = fields.array(name)
    if len(items) > MAX_DEVICES:
        raise bad_request(f"{name} lists {len(items)} devices; at most {MAX_DEVICES}")
    return [_device(element(item, f"{name}[{i}]")) for i, item in enumerate(items)]


def _sent_at(fields: Fields) -> int:
    return fields.timestamp_ms() or 0


def _error(fields: Fields) -> ErrorResult:
    return ErrorResult(
        event_id=fields.event_id(),
        timestamp_ms=_sent_at(fields),
        code=fields.integer("code", low=100, high=599) or 0,
        reason=fields.text("reason", max_chars=MAX_TEXT_CHARS, default="") or "",
    )


def _decode_device(action: DeviceAction, f: Fields) -> Message:
    is_error = f.has("code")
    if action is DeviceAction.TWIN_UPDATE:
        return TwinUpdate(f.event_id(), f.timestamp_ms(), decode_twin_map(f.mapping("twin")))
    if action is DeviceAction.TWIN_GET:
        return TwinGet(f.event_id())
    if action is DeviceAction.STATE_UPDATE:
        return StateUpdate(f.event_id(), f.timestamp_ms(), _state(f, "state"))
    if is_error and action in _RESULTS:
        return _error(f)
    if action is DeviceAction.TWIN_UPDATE_RESULT:
        return TwinUpdateResult(f.event_id(), _sent_at(f), decode_twin_map(f.mapping("twin")))
    if action is DeviceAction.TWIN_GET_RESULT:
        return TwinGetResult(f.event_id(), _sent_at(f), decode_twin_map(f.mapping("twin")))
    if action is DeviceAction.TWIN_DELTA:
        twin = decode_twin_map(f.mapping("twin"))
        return TwinDelta(f.event_id(), _sent_at(f), twin, _delta(f.mapping("delta")))
    if action is DeviceAction.TWIN_DOCUMENT:
        return TwinDocument(f.event_id(), _sent_at(f), _document(f.mapping("twin")))
    device = f.object("device")
    if device is None:
        raise bad_request("device is missing")
    return StateUpdateResult(
        event_id=f.event_id(),
        timestamp_ms=_sent_at(f),
        name=device.text("name", max_chars=MAX_TEXT_CHARS, default="") or "",
        state=_state(device, "state"),
        last_online_time=device.text("lastonlinetime", max_chars=64, default="") or "",
    )


_RESULTS: Final = frozenset(
    {
        DeviceAction.TWIN_UPDATE_RESULT,
        DeviceAction.TWIN_GET_RESULT,
        DeviceAction.STATE_UPDATE_RESULT,
    }
)


def _decode_node(action: NodeAction, f: Fields) -> Message:
    if action is NodeAction.MEMBERSHIP_GET:
        return MembershipGet(f.event_id())
    if action is NodeAction.MEMBERSHIP_GET_RESULT:
        if f.has("code"):
            return _error(f)
        return MembershipGetResult(f.event_id(), _sent_at(f), _devices(f, "devices"))
    return MembershipUpdated(
        f.event_id(), _sent_at(f), _devices(f, "added_devices"), _devices(f, "removed_devices")
    )


def decode(
    action: DeviceAction | NodeAction, payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES
) -> Message:
    """The message a payload on a topic of ``action`` carries; a 400 TwinError if bad."""
    fields = load_object(payload, max_bytes=max_bytes)
    if isinstance(action, DeviceAction):
        return _decode_device(action, fields)
    return _decode_node(action, fields)


def decode_delta_values(
    payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES
) -> dict[str, str] | None:
    """Only the ``delta`` map of a ``twin/update/delta`` payload, checked as :func:`decode`
    checks it; its twin map (which a mapper does not need) is neither decoded nor checked.
    None for an error result (:func:`decode` reads it); a 400 TwinError if bad."""
    fields = load_object(payload, max_bytes=max_bytes)
    if fields.has("code"):
        return None
    fields.event_id()
    return _delta(fields.mapping("delta"))


def event_id_of(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> str:
    """The request's event_id when it can be read at all, else "" (for error results)."""
    try:
        return load_object(payload, max_bytes=max_bytes).event_id()
    except TwinError:  # an unreadable payload simply has no event id
        return ""


# ---------------------------------------------------------------- encoding


def _value_json(value: TwinValue) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value.value}
    if value.timestamp_ms is not None:
        out["metadata"] = {"timestamp": value.timestamp_ms}
    return out


def encode_msg_twin(twin: MsgTwin) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if twin.expected is not None:
        out["expected"] = _value_json(twin.expected)
    if twin.actual is not None:
        out["actual"] = _value_json(twin.actual)
    if twin.optional is not None:
        out["optional"] = twin.optional
    if twin.type is not None:
        out["metadata"] = {"type": twin.type}
    for name, version in (
        ("expected_version", twin.expected_version),
        ("actual_version", twin.actual_version),
    ):
        if version is not None:
            out[name] = {"cloud": version.cloud, "edge": version.edge}
    return out


def _twin_json(twin: Mapping[str, MsgTwin]) -> dict[str, Any]:
    return {key: encode_msg_twin(item) for key, item in twin.items()}


def _device_json(device: MembershipDevice) -> dict[str, Any]:
    return {
        "id": device.id,
        "name": device.name,
        "description": device.description,
        "state": device.state,
        "last_online": device.last_online,
        "attributes": {
            key: {"value": value, "optional": True, "metadata": {"type": values.STRING}}
            for key, value in device.attributes.items()
        },
    }


def to_json(message: Message) -> dict[str, Any]:
    """The JSON object of a message (what :func:`encode` serialises)."""
    if isinstance(message, TwinGet | MembershipGet):
        return {"event_id": message.event_id}
    head: dict[str, Any] = {"event_id": message.event_id, "timestamp": message.timestamp_ms}
    if head["timestamp"] is None:
        del head["timestamp"]
    if isinstance(message, TwinUpdate | TwinUpdateResult | TwinGetResult):
        return {**head, "twin": _twin_json(message.twin)}
    if isinstance(message, TwinDelta):
        return {**head, "twin": _twin_json(message.twin), "delta": dict(message.delta)}
    if isinstance(message, TwinDocument):
        return {
            **head,
            "twin": {
                key: {
                    "last": encode_msg_twin(entry.last) if entry.last is not None else None,
                    "current": encode_msg_twin(entry.current),
                }
                for key, entry in message.twin.items()
            },
        }
    if isinstance(message, StateUpdate):
        return {**head, "state": message.state}
    if isinstance(message, StateUpdateResult):
        device = {
            "name": message.name,
            "state": message.state,
            "lastOnlineTime": message.last_online_time,
        }
        return {**head, "device": device}
    if isinstance(message, MembershipGetResult):
        return {**head, "devices": [_device_json(d) for d in message.devices]}
    if isinstance(message, MembershipUpdated):
        return {
            **head,
            "added_devices": [_device_json(d) for d in message.added_devices],
            "removed_devices": [_device_json(d) for d in message.removed_devices],
        }
    return {**head, "code": message.code, "reason": message.reason}


def encode(message: Message) -> bytes:
    """A message as the compact JSON bytes KubeEdge mappers read."""
    return dump(to_json(message))
