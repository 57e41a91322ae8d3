"""Forget the twin history of a deleted Device.

History rows are trimmed per property as values arrive; a deleted Device gets no more values,
so its rows would stay forever. The dispatcher notes each Device deletion it sees in the
store's change stream; one background task deletes those devices' history. The hub starts
from a relist, so a deletion made while no cloud process ran is not seen in the stream: the
task starts with a sweep that notes every device with history but no Device object.

Must not: block the dispatcher (notes are queued without awaiting) or queue without bound
(excess notes are dropped, with a warning).
"""

from __future__ import annotations

import asyncio
import logging

from edgeweave.cloud.store.base import CloudStore, iter_objects
from edgeweave.errors import EdgeweaveError

log = logging.getLogger(__name__)

DEVICE = "Device"
MAX_PENDING = 10_000
RETRY_S = 5.0


class HistoryPruner:
    def __init__(self, store: CloudStore) -> None:
        self._store = store
        self._pending: asyncio.Queue[tuple[str, str]] = asyncio.Queue(MAX_PENDING)
        self.pruned_rows = 0
        self.dropped_notes = 0

    def note(self, namespace: str, name: str) -> None:
        """Device ``namespace/name`` was deleted."""
        try:
            self._pending.put_nowait((namespace, name))
        except asyncio.QueueFull:
            self.dropped_notes += 1
            log.warning(
                "twin history of deleted Device %s/%s not pruned: queue full", namespace, name
            )

    def statistics(self) -> dict[str, int]:
        return {
            "pending": self._pending.qsize(),
            "pruned_rows": self.pruned_rows,
            "dropped_notes": self.dropped_notes,
        }

    async def sweep(self) -> None:
        """Note every device that has history but no Device object (deleted while no cloud
        process ran). The history is listed before the Devices: a device created meanwhile is
        among the Devices, so its history is kept."""
        with_history = await self._store.twin_history_devices()
        if not with_history:
            return
        existing = {
            (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
            async for obj in iter_objects(self._store, DEVICE)
        }
        for namespace, name in with_history:
            if (namespace, name) not in existing:
                self.note(namespace, name)

    async def run(self) -> None:
        """Until cancelled: the sweep (retried while the store is away), then the notes."""
        while True:
            try:
                await self.sweep()
                break
            except EdgeweaveError as e:
                log.warning("sweeping twin history of deleted Devices failed: %s", e)
                await asyncio.sleep(RETRY_S)  # the store is away: retry, not synchronisation
        while True:
            namespace, name = await self._pending.get()
            while True:
                try:
                    self.pruned_rows += await self._store.delete_twin_history(namespace, name)
                    break
                except EdgeweaveError as e:
                    log.warning("pruning the twin history of %s/%s failed: %s", namespace, name, e)
                    await asyncio.sleep(RETRY_S)  # the store is away: retry, not synchronisation
