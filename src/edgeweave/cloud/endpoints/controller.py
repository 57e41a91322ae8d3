"""The endpoints controller: keeps one ``Endpoints`` object per Service up to date in the store.

It lists Services, Apps, Nodes and Endpoints once, then follows **one** store watch from the
version read before listing (relisting on ``Gone``). Each change is reduced to a small view
(:mod:`.derive`); a change whose view equals the previous one (an App's restart count, a
Node's heartbeat) costs a comparison and nothing else. Otherwise the Services it can affect
are marked dirty:

- a Service: itself;
- an App: the Services of its namespace that select its old or its new labels;
- a Node: the Services with an endpoint on it (its address changed), or with an endpoint on a
  peer it reports a path to (its ``meshPaths`` changed);
- an Endpoints object: its Service (someone else wrote it, or it is an orphan to delete).

One writer task takes dirty Services one at a time, derives the object and writes it only when
its content differs from what the store holds (compare-and-set on the version it last saw; a
conflict re-reads and tries again). A Service that is gone gets its Endpoints deleted. So a
burst of changes to one Service costs one write, and several cloud replicas running this
controller converge on the same objects without fighting (equal content is never rewritten).

This module must not send anything to nodes (the hub's index picks the objects up like any
other) or decide paths (nodes report those).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from edgeweave.cloud.endpoints.derive import (
    ENDPOINTS,
    AppView,
    JSONObject,
    NodeView,
    ServiceView,
    app_view,
    derive_entries,
    derive_paths,
    endpoints_object,
    node_view,
    same_endpoints,
    service_view,
)
from edgeweave.cloud.store.base import Store, WatchFilter, iter_objects
from edgeweave.errors import AlreadyExists, Conflict, Gone, NotFound, StoreError

log = logging.getLogger(__name__)

SERVICE, APP, NODE = "Service", "App", "Node"
KINDS = (SERVICE, APP, NODE, ENDPOINTS)
_WATCHED = WatchFilter(kinds=frozenset(KINDS))  # other kinds' changes (Devices) never wake it
RETRY_DELAY_S = 1.0
Key = tuple[str, str]  # (namespace, service name)


def _key(obj: JSONObject) -> Key:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return "", ""
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _rv(obj: JSONObject) -> int:
    try:
        return int(str((obj.get("metadata") or {}).get("resourceVersion")))
    except ValueError:
        return 0


class EndpointsController:
    """``load`` then ``run``; see the module docstring."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._services: dict[Key, ServiceView] = {}
        self._apps: dict[Key, AppView] = {}
        self._ns_apps: dict[str, set[Key]] = {}
        self._nodes: dict[str, NodeView] = {}
        self._written: dict[Key, JSONObject] = {}
        self._service_nodes: dict[Key, frozenset[str]] = {}  # endpoint nodes, last derived
        self._node_services: dict[str, set[Key]] = {}
        self._dirty: dict[Key, None] = {}
        self._wake = asyncio.Event()
        self._since = 0
        self.writes = 0

    def statistics(self) -> dict[str, int]:
        return {
            "services": len(self._services),
            "endpoints_written": self.writes,
            "endpoints_dirty": len(self._dirty),
        }

    # ------------------------------------------------------------------ following the store

    async def load(self) -> None:
        """List every kind it follows; every Service and Endpoints object starts dirty."""
        since = await self._store.current_resource_version()
        listed: list[JSONObject] = []
        for kind in KINDS:
            listed.extend([obj async for obj in iter_objects(self._store, kind)])
        # swapped in without an await, so the writer never sees half a list
        self._services.clear()
        self._apps.clear()
        self._ns_apps.clear()
        self._nodes.clear()
        self._written.clear()
        for obj in listed:
            self.apply("ADDED", obj)
        self._since = since
        for key in [*self._services, *self._written]:
            self._mark(key)

    async def run(self) -> None:
        """Follow the store and write Endpoints until cancelled."""
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(self._write_loop(), name="endpoints-writer")
            try:
                await self._follow()
            finally:
                writer.cancel()

    async def _follow(self) -> None:
        while True:
            try:
                async with self._store.open_watch(self._since, _WATCHED) as watch:
                    async for event in watch:
                        self._since = event.resource_version
                        self.apply(event.type, event.object)
                return  # the store closed the watch: it is shutting down
            except Gone:
                log.warning("endpoints watch fell behind the change log; relisting")
                await self._reload()
            except StoreError as e:
                log.warning("endpoints watch failed (%s); retrying", e)
                await asyncio.sleep(RETRY_DELAY_S)

    async def _reload(self) -> None:
        while True:
            try:
                await self.load()
                return
            except StoreError as e:
                log.warning("endpoints relist failed (%s); retrying", e)
                await asyncio.sleep(RETRY_DELAY_S)

    def apply(self, event_type: str, obj: JSONObject) -> None:
        """One store change: update the views, mark what it may change."""
        kind = obj.get("kind")
        deleted = event_type == "DELETED"
        key = _key(obj)
        if kind == SERVICE:
            view = None if deleted else service_view(obj)
            if view is None:
                self._services.pop(key, None)
            else:
                self._services[key] = view
            self._mark(key)
        elif kind == APP:
            self._on_app(key, None if deleted else app_view(obj))
        elif kind == NODE:
            self._on_node(key[1], None if deleted else node_view(obj))
        elif kind == ENDPOINTS:
            if deleted:
                self._written.pop(key, None)
            elif _rv(obj) >= _rv(self._written.get(key, {})):
                self._written[key] = obj
            self._mark(key)

    def _on_app(self, key: Key, new: AppView | None) -> None:
        old = self._apps.get(key)
        if old == new:
            return
        namespace = key[0]
        if new is None:
            self._apps.pop(key, None)
            self._ns_apps.get(namespace, set()).discard(key)
        else:
            self._apps[key] = new
            self._ns_apps.setdefault(namespace, set()).add(key)
        labels = [v.label_map() for v in (old, new) if v is not None]
        for svc_key, service in self._services.items():
            if svc_key[0] == namespace and any(service.selects(lab) for lab in labels):
                self._mark(svc_key)

    def _on_node(self, name: str, new: NodeView | None) -> None:
        old = self._nodes.get(name)
        if old == new:
            return
        if new is None:
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = new
        old_address = old.address if old is not None else None
        new_address = new.address if new is not None else None
        if old_address != new_address:
            for svc_key in self._node_services.get(name, ()):
                self._mark(svc_key)
        old_paths = dict(old.paths) if old is not None else {}
        new_paths = dict(new.paths) if new is not None else {}
        if old_paths != new_paths:
            for peer in old_paths.keys() | new_paths.keys():
                for svc_key in self._node_services.get(peer, ()):
                    self._mark(svc_key)

    def _mark(self, key: Key) -> None:
        self._dirty[key] = None
        self._wake.set()

    # ------------------------------------------------------------------ writing

    def desired(self, key: Key) -> JSONObject | None:
        """The Endpoints object ``key``'s Service should have now (None: no Service)."""
        service = self._services.get(key)
        if service is None:
            self._set_service_nodes(key, frozenset())
            return None
        apps = [self._apps[k] for k in sorted(self._ns_apps.get(key[0], ()))]
        entries = derive_entries(service, apps, self._nodes)
        self._set_service_nodes(key, frozenset(e["node"] for e in entries))
        return endpoints_object(service, entries, derive_paths(entries, self._nodes))

    def _set_service_nodes(self, key: Key, nodes: frozenset[str]) -> None:
        old = self._service_nodes.get(key, frozenset())
        for node in old - nodes:
            services = self._node_services.get(node)
            if services is not None:
                services.discard(key)
                if not services:
                    del self._node_services[node]
        for node in nodes - old:
            self._node_services.setdefault(node, set()).add(key)
        if nodes:
            self._service_nodes[key] = nodes
        else:
            self._service_nodes.pop(key, None)

    async def _write_loop(self) -> None:
        while True:
            if not self._dirty:
                self._wake.clear()
                await self._wake.wait()
                continue
            key = next(iter(self._dirty))
            del self._dirty[key]
            try:
                await self.sync_one(key)
            except StoreError as e:
                log.warning("writing endpoints of %s/%s failed (%s); retrying", *key, e)
                self._mark(key)
                await asyncio.sleep(RETRY_DELAY_S)

    async def sync_one(self, key: Key) -> None:
        """Make the stored Endpoints of ``key`` match what is desired (one write at most)."""
        want = self.desired(key)
        have = self._written.get(key)
        namespace, name = key
        try:
            if want is None:
                if have is not None:
                    await self._store.delete(ENDPOINTS, namespace, name, resource_version=_rv(have))
                    self._written.pop(key, None)
                    self.writes += 1
                return
            if have is not None and same_endpoints(want, have):
                return
            if have is None:
                stored = await self._store.create(want)
            else:
                want["metadata"]["resourceVersion"] = str(_rv(have))
                stored = await self._store.update(want)
        except (Conflict, AlreadyExists, NotFound):
            await self._reread(key)
            return
        self._written[key] = stored
        self.writes += 1

    async def _reread(self, key: Key) -> None:
        """Someone else wrote first: take the stored object and look again."""
        try:
            self._written[key] = await self._store.get(ENDPOINTS, *key)
        except NotFound:
            self._written.pop(key, None)
        self._mark(key)


@contextlib.asynccontextmanager
async def open_endpoints_controller(store: Store) -> AsyncIterator[EndpointsController]:
    """List, then keep Endpoints in step with the store until the block ends."""
    controller = EndpointsController(store)
    await controller.load()
    task = asyncio.create_task(_supervised(controller), name="cloud-endpoints")
    try:
        yield controller
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _supervised(controller: EndpointsController) -> None:
    """A crash is logged and the controller relists and starts again (it holds no lost state)."""
    while True:
        try:
            await controller.run()
            return
        except Exception:
            log.exception("the endpoints controller crashed; relisting")
            await asyncio.sleep(RETRY_DELAY_S)
            with contextlib.suppress(StoreError):
                await controller.load()
