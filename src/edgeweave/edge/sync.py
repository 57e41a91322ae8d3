"""Downstream sync on the agent: persist what the cloud sends, then say it is safe to ack, and
wake the reconciler that turns the held desired state into running apps.

Persist-then-ack: :meth:`Sync.persist` returns the acks only after the batch is on disk in one
transaction. The reconciler runs from the local store alone, so it is the same code path with
the cloud reachable or not (that is local autonomy).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from edgeweave.edge.store import EdgeStore
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import Versioned

log = logging.getLogger(__name__)

Apply = Callable[
    [list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]], Awaitable[None]
]
WORKLOAD_KINDS = frozenset({"App", "ConfigMap", "Secret"})


class Sync:
    def __init__(self, store: EdgeStore) -> None:
        self.store = store
        self.changed = asyncio.Event()  # set when held workload objects changed

    async def held_summary(self) -> tuple[str, int]:
        return await self.store.held_digest(), await self.store.count()

    async def held(self) -> list[Versioned]:
        return await self.store.held()

    async def persist(self, batch: Sequence[m.Upsert | m.Delete]) -> list[Versioned]:
        upserts = [(u.ref, u.rv, u.object) for u in batch if isinstance(u, m.Upsert)]
        deletes = [Versioned(d.ref, d.rv) for d in batch if isinstance(d, m.Delete)]
        await self.store.apply_batch(upserts, deletes)
        if any(msg.ref.kind in WORKLOAD_KINDS for msg in batch):
            self.changed.set()
        return [Versioned(msg.ref, msg.rv) for msg in batch]


async def reconcile_forever(sync: Sync, apply: Apply) -> None:
    """Apply the held workload to the runtime at start and after every change (coalesced)."""
    sync.changed.set()  # start from the local store at once: apps come back with no cloud
    while True:
        await sync.changed.wait()
        sync.changed.clear()
        store = sync.store
        apps = await store.list("App")
        configmaps = await store.list("ConfigMap")
        secrets = await store.list("Secret")
        try:
            await apply(apps, configmaps, secrets)
        except Exception:  # a bad object must not stop reconciling the others next time
            log.exception("reconciling %d apps failed", len(apps))
