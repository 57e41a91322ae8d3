"""A device's twin and the pure operations on it (COMPAT.md §2, DESIGN.md §5).

Per property the twin keeps the ``expected`` (desired) and ``actual`` (reported) values with
their timestamps, the value type, ``optional``, and two version counters
``expected_version``/``actual_version``, each ``{cloud, edge}``: a side bumps its own
counter each time it changes that value (the agent reports them; the conflict rule itself is
decided by the cloud against the value a node's local write was based on — see
``edgeweave.edge.devices.host``).

- :func:`apply_update` — a mapper's or app's ``twin/update``: sets ``actual`` (and
  ``expected`` if sent — that is how ``edgeweave twin set --local`` sets a desired value on
  the node), bumps the ``edge`` counter of what it set;
- :func:`apply_cloud_desired` — the cloud (``twin set``, a Device edit): sets ``expected``,
  bumps ``expected_version.cloud``;
- :func:`apply_state` — a mapper's ``state/update``: the device state, no versions.

Each returns a :class:`TwinChange`: the new twin (the old one is never modified) and the
messages to publish — the result, the ``document`` (last/current of each changed property)
and, when some expected value differs from its actual value, the ``delta``. Invalid input
raises :class:`~edgeweave.twin.errors.TwinError` and leaves the twin as it was (an update
is applied whole or not at all).

Must not do I/O, read a clock (``now_ms`` is passed in) or make event ids (the request's is
reused, as KubeEdge does; callers pass one for cloud and local changes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final

from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin import values
from edgeweave.twin.errors import bad_request, not_found
from edgeweave.twin.messages import (
    DocumentEntry,
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
from edgeweave.twin.topics import DeviceAction

MAX_PROPERTIES: Final = 1024
ONLINE_STATES: Final = frozenset({"online", "ok"})
_NO_VERSION: Final = Versions()


@dataclass(frozen=True, slots=True)
class PropertyTwin:
    type: str = values.STRING
    expected: TwinValue | None = None
    actual: TwinValue | None = None
    optional: bool = True
    read_only: bool = False  # a DeviceModel ReadOnly property takes no expected value
    expected_version: Versions = _NO_VERSION
    actual_version: Versions = _NO_VERSION

    @property
    def deleted(self) -> bool:
        return self.type == values.DELETED

    @property
    def differs(self) -> bool:
        """Whether the device has yet to reach the expected value (what a delta lists)."""
        if self.deleted or self.expected is None:
            return False
        return self.actual is None or self.actual.value != self.expected.value

    def to_msg(self, *, with_versions: bool = False) -> MsgTwin:
        return MsgTwin(
            expected=self.expected,
            actual=self.actual,
            optional=self.optional,
            type=self.type,
            expected_version=self.expected_version if with_versions else None,
            actual_version=self.actual_version if with_versions else None,
        )


@dataclass(frozen=True, slots=True)
class DeviceTwin:
    device: ResourceRef  # kind "Device"
    properties: Mapping[str, PropertyTwin] = field(default_factory=dict)
    state: str = "unknown"
    last_online_ms: int | None = None

    def visible(self) -> dict[str, PropertyTwin]:
        """The properties that are not deleted."""
        return {k: p for k, p in self.properties.items() if not p.deleted}

    def delta(self) -> dict[str, str]:
        """Property -> expected value, for every property whose actual value differs."""
        return {k: p.expected.value for k, p in self.properties.items() if p.differs and p.expected}

    def twin_map(self) -> dict[str, MsgTwin]:
        return {k: p.to_msg() for k, p in self.visible().items()}


@dataclass(frozen=True, slots=True)
class TwinChange:
    """The twin after an operation and what to publish about it (``None``: nothing)."""

    twin: DeviceTwin
    result: TwinUpdateResult | StateUpdateResult | None = None
    document: TwinDocument | None = None
    delta: TwinDelta | None = None

    def messages(self) -> list[tuple[DeviceAction, Message]]:
        """What to publish, in order: result, delta, document. The delta before the document:
        it is what a mapper acts on (each publish costs the sender a socket write)."""
        out: list[tuple[DeviceAction, Message]] = []
        if isinstance(self.result, TwinUpdateResult):
            out.append((DeviceAction.TWIN_UPDATE_RESULT, self.result))
        elif isinstance(self.result, StateUpdateResult):
            out.append((DeviceAction.STATE_UPDATE_RESULT, self.result))
        if self.delta is not None:
            out.append((DeviceAction.TWIN_DELTA, self.delta))
        if self.document is not None:
            out.append((DeviceAction.TWIN_DOCUMENT, self.document))
        return out


def changes(before: DeviceTwin, after: DeviceTwin, *, event_id: str, now_ms: int) -> TwinChange:
    """The document and delta that tell mappers how ``before`` became ``after``.

    Used by every operation here and by the host when property definitions change.
    """
    entries: dict[str, DocumentEntry] = {}
    for key, new in after.properties.items():
        old = before.properties.get(key)
        if old != new:
            last = old.to_msg() if old is not None and not old.deleted else None
            entries[key] = DocumentEntry(last=last, current=new.to_msg())
    if not entries:
        return TwinChange(after)
    document = TwinDocument(event_id, now_ms, entries)
    pending = after.delta()
    delta = TwinDelta(event_id, now_ms, after.twin_map(), pending) if pending else None
    return TwinChange(after, document=document, delta=delta)


def _with(twin: DeviceTwin, updated: Mapping[str, PropertyTwin]) -> DeviceTwin:
    properties = dict(twin.properties)
    properties.update(updated)
    if len(properties) > MAX_PROPERTIES:
        raise bad_request(f"{twin.device} would have more than {MAX_PROPERTIES} properties")
    return replace(twin, properties=properties)


def _updated_property(
    current: PropertyTwin | None, key: str, msg: MsgTwin, sent_ms: int
) -> PropertyTwin:
    if msg.type == values.DELETED:
        raise bad_request(f"property {key!r}: only the cloud deletes a property")
    prop = current if current is not None and not current.deleted else None
    if prop is None:  # a mapper may report a property the cloud has not declared, as in KubeEdge
        prop = PropertyTwin(type=msg.type or values.STRING)
    elif msg.type is not None and not values.same_kind(msg.type, prop.type):
        raise bad_request(f"property {key!r} is of type {prop.type}, the update says {msg.type}")
    if msg.actual is not None:
        value = values.check_value(msg.actual.value, prop.type, key)
        actual = TwinValue(value, msg.actual.timestamp_ms or sent_ms)
        prop = replace(prop, actual=actual, actual_version=prop.actual_version.bump_edge())
    if msg.expected is not None:
        if prop.read_only:
            raise bad_request(f"property {key!r} is read-only and takes no expected value")
        value = values.check_value(msg.expected.value, prop.type, key)
        expected = TwinValue(value, msg.expected.timestamp_ms or sent_ms)
        prop = replace(prop, expected=expected, expected_version=prop.expected_version.bump_edge())
    if msg.optional is not None:
        prop = replace(prop, optional=msg.optional)
    return prop


def apply_update(twin: DeviceTwin, update: TwinUpdate, now_ms: int) -> TwinChange:
    """A mapper's or app's ``twin/update``: result, document and (maybe) delta."""
    sent_ms = update.timestamp_ms or now_ms
    updated = {
        key: _updated_property(twin.properties.get(key), key, msg, sent_ms)
        for key, msg in update.twin.items()
    }
    after = _with(twin, updated)
    change = changes(twin, after, event_id=update.event_id, now_ms=now_ms)
    result = TwinUpdateResult(update.event_id, now_ms, {k: p.to_msg() for k, p in updated.items()})
    return replace(change, result=result)


def _set_expected(
    twin: DeviceTwin,
    desired: Mapping[str, str | None],
    bump: Callable[[Versions], Versions],
    *,
    event_id: str,
    now_ms: int,
    may_delete: bool,
) -> TwinChange:
    updated: dict[str, PropertyTwin] = {}
    for key, value in desired.items():
        values.check_key(key)
        prop = twin.properties.get(key)
        if prop is None or prop.deleted:
            raise not_found(f"{twin.device} has no property {key!r}")
        if value is None:
            if not may_delete:
                raise bad_request(f"property {key!r}: only the cloud deletes a property")
            updated[key] = replace(
                prop,
                type=values.DELETED,
                expected=None,
                expected_version=bump(prop.expected_version),
            )
            continue
        if prop.read_only:
            raise bad_request(f"property {key!r} is read-only and takes no desired value")
        expected = TwinValue(values.check_value(value, prop.type, key), now_ms)
        version = bump(prop.expected_version)
        updated[key] = replace(prop, expected=expected, expected_version=version)
    return changes(twin, _with(twin, updated), event_id=event_id, now_ms=now_ms)


def apply_cloud_desired(
    twin: DeviceTwin, desired: Mapping[str, str | None], *, event_id: str, now_ms: int
) -> TwinChange:
    """The cloud sets desired values (``None`` deletes the property); bumps
    ``expected_version.cloud``. Unknown properties are a 404."""
    return _set_expected(
        twin, desired, Versions.bump_cloud, event_id=event_id, now_ms=now_ms, may_delete=True
    )


def define_property(
    twin: DeviceTwin,
    key: str,
    value_type: str,
    *,
    optional: bool = True,
    read_only: bool = False,
) -> DeviceTwin:
    """``twin`` with property ``key`` declared (from the DeviceModel); values are kept when
    the type's kind is unchanged, cleared otherwise."""
    values.check_key(key)
    canonical = values.check_type(value_type, key)
    prop = twin.properties.get(key)
    if prop is not None and (prop.type, prop.optional, prop.read_only) == (
        canonical,
        optional,
        read_only,
    ):
        return twin  # declared so already (the host declares every property on each change)
    prop = prop or PropertyTwin(type=canonical)
    if not values.same_kind(prop.type, canonical):
        prop = replace(prop, expected=None, actual=None)
    prop = replace(prop, type=canonical, optional=optional, read_only=read_only)
    return _with(twin, {key: prop})


def get_result(twin: DeviceTwin | None, request: TwinGet, now_ms: int) -> TwinGetResult:
    """The ``twin/get/result``; a 404 TwinError when the device is unknown."""
    if twin is None:
        raise not_found("no such device on this node")
    return TwinGetResult(request.event_id, now_ms, twin.twin_map())


def last_online_time(ms: int | None) -> str:
    """KubeEdge's ``lastOnlineTime`` layout (``2006-01-02 15:04:05``), in UTC; "" if never."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def apply_state(twin: DeviceTwin, update: StateUpdate, now_ms: int) -> TwinChange:
    """A mapper's ``state/update``: the device's state, and when it was last online."""
    online_ms = now_ms if update.state in ONLINE_STATES else twin.last_online_ms
    after = replace(twin, state=update.state, last_online_ms=online_ms)
    result = StateUpdateResult(
        update.event_id, now_ms, twin.device.name, update.state, last_online_time(online_ms)
    )
    return TwinChange(after, result=result)
