"""Downstream sync on the agent: persist what the cloud sends, then say it is safe to ack, and
wake the reconciler that turns the held desired state into running apps.

Persist-then-ack: :meth:`Sync.persist` returns the acks only after the batch is on disk in one
transaction. The reconciler runs from the local store alone, so it is the same code path with
the cloud reachable or not (that is local autonomy).

Device and DeviceModel objects are the exception to "persist, then act": the twin host is
handed them before the transaction is written, so a new desired value reaches the device
while the fsync runs rather than after it. What the host applies is the cloud's own value, and
a batch that is not on disk is not acked, so the cloud sends it again. What must not happen is
the host's twins reaching disk ahead of the objects they came from (a restart would then
apply the older stored object again, moving the device back): :meth:`Sync.wait_persisted`
holds the host's twin writes until every batch handed over early is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from edgeweave.aio.backoff import Backoff
from edgeweave.edge.store import EdgeStore, batch_outcome
from edgeweave.errors import InvalidObject
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import ResourceRef, Versioned

log = logging.getLogger(__name__)

Apply = Callable[
    [list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]], Awaitable[None]
]
WORKLOAD_KINDS = frozenset({"App", "ConfigMap", "Secret"})
DEVICE_KINDS = frozenset({"Device", "DeviceModel"})
MESH_KINDS = frozenset({"Service", "Endpoints"})
PIPELINE_KINDS = frozenset({"Pipeline", "Repo"})
RETRY_BASE_S = 1.0  # after a failed reconcile pass
RETRY_CAP_S = 30.0


class Sync:
    def __init__(self, store: EdgeStore) -> None:
        self.store = store
        self.changed = asyncio.Event()  # set when held workload objects changed
        self.devices_changed = asyncio.Event()  # ... held Device or DeviceModel objects
        # ... which ones, as their batch leaves them (None: deleted): the twin host takes
        # them, before they are on disk (see the module)
        self.device_objects: dict[ResourceRef, dict[str, Any] | None] = {}
        self.mesh_changed = asyncio.Event()  # ... when held Services or Endpoints changed
        self.pipelines_changed = asyncio.Event()  # ... held Pipelines or Repos
        self._early = 0  # batches whose Devices went to the twin host and are not on disk yet
        self._persisted = asyncio.Event()  # set while _early is 0
        self._persisted.set()

    async def held_summary(self) -> tuple[str, int]:
        return await self.store.held_digest(), await self.store.count()

    async def held(self) -> list[Versioned]:
        return await self.store.held()

    async def persist(self, batch: Sequence[m.Upsert | m.Delete]) -> list[Versioned]:
        upserts = [(u.ref, u.rv, u.object) for u in batch if isinstance(u, m.Upsert)]
        deletes = [Versioned(d.ref, d.rv) for d in batch if isinstance(d, m.Delete)]
        devices = _devices_of(upserts, deletes)
        if devices:  # to the twin host now, while the transaction is written (see above)
            self.device_objects.update(devices)
            self.devices_changed.set()
            self._early += 1
            self._persisted.clear()
            # one loop turn first: the twin host, woken above, sends the device its delta
            # before the store's worker thread starts encoding the batch (they share the GIL)
            await asyncio.sleep(0)
        try:
            await self.store.apply_batch(upserts, deletes)
        finally:
            if devices:
                self._early -= 1
                if not self._early:
                    self._persisted.set()
        if devices:  # for a waiter on the store (the agent waits for its first Device)
            self.devices_changed.set()
        if any(msg.ref.kind in WORKLOAD_KINDS for msg in batch):
            self.changed.set()
        if any(msg.ref.kind in MESH_KINDS for msg in batch):
            self.mesh_changed.set()
        if any(msg.ref.kind in PIPELINE_KINDS for msg in batch):
            self.pipelines_changed.set()
        return [Versioned(msg.ref, msg.rv) for msg in batch]

    async def wait_persisted(self) -> None:
        """Until every batch whose Devices went to the twin host early is on disk (or
        failed: then the cloud sends it again)."""
        await self._persisted.wait()


def _devices_of(
    upserts: Sequence[tuple[ResourceRef, int, dict[str, Any]]], deletes: Sequence[Versioned]
) -> dict[ResourceRef, dict[str, Any] | None]:
    """What the batch leaves of its Device and DeviceModel objects (None: deleted), by the
    store's own rule; nothing when the store will refuse the batch."""
    try:
        final = batch_outcome(
            [u for u in upserts if u[0].kind in DEVICE_KINDS],
            [d for d in deletes if d.ref.kind in DEVICE_KINDS],
        )
    except InvalidObject:  # the store refuses the batch, and says why
        return {}
    return {ref: obj for ref, (_rv, obj) in final.items()}


async def reconcile_forever(sync: Sync, apply: Apply, backoff: Backoff | None = None) -> None:
    """Apply the held workload to the runtime at start and after every change (coalesced).

    A failed pass (the store unreadable, or ``apply`` raising) is retried after a backoff
    delay until one succeeds, with no change needed: a node offline must not leave its apps
    down until the cloud sends something. A change during the delay retries at once.
    """
    backoff = backoff or Backoff(base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S)
    sync.changed.set()  # start from the local store at once: apps come back with no cloud
    while True:
        await sync.changed.wait()
        sync.changed.clear()
        try:
            await _reconcile_once(sync.store, apply)
        except Exception:  # a bad object must not stop reconciling; retry until it works
            delay = backoff.next_delay()
            log.exception("reconciling the held apps failed; retrying in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sync.changed.wait(), delay)
            sync.changed.set()
        else:
            backoff.reset()


async def _reconcile_once(store: EdgeStore, apply: Apply) -> None:
    apps = await store.list("App")
    configmaps = await store.list("ConfigMap")
    secrets = await store.list("Secret")
    await apply(apps, configmaps, secrets)
