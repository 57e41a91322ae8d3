"""Feeds the desired-state index from the store and tells sessions what may have changed.

One list of each relevant kind at start, then **one** store watch over all kinds from the
version read before listing (an object seen in both is applied once: the index ignores
versions it already holds). Each change goes through :meth:`DesiredIndex.apply`; the marks it
returns are handed to ``on_marks`` (the hub forwards them to the connected sessions, which
re-check each ref and send upserts/deletes). A compacted history (``Gone``) rebuilds the index
from a fresh list and marks every connected node fully.

This module must not send frames, touch sessions directly, or write to the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from edgeweave.cloud.hub.index import DEVICE, NODE, RELEVANT_KINDS, DesiredIndex, Marks
from edgeweave.cloud.store.base import Store, iter_objects
from edgeweave.errors import Gone, StoreError

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


def _rv_of(obj: dict[str, object]) -> int:
    meta = obj.get("metadata")
    value = meta.get("resourceVersion") if isinstance(meta, dict) else None
    try:
        return int(str(value))
    except ValueError:
        return 0


class Dispatcher:
    """Owns the :class:`DesiredIndex`; ``run`` is the one watch task."""

    def __init__(
        self,
        store: Store,
        *,
        on_marks: Callable[[Marks], None],
        on_node_deleted: Callable[[str], None],
        on_rebuilt: Callable[[], None],
        on_device_deleted: Callable[[str, str], None] | None = None,
    ) -> None:
        self._store = store
        self._on_marks = on_marks
        self._on_node_deleted = on_node_deleted
        self._on_device_deleted = on_device_deleted
        self._on_rebuilt = on_rebuilt
        self.index = DesiredIndex()
        self._since = 0
        self.events_applied = 0

    async def load(self) -> None:
        """List every relevant kind into a fresh index (before serving, and after ``Gone``)."""
        since = await self._store.current_resource_version()
        index = DesiredIndex()
        for kind in RELEVANT_KINDS:
            async for obj in iter_objects(self._store, kind):
                index.apply("ADDED", obj, _rv_of(obj))
        index.rv = max(index.rv, since)
        self.index = index
        self._since = since

    async def run(self) -> None:
        """Follow the store until cancelled; relist on ``Gone``, retry on store errors."""
        while True:
            try:
                await self._follow()
                return  # the store closed the watch: it is shutting down
            except Gone:
                log.warning("hub watch fell behind the change log; rebuilding the index")
                await self._reload()
            except StoreError as e:
                log.warning("hub watch failed (%s); retrying in %.0f s", e, RETRY_DELAY_S)
                await asyncio.sleep(RETRY_DELAY_S)

    async def _reload(self) -> None:
        while True:
            try:
                await self.load()
            except StoreError as e:
                log.warning("hub relist failed (%s); retrying in %.0f s", e, RETRY_DELAY_S)
                await asyncio.sleep(RETRY_DELAY_S)
            else:
                self._on_rebuilt()
                return

    async def _follow(self) -> None:
        async with self._store.open_watch(self._since) as watch:
            async for event in watch:
                self._since = event.resource_version
                marks = self.index.apply(event.type, event.object, event.resource_version)
                self.events_applied += 1
                if marks:
                    self._on_marks(marks)
                if event.type == "DELETED":
                    self._deleted(event.object)

    def _deleted(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name, namespace = meta.get("name"), meta.get("namespace") or ""
        if not isinstance(name, str) or not isinstance(namespace, str):
            return
        if obj.get("kind") == NODE:
            self._on_node_deleted(name)
        elif obj.get("kind") == DEVICE and self._on_device_deleted is not None:
            self._on_device_deleted(namespace, name)
