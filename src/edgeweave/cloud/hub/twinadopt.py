"""Adopting desired values set on the edge: the cloud side of COMPAT.md §2's conflict rule.

A ``device.twin`` report may list ``localDesired`` items: a desired value a user set on the
node (possibly while it was offline) and ``base``, the cloud's desired value the node had when
it was set. After the upstream commit the committer hands them here (without waiting); one
background task then, per Device, with compare-and-set on its resourceVersion (retried on
409 a few times):

- the Device's current desired value equals the edge's value: nothing to do;
- it equals ``base`` (the cloud has not changed it since), or it is the value this task
  adopted from the same node on the same ``base`` (the edge changed its mind twice while
  offline): the edge's value becomes ``spec.properties[].desired.value``; a Normal event
  ``TwinDesiredSetOnEdge`` says so;
- otherwise the cloud's newer value wins (desired: the cloud wins) and a Warning event
  ``TwinDesiredConflict`` names the property, the edge's value and the cloud's value;
- a value the DeviceModel refuses is not written: Warning ``TwinDesiredInvalid``.

Items whose timestamp is not newer than the last one handled for that property are skipped
(a report repeated by the agent is not a new edit). That memory, like the queue, is bounded and
in memory: after a cloud restart a repeated item can at worst produce one extra event.

Must not: block the committer (``submit`` never awaits; a full queue drops the items, counted
and logged), write anything but the Device's desired values and events, or retry forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from edgeweave.cloud.hub.upstream import LocalDesiredItems
from edgeweave.cloud.store.base import MAX_EVENT_TEXT, CloudStore, EventRow, JSONObject
from edgeweave.cloud.twins import (
    DEVICE,
    DEVICE_MODEL,
    desired_problems,
    desired_values,
    model_name,
    with_desired,
)
from edgeweave.errors import Conflict, EdgeweaveError, NotFound
from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin.report import LocalDesired

log = logging.getLogger(__name__)

MAX_PENDING = 1000  # submissions (one per commit that carried local desired values)
MAX_REMEMBERED = 10_000  # (device, property) pairs whose last handled edit is remembered
CAS_ATTEMPTS = 5

SET_ON_EDGE, CONFLICT, INVALID = "TwinDesiredSetOnEdge", "TwinDesiredConflict", "TwinDesiredInvalid"


@dataclass(frozen=True, slots=True)
class _Handled:
    """The last edge edit handled for a (device, property)."""

    node: str
    timestamp_ms: int
    base: str | None
    adopted: str | None  # the value written, when it was adopted


class DesiredAdopter:
    """The queue and the task described in the module docstring."""

    def __init__(self, store: CloudStore, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = wall_clock
        self._pending: deque[tuple[str, LocalDesiredItems]] = deque()
        self._wake = asyncio.Event()
        self._handled: OrderedDict[tuple[ResourceRef, str], _Handled] = OrderedDict()
        self.adopted = 0
        self.conflicts = 0
        self.dropped = 0
        self.idle = asyncio.Event()  # set whenever nothing is queued or being worked on
        self.idle.set()

    def submit(self, node: str, items: LocalDesiredItems) -> None:
        """Queue ``items`` reported by ``node`` (never blocks; drops when full)."""
        if len(self._pending) >= MAX_PENDING:
            self.dropped += len(items)
            log.warning(
                "twin adoption queue full: %d desired values from %s dropped", len(items), node
            )
            return
        self._pending.append((node, items))
        self.idle.clear()
        self._wake.set()

    def statistics(self) -> dict[str, int]:
        return {
            "twin_desired_adopted": self.adopted,
            "twin_desired_conflicts": self.conflicts,
            "twin_desired_dropped": self.dropped,
        }

    async def run(self) -> None:
        """The adoption task: until cancelled."""
        while True:
            if not self._pending:
                self.idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            node, items = self._pending.popleft()
            per_device: dict[ResourceRef, list[LocalDesired]] = {}
            for ref, item in items:
                per_device.setdefault(ref, []).append(item)
            for ref, device_items in per_device.items():
                try:
                    events = await self.adopt(node, ref, device_items)
                    if events:
                        await self._store.append_events(events)
                except EdgeweaveError as e:
                    log.warning("adopting desired values of %s from %s failed: %s", ref, node, e)

    async def adopt(self, node: str, ref: ResourceRef, items: list[LocalDesired]) -> list[EventRow]:
        """Apply the rule to one Device; returns the events to record."""
        fresh = [i for i in items if self._is_new(node, ref, i)]
        if not fresh:
            return []
        for _ in range(CAS_ATTEMPTS):
            try:
                device = await self._store.get(DEVICE, ref.namespace, ref.name)
            except NotFound:
                return []
            if (device.get("spec") or {}).get("nodeName") != node:
                return []  # moved to another node since: that node's reports count now
            conflicts, adopt = self._decide(node, ref, device, fresh)
            events = [self._event(node, ref, "Warning", CONFLICT, m) for m in conflicts]
            for prop, problem in (await self._invalid(ref, device, adopt)).items():
                del adopt[prop]
                events.append(self._event(node, ref, "Warning", INVALID, problem))
            if adopt:
                values = {prop: value for prop, (value, _) in adopt.items()}
                try:
                    await self._store.update(with_desired(device, values))  # CAS: rv just read
                except Conflict:
                    continue
            for prop, (value, cloud) in adopt.items():
                message = (
                    f"desired value of property {prop!r} set to {value!r} on node {node} "
                    f"(the cloud's value was {cloud!r}); adopted"
                )
                events.append(self._event(node, ref, "Normal", SET_ON_EDGE, message))
            self._remember(node, ref, fresh, adopt)
            self.adopted += len(adopt)
            self.conflicts += len(conflicts)
            return events
        log.warning("adopting desired values of %s from %s: too many concurrent writers", ref, node)
        return []

    def _is_new(self, node: str, ref: ResourceRef, item: LocalDesired) -> bool:
        seen = self._handled.get((ref, item.property))
        return seen is None or seen.node != node or item.timestamp_ms > seen.timestamp_ms

    def _decide(
        self, node: str, ref: ResourceRef, device: JSONObject, items: list[LocalDesired]
    ) -> tuple[list[str], dict[str, tuple[str, str | None]]]:
        """``(conflict messages, property -> (edge value, cloud value) to adopt)``."""
        current = desired_values(device)
        conflicts: list[str] = []
        adopt: dict[str, tuple[str, str | None]] = {}
        for item in items:
            cloud = current.get(item.property)
            if cloud == item.value:
                continue  # already in effect
            seen = self._handled.get((ref, item.property))
            own_earlier = (
                seen is not None
                and seen.node == node
                and seen.adopted is not None
                and seen.adopted == cloud
                and seen.base == item.base
            )
            if cloud == item.base or own_earlier:
                adopt[item.property] = (item.value, cloud)
            else:
                conflicts.append(
                    f"desired value of property {item.property!r}: the edge's value "
                    f"{item.value!r} (set on node {node} over {item.base!r}) lost to the cloud's "
                    f"newer value {cloud!r}; the cloud wins"
                )
        return conflicts, adopt

    async def _invalid(
        self, ref: ResourceRef, device: JSONObject, adopt: dict[str, tuple[str, str | None]]
    ) -> dict[str, str]:
        """Why the DeviceModel refuses some of the values to adopt, per property."""
        if not adopt:
            return {}
        name = model_name(device)
        model: JSONObject | None = None
        if name is not None:
            try:
                model = await self._store.get(DEVICE_MODEL, ref.namespace, name)
            except NotFound:
                model = None
        out: dict[str, str] = {}
        for prop, (value, _) in adopt.items():
            problems = desired_problems(device, model, {prop: value})
            if problems:
                out[prop] = f"desired value set on the edge not adopted: {problems[0]}"
        return out

    def _remember(
        self,
        node: str,
        ref: ResourceRef,
        items: list[LocalDesired],
        adopted: dict[str, tuple[str, str | None]],
    ) -> None:
        for item in items:
            key = (ref, item.property)
            self._handled.pop(key, None)
            value = adopted.get(item.property)
            self._handled[key] = _Handled(
                node, item.timestamp_ms, item.base, value[0] if value is not None else None
            )
        while len(self._handled) > MAX_REMEMBERED:
            self._handled.popitem(last=False)

    def _event(self, node: str, ref: ResourceRef, kind: str, reason: str, message: str) -> EventRow:
        text = message[:MAX_EVENT_TEXT]
        return (node, self._clock(), DEVICE, ref.namespace, ref.name, kind, reason, text)
