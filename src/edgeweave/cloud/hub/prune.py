"""Drop a node's entry from ``App.status.nodes`` once the App is no longer placed there.

Agents report app status per node (``status.nodes.<node>``); when an App stops selecting a node
(its selector changed, the node's labels changed, the node was deleted) nothing would ever
remove that entry, and Apps would grow with fleet churn. The dispatcher notes each such
(node, App) pair; one background task removes the entries with compare-and-set writes.

Must not: write Apps that still run on the node, or queue without bound (excess notes are
dropped and picked up again by the next change of the App).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edgeweave.cloud.hub.index import DesiredIndex
from edgeweave.cloud.store.base import Store
from edgeweave.errors import Conflict, EdgeweaveError, NotFound
from edgeweave.protocol.refs import ResourceRef

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
CAS_ATTEMPTS = 8


class StatusPruner:
    def __init__(self, store: Store, index: Callable[[], DesiredIndex]) -> None:
        self._store = store
        self._index = index
        self._pending: set[tuple[str, ResourceRef]] = set()
        self._wake = asyncio.Event()
        self.pruned = 0

    def note(self, node: str, app: ResourceRef) -> None:
        if len(self._pending) >= MAX_PENDING:
            return
        self._pending.add((node, app))
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, set()
            for node, app in batch:
                if self._index().desired(node, app) is None:  # still not placed there
                    await self._prune(node, app)

    async def _prune(self, node: str, app: ResourceRef) -> None:
        for _ in range(CAS_ATTEMPTS):
            try:
                obj = await self._store.get(app.kind, app.namespace, app.name)
                nodes = (obj.get("status") or {}).get("nodes")
                if not isinstance(nodes, dict) or node not in nodes:
                    return
                status = dict(obj["status"])
                status["nodes"] = {k: v for k, v in nodes.items() if k != node}
                obj["status"] = status
                await self._store.update(obj)  # CAS on the resourceVersion just read
                self.pruned += 1
                return
            except Conflict:
                continue
            except NotFound:
                return
            except EdgeweaveError as e:
                log.warning("removing node %s from %s's status failed: %s", node, app, e)
                return
