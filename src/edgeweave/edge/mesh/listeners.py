"""One proxy listener per service port, started and stopped as services come and go.

Each listener is a supervised task holding :func:`edgeweave.mesh.proxy.open_proxy` open on the
service's own address and port. A port the agent may not bind (below 1024 without root, or
taken by someone else) falls back to a free port on the same address, with a warning: the
name's A record then leads nowhere on that port, but ``EDGEWEAVE_SERVICE_<NAME>`` and
``edgeweave edge status`` give the address that works. An address that cannot be bound at all
leaves the port without a listener (logged) rather than stopping the mesh.

This module must not read the store or choose endpoints; the proxy reads the catalog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from edgeweave.aio.tasks import Supervisor
from edgeweave.errors import ConfigError
from edgeweave.mesh.catalog import Catalog, ServicePortRef
from edgeweave.mesh.proxy import Connect, HostPort, open_proxy

log = logging.getLogger(__name__)


@dataclass
class Listener:
    ref: ServicePortRef
    host: str
    stop: asyncio.Event
    task: asyncio.Task[object]
    address: HostPort | None = None  # where it listens; None: it could not listen


class Listeners:
    def __init__(
        self,
        catalog: Catalog,
        supervisor: Supervisor,
        connect_for: Callable[[ServicePortRef], Connect],
        *,
        connect_timeout_s: float,
        max_connections: int,
    ) -> None:
        self._catalog = catalog
        self._supervisor = supervisor
        self._connect_for = connect_for
        self._connect_timeout_s = connect_timeout_s
        self._max_connections = max_connections
        self._by_ref: dict[ServicePortRef, Listener] = {}

    def address_of(self, ref: ServicePortRef) -> HostPort | None:
        listener = self._by_ref.get(ref)
        return listener.address if listener is not None else None

    async def sync(self, wanted: dict[ServicePortRef, str]) -> None:
        """Listen for exactly the refs in ``wanted`` (ref → host address)."""
        for ref, listener in list(self._by_ref.items()):
            if wanted.get(ref) != listener.host:
                await self._stop(listener)
        for ref, host in wanted.items():
            if ref not in self._by_ref:
                await self._start(ref, host)

    async def aclose(self) -> None:
        for listener in list(self._by_ref.values()):
            await self._stop(listener)

    async def _start(self, ref: ServicePortRef, host: str) -> None:
        ready: asyncio.Future[HostPort | None] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = self._supervisor.start(self._serve(ref, host, ready, stop), name=f"proxy/{ref}")
        listener = Listener(ref, host, stop, task)
        self._by_ref[ref] = listener
        listener.address = await ready

    async def _stop(self, listener: Listener) -> None:
        del self._by_ref[listener.ref]
        listener.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([listener.task])

    async def _serve(
        self,
        ref: ServicePortRef,
        host: str,
        ready: asyncio.Future[HostPort | None],
        stop: asyncio.Event,
    ) -> None:
        try:
            for port in (ref.port, 0):
                try:
                    async with open_proxy(
                        self._catalog,
                        target=ref,
                        listen=(host, port),
                        connect=self._connect_for(ref),
                        connect_timeout_s=self._connect_timeout_s,
                        max_connections=self._max_connections,
                    ) as proxy:
                        if port == 0:
                            log.warning(
                                "mesh: %s listens on %s:%d instead of port %d (taken, or below "
                                "1024 without root); apps find it in EDGEWEAVE_SERVICE_*",
                                ref,
                                *proxy.address,
                                ref.port,
                            )
                        ready.set_result(proxy.address)
                        await stop.wait()
                        return
                except ConfigError as e:
                    if ready.done():  # not a bind failure: the listener ends, the mesh goes on
                        log.error("mesh: the listener of %s ended: %s", ref, e.message)
                        return
                    log.info("mesh: %s", e.message)
            log.error("mesh: no listener for %s: %s cannot be bound", ref, host)
        finally:
            if not ready.done():
                ready.set_result(None)
