"""The conflict rule after a partition (COMPAT.md §2): merge a cloud and an edge twin.

Each value carries a version ``{cloud, edge}``; a side bumps its own counter whenever it
changes the value, so the pair works like a vector clock:

- equal versions: nothing changed since the last sync;
- one version is at least the other in both counters: only that side changed, the other
  side's value is stale and is replaced (no conflict);
- neither covers the other: both sides changed the value since their last common version
  — a **true concurrent edit**. For ``expected`` (desired) the cloud wins, for ``actual``
  (reported) the edge wins, and a :class:`ConflictEvent` records the losing value. If both
  sides happened to write the same value there is nothing to report.

Equal versions with different values should not happen; when it does (a restored backup,
a bug) the rule's winner is taken and a ``ConflictEvent`` of kind ``"diverged"`` says so.
The merged version is the counter-wise maximum, so the next merge sees both sides in sync.

Conflicts are returned, never dropped: the caller turns each into an event the user sees.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin.errors import INTERNAL, TwinError
from edgeweave.twin.messages import TwinValue, Versions
from edgeweave.twin.state import DeviceTwin, PropertyTwin

Side = Literal["cloud", "edge"]
Order = Literal["equal", "cloud_newer", "edge_newer", "concurrent"]


@dataclass(frozen=True, slots=True)
class ConflictEvent:
    """Both sides changed one value of one property; ``winner``'s value was kept."""

    device: ResourceRef
    property: str
    field: Literal["expected", "actual"]
    cloud_value: str | None
    edge_value: str | None
    cloud_version: Versions
    edge_version: Versions
    winner: Side
    kind: Literal["concurrent", "diverged"] = "concurrent"

    def message(self) -> str:
        """A line a user can act on (for the event the caller records)."""
        loser = "edge" if self.winner == "cloud" else "cloud"
        kept = self.cloud_value if self.winner == "cloud" else self.edge_value
        lost = self.edge_value if self.winner == "cloud" else self.cloud_value
        how = "changed on both sides" if self.kind == "concurrent" else "diverged"
        return (
            f"{self.device} property {self.property!r}: {self.field} value {how} while the "
            f"node was partitioned; kept the {self.winner}'s {kept!r}, dropped the {loser}'s "
            f"{lost!r}. Set it again if the {loser}'s value was the one you wanted."
        )


def order(cloud: Versions, edge: Versions) -> Order:
    """How two versions of one value relate."""
    if cloud == edge:
        return "equal"
    if cloud.cloud >= edge.cloud and cloud.edge >= edge.edge:
        return "cloud_newer"
    if edge.cloud >= cloud.cloud and edge.edge >= cloud.edge:
        return "edge_newer"
    return "concurrent"


def _latest(a: Versions, b: Versions) -> Versions:
    return Versions(max(a.cloud, b.cloud), max(a.edge, b.edge))


def _text(value: TwinValue | None) -> str | None:
    return value.value if value is not None else None


def _pick(
    device: ResourceRef,
    key: str,
    field: Literal["expected", "actual"],
    cloud: tuple[TwinValue | None, Versions],
    edge: tuple[TwinValue | None, Versions],
    winner: Side,
) -> tuple[Side, ConflictEvent | None]:
    """Which side's value to keep, and the conflict to report if any."""
    relation = order(cloud[1], edge[1])
    if relation == "cloud_newer":
        return "cloud", None
    if relation == "edge_newer":
        return "edge", None
    if _text(cloud[0]) == _text(edge[0]):
        return winner, None
    kind: Literal["concurrent", "diverged"] = (
        "concurrent" if relation == "concurrent" else "diverged"
    )
    event = ConflictEvent(
        device, key, field, _text(cloud[0]), _text(edge[0]), cloud[1], edge[1], winner, kind
    )
    return winner, event


def merge_property(
    device: ResourceRef, key: str, cloud: PropertyTwin, edge: PropertyTwin
) -> tuple[PropertyTwin, list[ConflictEvent]]:
    """One property merged; the type and flags follow the side whose ``expected`` won (the
    cloud declares properties, so a cloud deletion or type change travels with it)."""
    conflicts: list[ConflictEvent] = []
    expected_side, event = _pick(
        device,
        key,
        "expected",
        (cloud.expected, cloud.expected_version),
        (edge.expected, edge.expected_version),
        "cloud",
    )
    if event is not None:
        conflicts.append(event)
    actual_side, event = _pick(
        device,
        key,
        "actual",
        (cloud.actual, cloud.actual_version),
        (edge.actual, edge.actual_version),
        "edge",
    )
    if event is not None:
        conflicts.append(event)
    base = cloud if expected_side == "cloud" else edge
    merged = replace(
        base,
        actual=cloud.actual if actual_side == "cloud" else edge.actual,
        expected_version=_latest(cloud.expected_version, edge.expected_version),
        actual_version=_latest(cloud.actual_version, edge.actual_version),
    )
    return merged, conflicts


def merge(cloud_twin: DeviceTwin, edge_twin: DeviceTwin) -> tuple[DeviceTwin, list[ConflictEvent]]:
    """The twin both sides should hold after a partition, and the true conflicts.

    A property only one side knows is taken from that side. Device state and last-online
    time are observations of the edge, so the edge's are kept.
    """
    if cloud_twin.device != edge_twin.device:
        raise TwinError(
            INTERNAL, f"cannot merge twins of {cloud_twin.device} and {edge_twin.device}"
        )
    properties: dict[str, PropertyTwin] = {}
    conflicts: list[ConflictEvent] = []
    for key in sorted(cloud_twin.properties.keys() | edge_twin.properties.keys()):
        cloud = cloud_twin.properties.get(key)
        edge = edge_twin.properties.get(key)
        if cloud is None or edge is None:
            only = cloud if cloud is not None else edge
            assert only is not None
            properties[key] = only
            continue
        properties[key], found = merge_property(cloud_twin.device, key, cloud, edge)
        conflicts.extend(found)
    merged = replace(
        edge_twin,
        properties=properties,
        last_online_ms=edge_twin.last_online_ms or cloud_twin.last_online_ms,
    )
    return merged, conflicts
