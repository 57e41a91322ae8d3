"""The mesh on one node: feeds the catalog from the local store and reaches endpoints.

:class:`MeshHost` holds the node's view of the mesh (DESIGN.md §7, docs/mesh.md):

- ``refresh`` reads every ``Service`` and ``Endpoints`` object from the agent's local store
  into the pure :class:`~edgeweave.mesh.catalog.Catalog` and starts or stops the proxy
  listeners to match. Everything comes from the store, so names resolve and direct paths work
  with the cloud unreachable, also after an agent restart (DESIGN.md §4);
- ``connect`` is the proxies' way to an endpoint: on this node, the app's local address; on
  another node, a direct TCP connect to its advertised address unless that failed before, and
  when it fails, the relay through the cloud. Each outcome updates the path table (``paths``);
- ``probe_forever`` finds the path to endpoints nobody connected to yet and retries relayed
  ones directly every ``reprobe_interval_s``; paths per peer node are reported upstream
  (``node.status`` ``mesh_paths``), which is what ``edgeweave get endpoints -o wide`` shows;
- ``app_env`` gives apps ``EDGEWEAVE_DNS`` and ``EDGEWEAVE_SERVICE_<NAME>[_<PORT>]``;
- ``relay_allowed`` decides whether a relayed stream may reach a port on this node.

The composition (supervisor, DNS server, tasks) is :func:`edgeweave.edge.mesh.open_mesh_host`.
This module must not import the cloud, open the link, or touch the runtime.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from edgeweave.config.edge import MeshSettings
from edgeweave.edge.mesh.addresses import AddressPool, join_host_port
from edgeweave.edge.mesh.bridge import BUFFER_BYTES
from edgeweave.edge.mesh.listeners import Listeners
from edgeweave.edge.mesh.objects import RemoteView, endpoints_by_port, service_entry
from edgeweave.edge.mesh.paths import EndpointPaths, probe
from edgeweave.edge.mesh.relay import RelayClient
from edgeweave.edge.store import EdgeStore
from edgeweave.errors import EdgeweaveError, InvalidObject
from edgeweave.mesh.catalog import Catalog, Endpoint, EndpointPath, ServicePortRef
from edgeweave.mesh.proxy import Connect, HostPort, Streams
from edgeweave.protocol import messages as m

log = logging.getLogger(__name__)

PROBES_AT_ONCE = 32
_NOT_ENV_CHAR = re.compile(r"[^A-Z0-9_]")


def env_name(name: str) -> str:
    """A service or port name as part of an environment variable name."""
    return _NOT_ENV_CHAR.sub("_", name.upper())


class MeshHost:
    def __init__(
        self,
        settings: MeshSettings,
        node: str,
        store: EdgeStore,
        *,
        relay: RelayClient | None,
        report_paths: Callable[[dict[str, EndpointPath]], None],
        on_status: Callable[[dict[str, Any]], None],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.node = node
        self.store = store
        self.catalog = Catalog(domain=settings.domain)
        self.pool = AddressPool(settings.service_cidr)
        self.paths = EndpointPaths(clock)
        self.relay = relay
        self.dns_address: HostPort | None = None
        self.listeners: Listeners | None = None  # set by open_mesh_host
        self.changed = asyncio.Event()  # the store's Services or Endpoints changed
        self._report_paths = report_paths
        self._on_status = on_status
        self._endpoints: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self._probe_wake = asyncio.Event()
        self._reported: dict[str, EndpointPath] | None = None

    # ------------------------------------------------------------------ feeding

    async def refresh(self) -> None:
        """Re-read Services and Endpoints from the store; listeners follow."""
        async with self._lock:
            services = await self.store.list("Service")
            endpoints = await self.store.list("Endpoints")
            self._apply_services(services)
            self._endpoints = {}
            for obj in endpoints:
                meta = obj.get("metadata") or {}
                key = (str(meta.get("namespace") or "default"), str(meta.get("name")))
                self._endpoints[key] = obj
            self._feed_endpoints()
            if self.listeners is not None:
                await self.listeners.sync(self._wanted_listeners())
            self._probe_wake.set()
            self.publish()

    def _apply_services(self, objects: list[dict[str, Any]]) -> None:
        wanted = {}
        for obj in objects:
            try:
                entry = service_entry(obj)
            except InvalidObject as e:
                log.warning("mesh: skipping a service: %s", e.message)
                continue
            wanted[(entry.namespace, entry.name)] = entry
        for entry in self.catalog.services():
            if (entry.namespace, entry.name) not in wanted:
                self.catalog.delete_service(entry.namespace, entry.name)
                self.pool.release(entry.namespace, entry.name)
        for (namespace, name), entry in wanted.items():
            try:
                self.pool.allocate(namespace, name)
                self.catalog.apply_entry(entry)
            except EdgeweaveError as e:
                log.error("mesh: cannot serve %s.%s: %s", name, namespace, e.message)

    def _feed_endpoints(self) -> None:
        view = RemoteView(self.node, self.settings.local_app_host, self.paths.path_to)
        remote: set[str] = set()
        for entry in self.catalog.services():
            obj = self._endpoints.get((entry.namespace, entry.name))
            by_port = endpoints_by_port(obj, view) if obj is not None else {}
            for port in entry.ports:
                found = by_port.get(port.port, [])
                # an unhealthy endpoint is forgotten: back to health, it is probed afresh
                remote.update(e.key for e in found if e.node != self.node and e.healthy)
                ref = ServicePortRef(entry.namespace, entry.name, port.port)
                try:
                    self.catalog.set_endpoints(ref, found)
                except EdgeweaveError as e:
                    log.error("mesh: %s", e.message)
        if self.paths.forget_except(remote):
            self._report()

    def _wanted_listeners(self) -> dict[ServicePortRef, str]:
        wanted: dict[ServicePortRef, str] = {}
        for entry in self.catalog.services():
            address = self.pool.address_of(entry.namespace, entry.name)
            for port in entry.ports:
                if address is not None and port.protocol == "TCP":
                    wanted[ServicePortRef(entry.namespace, entry.name, port.port)] = address
        return wanted

    # ------------------------------------------------------------------ reaching endpoints

    def connect_for(self, ref: ServicePortRef) -> Connect:
        async def connect(endpoint: Endpoint, timeout_s: float) -> Streams:
            return await self.connect(ref, endpoint, timeout_s)

        return connect

    async def connect(self, ref: ServicePortRef, endpoint: Endpoint, timeout_s: float) -> Streams:
        """Reach ``endpoint`` of ``ref``: locally, directly, or through the relay."""
        local = endpoint.node == self.node
        if local or (endpoint.address and self.paths.path_to(endpoint.key) != "relay"):
            limit = timeout_s if local else self.settings.direct_connect_timeout_s
            try:
                async with asyncio.timeout(limit):
                    streams = await asyncio.open_connection(
                        endpoint.address, endpoint.port, limit=BUFFER_BYTES
                    )
            except (OSError, TimeoutError):
                if local:
                    raise
                self.record_path(endpoint, "relay")  # the relay may reach it from inside
            else:
                if not local:
                    self.record_path(endpoint, "direct")
                return streams
        if self.relay is None:
            raise ConnectionRefusedError(f"no relay to reach node {endpoint.node}")
        return await self.relay.open(ref, endpoint)

    def record_path(self, endpoint: Endpoint, path: EndpointPath) -> None:
        if self.paths.record(endpoint.key, endpoint.node, path):
            how = "directly" if path == "direct" else "through the relay"
            log.info("mesh: endpoint %s is reached %s", endpoint.key, how)
            self._feed_endpoints()
            self._report()
            self.publish()

    def _report(self) -> None:
        snapshot = self.paths.by_node()
        if snapshot != self._reported:
            self._reported = snapshot
            self._report_paths(snapshot)

    async def probe_forever(self) -> None:
        """Probe endpoints never tried, and relayed ones every reprobe interval."""
        s = self.settings
        while True:
            targets: dict[str, Endpoint] = {}
            for entry in self.catalog.services():
                for port in entry.ports:
                    ref = ServicePortRef(entry.namespace, entry.name, port.port)
                    for e in self.catalog.endpoints(ref):
                        if e.node != self.node and e.address and e.healthy:
                            targets.setdefault(e.key, e)
            due = [e for k, e in targets.items() if self.paths.due(k, s.reprobe_interval_s)]
            for i in range(0, len(due), PROBES_AT_ONCE):
                batch = due[i : i + PROBES_AT_ONCE]
                found = await asyncio.gather(
                    *(probe(e.address, e.port, s.direct_connect_timeout_s) for e in batch)
                )
                for endpoint, path in zip(batch, found, strict=True):
                    self.record_path(endpoint, path)
            self._probe_wake.clear()
            try:  # a timer, not synchronisation: the next round of reprobes
                async with asyncio.timeout(s.reprobe_interval_s):
                    await self._probe_wake.wait()
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ what others see

    def relay_allowed(self, msg: m.RelayOpen) -> str | None:
        """None when ``msg`` names a port this node serves for that service, else why not."""
        ns, name = msg.service.namespace, msg.service.name
        entry = self.catalog.service(ns, name)
        if entry is None or entry.port(msg.port) is None:
            return f"node {self.node} does not know service {ns}/{name} port {msg.port}"
        ref = ServicePortRef(ns, name, msg.port)
        for endpoint in self.catalog.endpoints(ref):
            if endpoint.node == self.node and endpoint.port == msg.target_port:
                return None
        return f"port {msg.target_port} is not an endpoint of {ns}/{name} on node {self.node}"

    def app_env(self, namespace: str) -> dict[str, str]:
        """The mesh's environment variables for an app in ``namespace``."""
        env: dict[str, str] = {}
        if self.dns_address is not None:
            env["EDGEWEAVE_DNS"] = join_host_port(*self.dns_address)
        for entry in self.catalog.services():
            if entry.namespace != namespace or self.listeners is None:
                continue
            base = f"EDGEWEAVE_SERVICE_{env_name(entry.name)}"
            for port in entry.ports:
                bound = self.listeners.address_of(ServicePortRef(namespace, entry.name, port.port))
                if bound is None:
                    continue
                env.setdefault(base, join_host_port(*bound))
                if port.name:
                    env[f"{base}_{env_name(port.name)}"] = join_host_port(*bound)
        return env

    def status(self) -> dict[str, Any]:
        services = []
        for entry in self.catalog.services():
            ports = []
            for port in entry.ports:
                ref = ServicePortRef(entry.namespace, entry.name, port.port)
                bound = self.listeners.address_of(ref) if self.listeners is not None else None
                ports.append(
                    {
                        "port": port.port,
                        "listen": join_host_port(*bound) if bound else None,
                        "endpoints": [
                            {
                                "node": e.node,
                                "target": join_host_port(e.address, e.port)
                                if e.address
                                else f":{e.port}",
                                "healthy": e.healthy,
                                "path": "local" if e.node == self.node else e.path,
                            }
                            for e in self.catalog.endpoints(ref)
                        ],
                    }
                )
            services.append(
                {
                    "service": f"{entry.namespace}/{entry.name}",
                    "address": self.pool.address_of(entry.namespace, entry.name),
                    "ports": ports,
                }
            )
        dns = join_host_port(*self.dns_address) if self.dns_address else None
        return {"dns": dns, "services": services, "paths": self.paths.by_node()}

    def publish(self) -> None:
        self._on_status(self.status())
