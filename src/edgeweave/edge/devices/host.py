"""The twin host: the node's device twins, kept from Device objects and bus messages.

Inputs: the Device/DeviceModel objects the cloud sent (:meth:`DeviceHost.reconcile`, after
every change the sync hands over, and at start from the local store — the cloud may be away)
and the requests mappers and apps publish on the bus (:meth:`DeviceHost.handle`). Each goes
through the pure engine (:mod:`edgeweave.twin`); the host stores the new twin (write-behind,
coalesced), publishes the replies, deltas and documents, and hands reported changes to the
:class:`~.reporter.Reporter`.

The conflict rule for desired values (COMPAT.md §2) — the cloud wins — is decided where the
cloud's value lives: a desired value set on the node (``twin/update`` with ``expected``, e.g.
``edgeweave twin set --local``) bumps the edge counter and is reported as ``localDesired``
with the last cloud value the host saw as its ``base``. The cloud adopts it if its own value
is still that base, else keeps its own and records a ``TwinDesiredConflict`` Warning event
(a true concurrent edit, never a silent drop). A new cloud value always replaces the expected
value here, whatever was set locally.

Must not open sockets (:mod:`.bus` does), read settings or start mappers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from edgeweave.edge.devices.info import DeviceInfo, info_of, model_name
from edgeweave.edge.devices.reporter import Reporter
from edgeweave.edge.devices.twinstore import HeldTwin, TwinStore
from edgeweave.edge.store import EdgeStore
from edgeweave.errors import EdgeweaveError, NotFound
from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin import dispatch, payloads
from edgeweave.twin.errors import TwinError
from edgeweave.twin.manifests import twin_from_device
from edgeweave.twin.messages import MembershipDevice, MembershipUpdated, new_event_id
from edgeweave.twin.report import LocalDesired, Sample
from edgeweave.twin.state import (
    DeviceTwin,
    apply_cloud_desired,
    changes,
    define_property,
)
from edgeweave.twin.topics import (
    DeviceTopic,
    NodeAction,
    NodeTopic,
    UploadTopic,
    device_ref,
    node_topic,
)
from edgeweave.twin.topics import parse_topic as parse_bus_topic

log = logging.getLogger(__name__)

OnDevices = Callable[[Mapping[ResourceRef, DeviceInfo], set[ResourceRef] | None], bool]
WaitPersisted = Callable[[], Awaitable[None]]
Publish = Callable[[str, bytes], None]  # queues a QoS 0 publish, raises BusError
EmitEvent = Callable[[dict[str, Any]], None]
FLUSH_DELAY_S = 0.05  # twins are written behind; reported values are in the outbox already
MAX_EVENT_TEXT = 4096


MODEL = "DeviceModel"
JSONObject = dict[str, Any]


def _ns(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"].get("namespace") or "default")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class DeviceHost:
    def __init__(
        self,
        node: str,
        objects: EdgeStore,
        twins: TwinStore,
        reporter: Reporter,
        emit_event: EmitEvent,
        *,
        now_ms: Callable[[], int] = _now_ms,
        max_payload_bytes: int = 64 * 1024,
        wait_persisted: WaitPersisted | None = None,
    ) -> None:
        self.node = node
        self._objects = objects
        self._twins = twins
        self.reporter = reporter
        self._emit_event = emit_event
        self._now_ms = now_ms
        self._max_payload_bytes = max_payload_bytes
        # the sync hands over Device objects before they are on disk; twins made from them
        # are written only once they are (a restart must not find a twin ahead of its object)
        self._wait_persisted = wait_persisted
        self.held: dict[ResourceRef, HeldTwin] = {}
        self.infos: dict[ResourceRef, DeviceInfo] = {}
        self.changed = asyncio.Event()  # set by the sync when Device/DeviceModel objects change
        # ... which ones, as their batch leaves them (None: deleted; the sync adds to it)
        self.changed_objects: dict[ResourceRef, JSONObject | None] = {}
        # told the node's devices after a reconcile, with the devices it looked at (None:
        # all); True: the mapper configs changed
        self.on_devices: OnDevices | None = None
        self._publish: Publish | None = None
        self._dirty: set[ResourceRef] = set()
        self._deleted: set[ResourceRef] = set()
        self._flush_wake = asyncio.Event()
        self.handled = 0
        self.errors = 0

    # ---- state ------------------------------------------------------------------------------

    async def load(self) -> None:
        """The twins the node held before (a restart), before any network."""
        self.held = await self._twins.load()

    def twin(self, ref: ResourceRef) -> DeviceTwin | None:
        held = self.held.get(ref)
        return None if held is None else held.twin

    def _store(self, held: HeldTwin) -> None:
        self.held[held.ref] = held
        self._dirty.add(held.ref)
        self._deleted.discard(held.ref)
        self._flush_wake.set()

    async def flush(self) -> None:
        if self._wait_persisted is not None:
            await self._wait_persisted()
        dirty, deleted = self._dirty, self._deleted
        self._dirty, self._deleted = set(), set()
        changed = [self.held[r] for r in dirty if r in self.held]
        try:
            await self._twins.save(changed, deleted)
        except EdgeweaveError:
            self._dirty |= dirty
            self._deleted |= deleted
            raise

    async def run_flush(self) -> None:
        """Write changed twins behind, coalesced; until cancelled (then a last flush)."""
        try:
            while True:
                await self._flush_wake.wait()
                self._flush_wake.clear()
                try:
                    await self.flush()
                except EdgeweaveError as e:
                    log.warning("cannot store device twins (will retry): %s", e)
                await asyncio.sleep(FLUSH_DELAY_S)  # coalescing window, not synchronisation
        finally:
            if self._dirty or self._deleted:
                await asyncio.shield(self.flush())

    # ---- the bus ----------------------------------------------------------------------------

    async def attach(self, publish: Publish) -> None:
        """The bus (re)connected: send every pending delta again (a mapper may have missed
        them while the bus was down)."""
        self._publish = publish
        for held in list(self.held.values()):
            if held.twin.delta():
                change = changes(
                    replace(held.twin, properties={}), held.twin, event_id="", now_ms=self._now_ms()
                )
                await self._send(dispatch.publications(replace(change, document=None)))

    def detach(self) -> None:
        self._publish = None

    async def _send(self, publications: tuple[dispatch.Publication, ...]) -> None:
        publish = self._publish
        if publish is None:
            return
        for pub in publications:
            try:
                publish(pub.topic, pub.payload)
            except EdgeweaveError as e:  # the bus loop reconnects; attach() resends deltas
                log.warning("cannot publish %s: %s", pub.topic, e)
                return

    async def handle(self, topic: str, payload: bytes) -> None:
        """One message from the bus. Never raises: bad input gets an error result."""
        parsed = parse_bus_topic(topic)
        now = self._now_ms()
        if isinstance(parsed, DeviceTopic):
            held = self.held.get(parsed.device)
            done = dispatch.handle_device_message(
                parsed,
                payload,
                None if held is None else held.twin,
                now,
                max_bytes=self._max_payload_bytes,
            )
            reported = (
                done.twin is not None
                and held is not None
                and self._updated_from_bus(held, done.twin, now)
            )
            if reported:  # in the outbox: one loop turn lets the link send it before the
                await asyncio.sleep(0)  # replies below (each publish costs a socket write)
        elif isinstance(parsed, NodeTopic) and parsed.node == self.node:
            done = dispatch.handle_membership_get(
                parsed, payload, self.membership(), now, max_bytes=self._max_payload_bytes
            )
        elif isinstance(parsed, UploadTopic):
            self._upload(parsed, payload)
            return
        else:
            return
        self.handled += 1
        if done.error is not None:
            self.errors += 1
            log.info("bus request on %s answered with %s", topic, done.error)
        await self._send(done.publications)

    def _updated_from_bus(self, held: HeldTwin, twin: DeviceTwin, now: int) -> bool:
        """Keep the twin a bus request changed; True when a report went into the outbox."""
        samples: list[Sample] = []
        local: list[LocalDesired] = []
        for key, new in twin.properties.items():
            old = held.twin.properties.get(key)
            if new.actual is not None and (old is None or old.actual != new.actual):
                samples.append(Sample(key, new.actual.value, new.actual.timestamp_ms or now))
            if new.expected is not None and (old is None or old.expected != new.expected):
                base = held.cloud_desired.get(key)
                local.append(LocalDesired(key, new.expected.value, base, now))
        urgent = bool(local) or twin.state != held.twin.state
        self._store(replace(held, twin=twin))
        return bool(samples or urgent) and self._report(twin, samples, local, urgent)

    def _report(
        self,
        twin: DeviceTwin,
        samples: Sequence[Sample] = (),
        local: Sequence[LocalDesired] = (),
        urgent: bool = False,
        observed: bool = False,
    ) -> bool:
        info = self.infos.get(twin.device)
        return self.reporter.note(
            twin,
            cycles_ms=info.cycles_ms if info else {},
            hidden=info.hidden if info else frozenset(),
            samples=samples,
            local=local,
            urgent=urgent,
            observed=observed,
        )

    def _upload(self, topic: UploadTopic, payload: bytes) -> None:
        text = payload[:MAX_EVENT_TEXT].decode("utf-8", "replace")
        self._event(ResourceRef("Node", "", self.node), "Normal", "Upload", f"{topic.path}: {text}")

    def _event(self, ref: ResourceRef, kind: str, reason: str, message: str) -> None:
        obj = {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name}
        try:
            self._emit_event(
                {
                    "object": obj,
                    "type": kind,
                    "reason": reason,
                    "message": message,
                    "time": time.time(),
                }
            )
        except EdgeweaveError as e:
            log.warning("event %s about %s not queued: %s", reason, ref, e)

    def membership(self) -> list[MembershipDevice]:
        return [
            dispatch.membership_device(
                self.held[ref].twin, description=info.description, attributes=info.attributes
            )
            for ref, info in sorted(self.infos.items(), key=lambda i: str(i[0]))
            if ref in self.held
        ]

    # ---- desired state from the cloud ---------------------------------------------------------

    async def run_reconcile(self) -> None:
        """Apply every held Device at start, then the changed ones (coalesced) after each
        batch the sync hands over: ``changed_objects`` holds them as the batch leaves them (the
        devices of a changed model, and unchanged models, come from elsewhere)."""
        handed: dict[ResourceRef, JSONObject | None] | None = None  # None: all of them
        while True:
            try:
                if handed is None or handed:  # empty: the sync only said "on disk"
                    await self.reconcile(handed)
            except Exception:  # a bad object must not stop the twin host
                log.exception("applying the node's devices failed")
            await self.changed.wait()
            self.changed.clear()
            handed = dict(self.changed_objects)  # the sync's dict: read and clear in place
            self.changed_objects.clear()

    async def _devices_for(
        self, handed: Mapping[ResourceRef, JSONObject | None] | None
    ) -> tuple[list[JSONObject], dict[tuple[str, str], JSONObject], set[ResourceRef]]:
        """The Device objects to look at, the models they need, and the refs looked at
        (``handed`` None: all of them).

        An object in ``handed`` is taken from there; an unchanged model from what the
        devices looked at had before; anything else is read from the store."""
        if handed is None:
            devices = await self._objects.list("Device")
            models = await self._objects.list("DeviceModel")
            looked = {device_ref(_ns(d), d["metadata"]["name"]) for d in devices} | set(self.held)
        else:
            changed_models = {(r.namespace or "default", r.name) for r in handed if r.kind == MODEL}
            looked = {r for r in handed if r.kind == "Device"}
            if changed_models:  # their devices too (a scan of all: models change rarely)
                looked |= {
                    ref
                    for ref, info in self.infos.items()
                    if (ref.namespace, model_name(info.device)) in changed_models
                }
            # an unchanged model is the one these devices had at the last reconcile
            known = {
                (ref.namespace, model_name(info.device)): info.model
                for ref in looked
                if (info := self.infos.get(ref)) is not None and info.model
            }

            async def read(ref: ResourceRef) -> JSONObject | None:
                if ref in handed:
                    return handed[ref]
                if ref.kind == MODEL:
                    cached = known.get((ref.namespace or "default", ref.name))
                    if cached is not None:
                        return dict(cached)
                return await self._get(ref)

            devices = [d for d in [await read(ref) for ref in sorted(looked, key=str)] if d]
            names = {(_ns(d), model_name(d)) for d in devices}
            models = [m for m in [await read(ResourceRef(MODEL, ns, n)) for ns, n in names] if m]
        by_name = {(_ns(m), m["metadata"]["name"]): m for m in models}
        return devices, by_name, looked

    async def _get(self, ref: ResourceRef) -> JSONObject | None:
        try:
            return await self._objects.get(ref)
        except NotFound:
            return None

    async def reconcile(
        self, handed: Mapping[ResourceRef, JSONObject | None] | None = None
    ) -> None:
        """Bring the twins in line with the held Device objects (``handed``: only these,
        as the sync handed them over; None: all)."""
        devices, models, looked = await self._devices_for(handed)
        now = self._now_ms()
        seen: set[ResourceRef] = set()
        added: list[MembershipDevice] = []
        touched: set[ResourceRef] = set()  # devices whose objects changed or went
        for device in devices:
            model = models.get((_ns(device), model_name(device)), {})
            info = info_of(device, model)
            try:
                fresh = twin_from_device(device, model, now_ms=now)
            except TwinError as e:
                log.warning("device %s skipped: %s", info.ref, e)
                continue
            seen.add(info.ref)
            touched.add(info.ref)
            self.infos[info.ref] = info
            held = self.held.get(info.ref)
            if held is None:
                held = HeldTwin(fresh, dict(info.desired))
                self._store(held)
                added.append(dispatch.membership_device(fresh, attributes=info.attributes))
                self._report(fresh, urgent=True)
                continue
            await self._apply_cloud(held, fresh, info, now)
        removed = [ref for ref in looked if ref in self.held and ref not in seen]
        gone = [dispatch.membership_device(self.held[ref].twin) for ref in removed]
        for ref in removed:
            del self.held[ref]
            if self.infos.pop(ref, None) is not None:
                touched.add(ref)
            self._dirty.discard(ref)
            self._deleted.add(ref)
            self.reporter.forget(ref)
        if removed:
            self._flush_wake.set()
        configs_changed = False
        if self.on_devices is not None and (touched or handed is None):
            configs_changed = self.on_devices(self.infos, None if handed is None else touched)
        if added or gone or configs_changed:  # mappers reload their config on this
            note = MembershipUpdated(new_event_id(), now, added, gone)
            topic = node_topic(self.node, NodeAction.MEMBERSHIP_UPDATED)
            await self._send((dispatch.Publication(topic, payloads.encode(note)),))

    async def _apply_cloud(
        self, held: HeldTwin, fresh: DeviceTwin, info: DeviceInfo, now: int
    ) -> None:
        twin = held.twin
        for key, defined in fresh.properties.items():
            twin = define_property(twin, key, defined.type, read_only=defined.read_only)
        desired: dict[str, str | None] = {
            key: None for key, p in twin.visible().items() if key not in fresh.properties
        }
        for key, value in info.desired.items():
            prop = twin.properties.get(key)
            if prop is None or value is None or value == held.cloud_desired.get(key):
                continue
            if prop.expected is None or prop.expected.value != value:
                desired[key] = value  # the cloud wins over a value set locally meanwhile
        event_id = new_event_id()
        change = (
            apply_cloud_desired(twin, desired, event_id=event_id, now_ms=now)
            if desired
            else changes(held.twin, twin, event_id=event_id, now_ms=now)
        )
        updated = HeldTwin(change.twin, dict(info.desired))
        if updated != held:
            self._store(updated)
        if desired:
            self._report(change.twin, observed=True)
            await self._send(dispatch.publications(change))

    def statistics(self) -> dict[str, int]:
        return {
            "devices": len(self.held),
            "handled": self.handled,
            "errors": self.errors,
            "unflushed": len(self._dirty) + len(self._deleted),
        }
