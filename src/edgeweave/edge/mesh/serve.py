"""Start the mesh on a node: DNS responder, proxies, relay ends, the follow and probe tasks.

:func:`open_mesh_host` is called by the agent's composition root with everything it needs;
nothing here reads settings files or dials on its own. DNS listens on ``mesh.dns_listen``:

- ``auto``: as root, ``169.254.96.16:53`` (EdgeMesh's link-local address) when that address
  is configured on this machine — the agent does not add it — else ``127.0.0.1:10053``, else
  any free port on 127.0.0.1 (logged);
- ``HOST:PORT``: exactly there (port 0: any free port); failing to bind stops the agent with
  the reason.

Leaving the block stops the listeners, the DNS server and every relayed stream. This module
must not import the cloud.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from edgeweave.aio.tasks import Supervisor, open_supervisor
from edgeweave.config.edge import MeshSettings
from edgeweave.edge.mesh.addresses import parse_host_port
from edgeweave.edge.mesh.host import MeshHost
from edgeweave.edge.mesh.listeners import Listeners
from edgeweave.edge.mesh.relay import RelayClient, RelayTarget
from edgeweave.edge.store import EdgeStore
from edgeweave.errors import ConfigError, EdgeweaveError
from edgeweave.mesh.catalog import EndpointPath
from edgeweave.mesh.dns import HostPort, open_dns_server
from edgeweave.transport.ws import WsOptions

log = logging.getLogger(__name__)

LINK_LOCAL_DNS = ("169.254.96.16", 53)
LOOPBACK_DNS = ("127.0.0.1", 10053)
RETRY_S = 1.0


def relay_url(hub_url: str) -> str:
    """The hub's relay endpoint next to its link endpoint (``wss://h:p/link`` → ``/relay``)."""
    parts = urlsplit(hub_url)
    return urlunsplit((parts.scheme, parts.netloc, "/relay", "", ""))


def cached_context(
    factory: Callable[[], ssl.SSLContext], cert_path: Path
) -> Callable[[], ssl.SSLContext]:
    """``factory``'s context, made again only when the certificate file changed (renewal):
    the relay dials once per connection, and loading a key pair costs milliseconds."""
    cache: dict[int, ssl.SSLContext] = {}

    def context() -> ssl.SSLContext:
        try:
            stamp = cert_path.stat().st_mtime_ns
        except OSError:
            stamp = -1
        if stamp not in cache:
            cache.clear()
            cache[stamp] = factory()
        return cache[stamp]

    return context


def dns_candidates(listen: str, is_root: bool) -> list[tuple[str, int]]:
    if listen != "auto":
        return [parse_host_port(listen, "mesh.dns_listen")]
    first = [LINK_LOCAL_DNS] if is_root else []
    return [*first, LOOPBACK_DNS, ("127.0.0.1", 0)]


def dns_upstream(text: str) -> HostPort | Literal["system"] | None:
    if text == "system":
        return "system"
    if text in ("none", ""):
        return None
    return parse_host_port(text, "mesh.dns_upstream")


def _starter(supervisor: Supervisor) -> Callable[[Coroutine[Any, Any, object], str], None]:
    def start(coro: Coroutine[Any, Any, object], name: str) -> None:
        supervisor.start(_guarded(coro, name), name=name)

    return start


async def _guarded(coro: Coroutine[Any, Any, object], name: str) -> None:
    """One stream's bug must not take the mesh (and the agent) down with it."""
    try:
        await coro
    except Exception:
        log.exception("mesh task %s failed", name)


@contextlib.asynccontextmanager
async def open_mesh_host(
    settings: MeshSettings,
    node: str,
    store: EdgeStore,
    *,
    hub_url: str,
    ssl_context: Callable[[], ssl.SSLContext],
    ws_options: WsOptions,
    report_paths: Callable[[dict[str, EndpointPath]], None],
    on_status: Callable[[dict[str, Any]], None],
) -> AsyncIterator[tuple[MeshHost, RelayTarget]]:
    """The running mesh of this node; see the module docstring."""
    async with open_supervisor("mesh") as supervisor, contextlib.AsyncExitStack() as stack:
        start = _starter(supervisor)
        url = relay_url(hub_url)
        relay = RelayClient(
            url, ssl_context, ws_options, start, open_timeout_s=settings.relay_open_timeout_s
        )
        host = MeshHost(
            settings,
            node,
            store,
            relay=relay,
            report_paths=report_paths,
            on_status=on_status,
            clock=time.monotonic,
        )
        target = RelayTarget(
            url,
            ssl_context,
            ws_options,
            start,
            local_host=settings.local_app_host,
            allowed=host.relay_allowed,
            connect_timeout_s=settings.relay_open_timeout_s,
        )
        host.listeners = Listeners(
            host.catalog,
            supervisor,
            host.connect_for,
            connect_timeout_s=settings.direct_connect_timeout_s + settings.relay_open_timeout_s,
            max_connections=settings.max_connections,
        )
        host.dns_address = await _open_dns(stack, host, settings)
        log.info("mesh DNS on %s:%d", *host.dns_address)
        await host.refresh()
        supervisor.start(lambda: _follow_store(host), name="follow-store", restart=True)
        supervisor.start(host.probe_forever, name="probe", restart=True)
        try:
            yield host, target
        finally:
            await host.listeners.aclose()


async def _open_dns(
    stack: contextlib.AsyncExitStack, host: MeshHost, settings: MeshSettings
) -> HostPort:
    upstream = dns_upstream(settings.dns_upstream)

    def address_for(entry: Any) -> str:
        return host.pool.address_of(entry.namespace, entry.name) or ""

    candidates = dns_candidates(settings.dns_listen, os.geteuid() == 0)
    error: ConfigError | None = None
    for dns_host, dns_port in candidates:
        try:
            server = open_dns_server(
                host.catalog,
                dns_host,
                dns_port,
                proxy_address=address_for,
                upstream=upstream,
                ttl_s=settings.dns_ttl_s,
            )
            return await stack.enter_async_context(server)
        except ConfigError as e:
            error = e
            log.info("mesh: %s", e.message)
    assert error is not None
    raise error


async def _follow_store(host: MeshHost) -> None:
    while True:
        await host.changed.wait()
        host.changed.clear()
        try:
            await host.refresh()
        except EdgeweaveError as e:
            log.warning("mesh: reading services from the store failed (%s); retrying", e)
            host.changed.set()
            await asyncio.sleep(RETRY_S)
