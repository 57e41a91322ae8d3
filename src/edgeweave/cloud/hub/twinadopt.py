"""Adopting desired values set on the edge: the cloud side of COMPAT.md §2's conflict rule.

A ``device.twin`` report may list ``localDesired`` items: a desired value a user set on the
node (possibly while it was offline) and ``base``, the cloud's desired value the node had when
it was set. The upstream commit keeps them in the store (``commit_upstream(adoptions=...)``),
in the same transaction that acknowledges the node's entries, so a cloud that stops right after
loses none. One background task per cloud replica claims them (a lease, so replicas never
handle the same one and a replica that died is taken over after :data:`LEASE_S`) and, per
Device, with compare-and-set on its resourceVersion (retried on 409 a few times):

- the Device's current desired value equals the edge's value: nothing to do;
- it equals ``base`` (the cloud has not changed it since), or it is the value this task
  adopted from the same node on the same ``base`` (the edge changed its mind twice while
  offline): the edge's value becomes ``spec.properties[].desired.value``; a Normal event
  ``TwinDesiredSetOnEdge`` says so;
- otherwise the cloud's newer value wins (desired: the cloud wins) and a Warning event
  ``TwinDesiredConflict`` names the property, the edge's value and the cloud's value;
- a value the DeviceModel refuses is not written: Warning ``TwinDesiredInvalid``.

Then the kept items are forgotten, in the same transaction that records the events, so a
replica that stops in between leaves both to the next one, which records them once. A replica
that stops after writing a Device and before that transaction leaves the next one finding the
value adopted already ("nothing to do"), so those events are not recorded; the value itself is
not lost. Items whose timestamp is not newer than the last one handled for that property
are skipped (a report repeated by the agent is not a new edit); that memory is bounded and in
memory.

Must not: block the committer (``wake`` never awaits), write anything but the Device's desired
values and events, or retry a failed store call sooner than the lease allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from edgeweave.cloud.hub.twinreport import decode_local_desired
from edgeweave.cloud.store.base import (
    MAX_EVENT_TEXT,
    ClaimedAdoption,
    CloudStore,
    EventRow,
    JSONObject,
)
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

LEASE_S = 30.0  # a claimed adoption not handled by then is another replica's to take
CLAIM_BATCH = 50
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
    """The task described in the module docstring; :meth:`wake` after a commit kept items."""

    def __init__(
        self,
        store: CloudStore,
        *,
        wall_clock: Callable[[], float] = time.time,
        owner: str | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self._store = store
        self._clock = wall_clock
        self._owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lease_s = lease_s
        self._wake = asyncio.Event()
        self._handled: OrderedDict[tuple[ResourceRef, str], _Handled] = OrderedDict()
        self.adopted = 0
        self.conflicts = 0
        self.failed = 0
        self.idle = asyncio.Event()  # set whenever nothing kept was found to work on
        self.wake()  # items kept before this replica started

    def wake(self) -> None:
        """Items were kept: look for them now (never blocks)."""
        self.idle.clear()
        self._wake.set()

    def statistics(self) -> dict[str, int]:
        return {
            "twin_desired_adopted": self.adopted,
            "twin_desired_conflicts": self.conflicts,
            "twin_desired_failed": self.failed,
        }

    async def run(self) -> None:
        """The adoption task: until cancelled. Besides on :meth:`wake`, it looks every
        ``lease_s``, for items a replica that died had claimed."""
        while True:
            self._wake.clear()
            try:
                claimed = await self._store.claim_adoptions(self._owner, self._lease_s, CLAIM_BATCH)
            except EdgeweaveError as e:
                log.warning("cannot read desired values set on the edge: %s", e)
                claimed = []
            for row in claimed:
                await self._handle(row)
            if claimed:
                continue
            if not self._wake.is_set():
                self.idle.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._lease_s):
                    await self._wake.wait()

    async def _handle(self, row: ClaimedAdoption) -> None:
        adoption_id, node, namespace, name, text = row
        ref = ResourceRef(DEVICE, namespace, name)
        try:
            items = decode_local_desired(text)
        except EdgeweaveError as e:  # cannot get better by waiting: drop it, loudly
            log.error("desired values of %s from %s dropped: %s", ref, node, e)
            self.failed += 1
            items = []
        try:
            events = await self.adopt(node, ref, items) if items else []
            await self._store.finish_adoption(adoption_id, events)  # one transaction
        except EdgeweaveError as e:  # kept: tried again once the lease ran out
            log.warning("adopting desired values of %s from %s failed: %s", ref, node, e)
            self.failed += 1

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
        raise Conflict(f"{ref}: too many concurrent writers")  # kept: tried again later

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
