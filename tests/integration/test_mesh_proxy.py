"""The mesh TCP proxy on loopback: spread, failover, retries, byte counts, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from edgeweave.errors import LinkBroken
from edgeweave.mesh.catalog import Catalog, Endpoint, ServicePortRef
from edgeweave.mesh.proxy import Streams, connect_direct, open_proxy
from edgeweave.models.services import Service

TIMEOUT_S = 5.0
REF = ServicePortRef("default", "web", 80)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def _no_leaked_sockets() -> Iterator[None]:
    before = open_fds()
    yield
    assert open_fds() <= before, "the test left sockets open"


def catalog(**spec: Any) -> Catalog:
    body: dict[str, Any] = {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    body.update(spec)
    cat = Catalog()
    cat.apply_service(
        Service.model_validate(
            {
                "apiVersion": "edgeweave.io/v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": body,
            }
        )
    )
    return cat


class Backend:
    """An HTTP-ish endpoint: reads a request head, answers with its name, closes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server: asyncio.Server | None = None
        self.port = 0
        self.served = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            body = self.name.encode() + b" " + head.split(b"\r\n", 1)[0]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            self.served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def kill(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self.server.wait_closed()

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(f"node-{self.name}", "127.0.0.1", self.port)


@contextlib.asynccontextmanager
async def backends(*names: str) -> AsyncIterator[list[Backend]]:
    started = [Backend(n) for n in names]
    for b in started:
        await b.start()
    try:
        yield started
    finally:
        for b in started:
            if b.server is not None and b.server.is_serving():
                await b.kill()


async def get(address: tuple[str, int], path: str = "/", headers: str = "") -> str:
    """One request through the proxy; the body (``"<backend> GET /path HTTP/1.1"``)."""
    async with asyncio.timeout(TIMEOUT_S):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: web\r\n{headers}\r\n".encode())
            await writer.drain()
            answer = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    return answer.split(b"\r\n\r\n", 1)[1].decode()


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await asyncio.sleep(0.005)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_round_robin_spreads_requests_over_both_endpoints() -> None:
    cat = catalog()
    async with backends("a", "b") as (a, b), open_proxy(cat, target=REF) as proxy:
        cat.set_endpoints(REF, [a.endpoint, b.endpoint])
        bodies = [await get(proxy.address, f"/{i}") for i in range(10)]
        assert Counter(body.split()[0] for body in bodies) == {"a": 5, "b": 5}
        assert bodies[0] == "a GET /0 HTTP/1.1"


async def test_a_killed_endpoint_moves_traffic_to_the_other() -> None:
    cat = catalog()
    async with backends("a", "b") as (a, b), open_proxy(cat, target=REF) as proxy:
        cat.set_endpoints(REF, [a.endpoint, b.endpoint])
        assert {(await get(proxy.address)).split()[0] for _ in range(4)} == {"a", "b"}
        await b.kill()
        assert {(await get(proxy.address)).split()[0] for _ in range(6)} == {"a"}
        assert proxy.statistics().connect_failures >= 1
        assert proxy.statistics().failed == 0


async def test_connect_failure_tries_the_next_endpoint() -> None:
    cat = catalog()
    dead = Endpoint("node-dead", "127.0.0.1", free_port())
    async with backends("a") as (a,), open_proxy(cat, target=REF, max_attempts=2) as proxy:
        cat.set_endpoints(REF, [dead, a.endpoint])
        for _ in range(4):
            assert (await get(proxy.address)).startswith("a ")
        stats = proxy.statistics()
        assert stats.connect_failures == 2  # the dead endpoint is dialled first on its turns only
        assert stats.failed == 0


async def test_unhealthy_endpoints_are_never_dialled() -> None:
    cat = catalog()
    dialled: list[str] = []

    async def tracking(endpoint: Endpoint, timeout_s: float) -> Streams:
        dialled.append(endpoint.node)
        return await connect_direct(endpoint, timeout_s)

    async with backends("a", "b") as (a, b), open_proxy(cat, target=REF, connect=tracking) as proxy:
        cat.set_endpoints(REF, [a.endpoint, b.endpoint])
        cat.set_healthy(REF, b.endpoint.key, False)
        for _ in range(4):
            await get(proxy.address)
        assert set(dialled) == {"node-a"}


async def test_an_injected_connect_that_fails_or_hangs_moves_on() -> None:
    cat = catalog()

    dialled: list[str] = []

    async def relay_down(endpoint: Endpoint, timeout_s: float) -> Streams:
        dialled.append(endpoint.node)
        if endpoint.path == "relay":
            raise LinkBroken("relay unreachable")
        if endpoint.node == "node-stuck":
            await asyncio.Event().wait()  # never connects: the proxy's timeout must end it
        return await connect_direct(endpoint, timeout_s)

    async with (
        backends("a") as (a,),
        open_proxy(cat, target=REF, connect=relay_down, connect_timeout_s=0.2) as proxy,
    ):
        relayed = Endpoint("node-r", "127.0.0.1", a.port, path="relay")
        stuck = Endpoint("node-stuck", "127.0.0.1", a.port)
        cat.set_endpoints(REF, [relayed, stuck, a.endpoint])
        for _ in range(3):
            assert (await get(proxy.address)).startswith("a ")
        assert {"node-r", "node-stuck"} <= set(dialled)
        assert proxy.statistics().connect_failures == dialled.count("node-r") + dialled.count(
            "node-stuck"
        )


async def test_no_reachable_endpoint_closes_the_client_and_counts_a_failure() -> None:
    cat = catalog()
    async with open_proxy(cat, target=REF) as proxy:
        cat.set_endpoints(REF, [Endpoint("node-x", "127.0.0.1", free_port())])
        reader, writer = await asyncio.open_connection(*proxy.address)
        async with asyncio.timeout(TIMEOUT_S):
            assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await wait_until(lambda: proxy.statistics().active == 0)
        assert proxy.statistics().failed == 1


async def test_bytes_are_counted_both_ways() -> None:
    cat = catalog()
    async with backends("a") as (a,), open_proxy(cat, target=REF) as proxy:
        cat.set_endpoints(REF, [a.endpoint])
        body = await get(proxy.address, "/count")
        await wait_until(lambda: proxy.statistics().active == 0)
        stats = proxy.statistics()
        request = len(b"GET /count HTTP/1.1\r\nHost: web\r\n\r\n")
        response = len(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)) + len(body)
        assert (stats.accepted, stats.bytes_to_endpoints, stats.bytes_to_clients) == (
            1,
            request,
            response,
        )


async def echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_bulk_bytes_flow_both_ways_with_half_close() -> None:
    cat = catalog()
    server, port = await echo_server()
    payload = os.urandom(4 * 1024 * 1024)
    try:
        async with open_proxy(cat, target=REF) as proxy:
            cat.set_endpoints(REF, [Endpoint("node-e", "127.0.0.1", port)])
            reader, writer = await asyncio.open_connection(*proxy.address)

            async def send() -> None:
                writer.write(payload)
                await writer.drain()
                writer.write_eof()

            async with asyncio.timeout(TIMEOUT_S * 4):
                sending = asyncio.create_task(send(), name="bulk-send")
                received = await reader.read(-1)
                await sending
            writer.close()
            await writer.wait_closed()
            assert received == payload
            await wait_until(lambda: proxy.statistics().active == 0)
            stats = proxy.statistics()
            assert stats.bytes_to_endpoints == stats.bytes_to_clients == len(payload)
    finally:
        server.close()
        await server.wait_closed()


async def test_consistent_hash_on_a_header_pins_each_user_to_one_endpoint() -> None:
    cat = catalog(
        loadBalancing="ConsistentHash", consistentHash={"key": "header", "header": "X-User"}
    )
    async with backends("a", "b", "c") as bs, open_proxy(cat, target=REF) as proxy:
        cat.set_endpoints(REF, [b.endpoint for b in bs])
        seen: dict[str, set[str]] = {}
        for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
            for _ in range(3):
                body = await get(proxy.address, headers=f"X-User: {user}\r\n")
                seen.setdefault(user, set()).add(body.split()[0])
        assert all(len(backends_hit) == 1 for backends_hit in seen.values())
        assert len(set().union(*seen.values())) > 1


async def test_leaving_the_block_ends_open_connections() -> None:
    cat = catalog()
    server, port = await echo_server()
    try:
        async with open_proxy(cat, target=REF) as proxy:
            cat.set_endpoints(REF, [Endpoint("node-e", "127.0.0.1", port)])
            reader, writer = await asyncio.open_connection(*proxy.address)
            writer.write(b"ping")
            async with asyncio.timeout(TIMEOUT_S):
                assert await reader.readexactly(4) == b"ping"
            assert proxy.statistics().active == 1
        async with asyncio.timeout(TIMEOUT_S):
            assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def test_connections_over_the_limit_are_refused() -> None:
    cat = catalog()
    server, port = await echo_server()
    try:
        async with open_proxy(cat, target=REF, max_connections=1) as proxy:
            cat.set_endpoints(REF, [Endpoint("node-e", "127.0.0.1", port)])
            first_r, first_w = await asyncio.open_connection(*proxy.address)
            first_w.write(b"x")
            async with asyncio.timeout(TIMEOUT_S):
                await first_r.readexactly(1)
            second_r, second_w = await asyncio.open_connection(*proxy.address)
            async with asyncio.timeout(TIMEOUT_S):
                with contextlib.suppress(ConnectionError):
                    assert await second_r.read() == b""
            assert proxy.statistics().rejected == 1
            for w in (first_w, second_w):
                w.close()
                with contextlib.suppress(ConnectionError):
                    await w.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
