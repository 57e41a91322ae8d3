"""The mesh's TCP proxy: one listener per service port, spreading connections over endpoints.

For each accepted connection: read the service's policy and endpoints from the catalog (so
updates apply to the next connection), let the balancer choose, connect with a timeout, and on
failure ask the balancer for the next endpoint (at most ``max_attempts`` tries). Then bytes flow
both ways in bounded chunks, each write awaited with ``drain`` (backpressure, no unbounded
buffer); an EOF is passed on as a half-close, an error on either side aborts both.

Only a ``ConsistentHash`` policy keyed on a header makes the proxy look at the bytes: it peeks at
most ``max_head_bytes`` of the request head (waiting at most ``head_timeout_s``), hashes the
header's value, and forwards the peeked bytes unchanged.

How an endpoint is reached is injected (``connect``): direct TCP by default; the relay path plugs
in the same way. Connection handlers run under a supervisor, so none outlives ``open_proxy``.
This module must not know about the cloud, the edge agent or relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from edgeweave.aio.tasks import Supervisor, open_supervisor
from edgeweave.errors import ConfigError, EdgeweaveError
from edgeweave.mesh.balancer import Balancer, Request, balancer_for
from edgeweave.mesh.catalog import Catalog, Endpoint, Policy, ServicePortRef
from edgeweave.mesh.httphead import head_complete, header_value

logger = logging.getLogger(__name__)

HostPort = tuple[str, int]
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Connect = Callable[[Endpoint, float], Awaitable[Streams]]
BalancerFactory = Callable[[Policy], Balancer]

BUFFER_BYTES = 128 * 1024
"""Stream buffer limit per direction (reading pauses past twice this): bounds memory."""
CHUNK_BYTES = 256 * 1024
"""Largest read handed on in one write: fewer, larger copies (bulk throughput up 30-100 %)."""


async def connect_direct(endpoint: Endpoint, timeout_s: float) -> Streams:
    """Plain TCP to the endpoint's address (raises ``OSError`` / ``TimeoutError``)."""
    async with asyncio.timeout(timeout_s):
        return await asyncio.open_connection(endpoint.address, endpoint.port, limit=BUFFER_BYTES)


@dataclass(frozen=True)
class ProxyStatistics:
    accepted: int
    active: int
    rejected: int
    """Turned away at once: ``max_connections`` were already open."""
    failed: int
    """Closed without reaching any endpoint (none healthy, or every attempt failed)."""
    connect_failures: int
    """Single connect attempts that failed (each one moved on to the next endpoint)."""
    bytes_to_endpoints: int
    bytes_to_clients: int


class Proxy:
    """Use through ``open_proxy``; ``address`` is where it listens."""

    def __init__(
        self,
        catalog: Catalog,
        balancer_factory: BalancerFactory,
        target: ServicePortRef,
        connect: Connect,
        supervisor: Supervisor,
        *,
        connect_timeout_s: float,
        max_attempts: int,
        max_connections: int,
        max_head_bytes: int,
        head_timeout_s: float,
    ) -> None:
        self.catalog = catalog
        self.target = target
        self.address: HostPort = ("", 0)
        self._balancer_factory = balancer_factory
        self._balancer: tuple[Policy, Balancer] | None = None
        self._connect = connect
        self._supervisor = supervisor
        self._connect_timeout_s = connect_timeout_s
        self._max_attempts = max_attempts
        self._max_connections = max_connections
        self._max_head_bytes = max_head_bytes
        self._head_timeout_s = head_timeout_s
        self._ids = itertools.count()
        self._accepted = self._active = self._rejected = self._failed = 0
        self._connect_failures = self._to_endpoints = self._to_clients = 0

    def statistics(self) -> ProxyStatistics:
        return ProxyStatistics(
            accepted=self._accepted,
            active=self._active,
            rejected=self._rejected,
            failed=self._failed,
            connect_failures=self._connect_failures,
            bytes_to_endpoints=self._to_endpoints,
            bytes_to_clients=self._to_clients,
        )

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The server's callback: hand the connection to a supervised task (or refuse it)."""
        self._accepted += 1
        if self._active >= self._max_connections:
            self._rejected += 1
            writer.transport.abort()
            return
        self._active += 1
        try:
            self._supervisor.start(self._serve(reader, writer), name=f"conn-{next(self._ids)}")
        except RuntimeError:  # shutting down
            self._active -= 1
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: Streams | None = None
        try:
            upstream = await self._open_upstream(reader, writer)
            if upstream is None:
                self._failed += 1
            else:
                await self._pipe(reader, writer, *upstream)
        except Exception as e:  # one connection's trouble must never reach the supervisor
            logger.debug("proxy %s: connection ended with %r", self.target, e)
        finally:
            self._active -= 1
            await _close(writer, upstream[1] if upstream is not None else None)

    async def _open_upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Streams | None:
        entry = self.catalog.service(self.target.namespace, self.target.name)
        if entry is None:
            return None
        balancer = self._balancer_for(entry.policy)
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        head = b""
        value: str | None = None
        policy = entry.policy
        if policy.load_balancing == "ConsistentHash" and policy.hash_header:
            head = await self._peek_head(reader)
            value = header_value(head, policy.hash_header)
        request = Request(client_address=client, header_value=value)
        tried: set[str] = set()
        for _ in range(self._max_attempts):
            endpoint = balancer.choose(self.catalog.endpoints(self.target), request, exclude=tried)
            if endpoint is None:
                return None
            try:
                # the timeout is also ours: an injected connect may not honour it
                async with asyncio.timeout(self._connect_timeout_s):
                    upstream = await self._connect(endpoint, self._connect_timeout_s)
            except (OSError, TimeoutError, EdgeweaveError) as e:
                self._connect_failures += 1
                tried.add(endpoint.key)
                logger.debug("proxy %s: connect to %s failed: %r", self.target, endpoint.key, e)
                continue
            if head:
                upstream[1].write(head)
                self._to_endpoints += len(head)
            return upstream
        return None

    def _balancer_for(self, policy: Policy) -> Balancer:
        if self._balancer is None or self._balancer[0] != policy:
            self._balancer = (policy, self._balancer_factory(policy))
        return self._balancer[1]

    async def _peek_head(self, reader: asyncio.StreamReader) -> bytes:
        head = bytearray()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._head_timeout_s):
                while len(head) < self._max_head_bytes and not head_complete(head):
                    chunk = await reader.read(self._max_head_bytes - len(head))
                    if not chunk:
                        break
                    head += chunk
        return bytes(head)

    async def _pipe(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        writers = (client_writer, upstream_writer)
        task = asyncio.current_task()
        name = f"{task.get_name() if task is not None else 'conn'}/to-endpoint"
        async with asyncio.TaskGroup() as group:
            to_endpoint = _pump(client_reader, upstream_writer, writers, self._count_to_endpoints)
            group.create_task(to_endpoint, name=name)
            await _pump(upstream_reader, client_writer, writers, self._count_to_clients)

    def _count_to_endpoints(self, n: int) -> None:
        self._to_endpoints += n

    def _count_to_clients(self, n: int) -> None:
        self._to_clients += n


async def _pump(
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    both: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    count: Callable[[int], None],
) -> None:
    """Copy until EOF (then half-close ``sink``); on any socket error abort both sides."""
    try:
        while data := await source.read(CHUNK_BYTES):
            sink.write(data)
            count(len(data))
            await sink.drain()
        if sink.can_write_eof() and not sink.is_closing():
            sink.write_eof()
    except OSError:
        # the other pump then reads EOF from its aborted side and ends too
        for writer in both:
            writer.transport.abort()


async def _close(*writers: asyncio.StreamWriter | None) -> None:
    for writer in writers:
        if writer is not None:
            writer.close()
    for writer in writers:
        if writer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()


@contextlib.asynccontextmanager
async def open_proxy(
    catalog: Catalog,
    balancer_factory: BalancerFactory = balancer_for,
    *,
    target: ServicePortRef,
    listen: HostPort = ("127.0.0.1", 0),
    connect: Connect = connect_direct,
    connect_timeout_s: float = 2.0,
    max_attempts: int = 3,
    max_connections: int = 1024,
    max_head_bytes: int = 8192,
    head_timeout_s: float = 2.0,
) -> AsyncIterator[Proxy]:
    """Proxy ``listen`` to the endpoints of ``target`` until the block ends.

    Leaving the block stops listening and ends every open connection.
    """
    async with open_supervisor(f"mesh-proxy/{target}") as supervisor:
        proxy = Proxy(
            catalog,
            balancer_factory,
            target,
            connect,
            supervisor,
            connect_timeout_s=connect_timeout_s,
            max_attempts=max_attempts,
            max_connections=max_connections,
            max_head_bytes=max_head_bytes,
            head_timeout_s=head_timeout_s,
        )
        try:
            server = await asyncio.start_server(proxy.accept, *listen, limit=BUFFER_BYTES)
        except OSError as e:
            raise ConfigError(f"mesh proxy for {target} cannot listen on {listen}: {e}") from e
        try:
            sockname = server.sockets[0].getsockname()
            proxy.address = (sockname[0], sockname[1])
            yield proxy
        finally:
            server.close()
    # every handler has ended with the supervisor, so this does not wait on open connections
    await server.wait_closed()
