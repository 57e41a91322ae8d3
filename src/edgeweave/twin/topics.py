"""KubeEdge ``$hw/events/...`` topics as structures (COMPAT.md §2).

A topic is parsed once, here, into a :class:`DeviceTopic` (which device, which action), a
:class:`NodeTopic` (membership of a node) or an :class:`UploadTopic`; nothing else may split a
topic string. Unknown topics parse to ``None``.

A device id is ``{namespace}/{name}``, so device topics carry two segments for it. A KubeEdge
mapper written for KubeEdge's own one-segment form (``$hw/events/device/{name}/twin/update``)
is understood too: the device is taken in the default namespace and ``short_form`` is set so
the replies go back on the form the mapper listens to.

Pure: no I/O, no broker.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from edgeweave.protocol.refs import ResourceRef

DEVICE_PREFIX: Final = "$hw/events/device/"
NODE_PREFIX: Final = "$hw/events/node/"
UPLOAD_PREFIX: Final = "$hw/events/upload/"
DEFAULT_NAMESPACE: Final = "default"
MAX_TOPIC_CHARS: Final = 1024
# a namespace, device or node name: what Kubernetes allows, no MQTT wildcards or separators
_SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


class DeviceAction(enum.Enum):
    """What a device topic is for; the value is the topic's suffix after the device id."""

    TWIN_UPDATE = "twin/update"
    TWIN_UPDATE_RESULT = "twin/update/result"
    TWIN_DELTA = "twin/update/delta"
    TWIN_DOCUMENT = "twin/update/document"
    TWIN_GET = "twin/get"
    TWIN_GET_RESULT = "twin/get/result"
    STATE_UPDATE = "state/update"
    STATE_UPDATE_RESULT = "state/update/result"


class NodeAction(enum.Enum):
    MEMBERSHIP_GET = "membership/get"
    MEMBERSHIP_GET_RESULT = "membership/get/result"
    MEMBERSHIP_UPDATED = "membership/updated"


# the longest suffixes first, so "twin/update/result" is not read as "twin/update"
_DEVICE_SUFFIXES: Final = sorted(DeviceAction, key=lambda a: -len(a.value))

# what the agent's bus subscribes to: the requests mappers and apps send it
REQUEST_FILTERS: Final = (
    "$hw/events/device/+/+/twin/update",
    "$hw/events/device/+/+/twin/get",
    "$hw/events/device/+/+/state/update",
    "$hw/events/device/+/twin/update",
    "$hw/events/device/+/twin/get",
    "$hw/events/device/+/state/update",
    "$hw/events/node/+/membership/get",
    "$hw/events/upload/#",
)


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    device: ResourceRef  # kind "Device"
    action: DeviceAction
    short_form: bool = False  # the one-segment KubeEdge form (device in the default namespace)

    def reply(self, action: DeviceAction) -> str:
        """The topic of ``action`` for the same device, in the same form as this one."""
        return device_topic(self.device, action, short_form=self.short_form)


@dataclass(frozen=True, slots=True)
class NodeTopic:
    node: str
    action: NodeAction


@dataclass(frozen=True, slots=True)
class UploadTopic:
    path: str  # what follows "$hw/events/upload/"


Topic = DeviceTopic | NodeTopic | UploadTopic


def device_ref(namespace: str, name: str) -> ResourceRef:
    return ResourceRef("Device", namespace, name)


def device_topic(device: ResourceRef, action: DeviceAction, *, short_form: bool = False) -> str:
    if short_form:
        return f"{DEVICE_PREFIX}{device.name}/{action.value}"
    return f"{DEVICE_PREFIX}{device.namespace}/{device.name}/{action.value}"


def node_topic(node: str, action: NodeAction) -> str:
    return f"{NODE_PREFIX}{node}/{action.value}"


def _segment(text: str) -> bool:
    return _SEGMENT_RE.fullmatch(text) is not None


def _parse_device(rest: str) -> DeviceTopic | None:
    for action in _DEVICE_SUFFIXES:
        tail = "/" + action.value
        if not rest.endswith(tail):
            continue
        parts = rest[: -len(tail)].split("/")
        if not all(_segment(p) for p in parts):
            return None
        if len(parts) == 2:
            return DeviceTopic(device_ref(parts[0], parts[1]), action)
        if len(parts) == 1:
            return DeviceTopic(device_ref(DEFAULT_NAMESPACE, parts[0]), action, short_form=True)
        return None
    return None


def _parse_node(rest: str) -> NodeTopic | None:
    node, sep, suffix = rest.partition("/")
    if not sep or not _segment(node):
        return None
    for action in NodeAction:
        if suffix == action.value:
            return NodeTopic(node, action)
    return None


def parse_topic(topic: str) -> Topic | None:
    """The structure of a ``$hw/events/...`` topic, or ``None`` for any other topic."""
    if len(topic) > MAX_TOPIC_CHARS:
        return None
    if topic.startswith(DEVICE_PREFIX):
        return _parse_device(topic[len(DEVICE_PREFIX) :])
    if topic.startswith(NODE_PREFIX):
        return _parse_node(topic[len(NODE_PREFIX) :])
    if topic.startswith(UPLOAD_PREFIX):
        path = topic[len(UPLOAD_PREFIX) :]
        if path and "+" not in path and "#" not in path:
            return UploadTopic(path)
    return None
