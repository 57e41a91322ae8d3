"""The typed KubeEdge twin messages (COMPAT.md §2), one class per payload shape.

These are plain values: :mod:`edgeweave.twin.payloads` is the only place they are read from
or written to bytes, and :mod:`edgeweave.twin.state` builds the ones the agent publishes.
Timestamps are Unix **milliseconds**; values travel as strings. Must not do I/O or validation
(the codec validates on the way in).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

STATES: Final = ("online", "offline", "ok", "unknown", "unhealthy")


def new_event_id() -> str:
    """A fresh ``event_id``: 32 hex chars, as ``uuid4().hex``. It names an event, it is no
    secret: drawn from :mod:`random`, so no system call (one that lets go of the GIL) per
    published change."""
    return f"{random.getrandbits(128):032x}"


@dataclass(frozen=True, slots=True)
class Versions:
    """How many times each side changed a value: ``{"cloud": n, "edge": n}``."""

    cloud: int = 0
    edge: int = 0

    def bump_cloud(self) -> Versions:
        return Versions(self.cloud + 1, self.edge)

    def bump_edge(self) -> Versions:
        return Versions(self.cloud, self.edge + 1)


@dataclass(frozen=True, slots=True)
class TwinValue:
    """An expected or actual value; ``timestamp_ms`` is ``None`` when a sender left it out."""

    value: str
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class MsgTwin:
    """One property as it travels (``None`` = absent from the payload)."""

    expected: TwinValue | None = None
    actual: TwinValue | None = None
    optional: bool | None = None
    type: str | None = None  # metadata.type
    expected_version: Versions | None = None
    actual_version: Versions | None = None


TwinMap = Mapping[str, MsgTwin]


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    last: MsgTwin | None
    current: MsgTwin


@dataclass(frozen=True, slots=True)
class TwinUpdate:
    """``twin/update`` from a mapper or app; ``timestamp_ms`` may be absent."""

    event_id: str
    timestamp_ms: int | None
    twin: TwinMap


@dataclass(frozen=True, slots=True)
class TwinUpdateResult:
    event_id: str
    timestamp_ms: int
    twin: TwinMap


@dataclass(frozen=True, slots=True)
class TwinDelta:
    event_id: str
    timestamp_ms: int
    twin: TwinMap
    delta: Mapping[str, str]  # property -> expected value


@dataclass(frozen=True, slots=True)
class TwinDocument:
    event_id: str
    timestamp_ms: int
    twin: Mapping[str, DocumentEntry]


@dataclass(frozen=True, slots=True)
class TwinGet:
    event_id: str


@dataclass(frozen=True, slots=True)
class TwinGetResult:
    event_id: str
    timestamp_ms: int
    twin: TwinMap


@dataclass(frozen=True, slots=True)
class StateUpdate:
    event_id: str
    timestamp_ms: int | None
    state: str  # one of STATES, lower case


@dataclass(frozen=True, slots=True)
class StateUpdateResult:
    event_id: str
    timestamp_ms: int
    name: str
    state: str
    last_online_time: str  # KubeEdge's "2006-01-02 15:04:05" layout, UTC


@dataclass(frozen=True, slots=True)
class MembershipGet:
    event_id: str


@dataclass(frozen=True, slots=True)
class MembershipDevice:
    """A device as membership payloads list it; ``id`` is ``{namespace}/{name}``."""

    id: str
    name: str
    description: str = ""
    state: str = "unknown"
    last_online: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MembershipGetResult:
    event_id: str
    timestamp_ms: int
    devices: Sequence[MembershipDevice]


@dataclass(frozen=True, slots=True)
class MembershipUpdated:
    event_id: str
    timestamp_ms: int
    added_devices: Sequence[MembershipDevice]
    removed_devices: Sequence[MembershipDevice]


@dataclass(frozen=True, slots=True)
class ErrorResult:
    """The error form of any ``.../result`` topic."""

    event_id: str
    timestamp_ms: int
    code: int
    reason: str


Message = (
    TwinUpdate
    | TwinUpdateResult
    | TwinDelta
    | TwinDocument
    | TwinGet
    | TwinGetResult
    | StateUpdate
    | StateUpdateResult
    | MembershipGet
    | MembershipGetResult
    | MembershipUpdated
    | ErrorResult
)
