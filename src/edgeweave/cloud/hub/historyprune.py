"""Forget the twin history of a deleted Device.

History rows are trimmed per property as values arrive; a deleted Device gets no more values,
so its rows would stay forever. The dispatcher notes each Device deletion it sees in the
store's change stream; one background task deletes those devices' history. The hub starts
from a relist, so a deletion missed while the cloud was down is not noted: such rows still
age out of a re-created device of the same name at its next insert (retention by age), and
are otherwise left.

Must not: block the dispatcher (notes are queued without awaiting) or queue without bound
(excess notes are dropped, with a warning).
"""

from __future__ import annotations

import asyncio
import logging

from edgeweave.cloud.store.base import NodeSyncStore
from edgeweave.errors import EdgeweaveError

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
RETRY_S = 5.0


class HistoryPruner:
    def __init__(self, store: NodeSyncStore) -> None:
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

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            namespace, name = await self._pending.get()
            while True:
                try:
                    self.pruned_rows += await self._store.delete_twin_history(namespace, name)
                    break
                except EdgeweaveError as e:
                    log.warning("pruning the twin history of %s/%s failed: %s", namespace, name, e)
                    await asyncio.sleep(RETRY_S)  # the store is away: retry, not synchronisation
