"""The asyncio client's h11 transport against a small real HTTP/1.1 server on loopback: keep-
alive reuse, a stale pooled connection retried once, streamed bodies both ways, bodies left
unread, ``Connection: close``, timeouts and refused connections as httpx's errors. (The
client against the real cloud, over TLS, is every other API test.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import h11
import httpx
import pytest

from edgeweave.client.h11pool import AsyncH11Transport


@dataclass
class Server:
    port: int = 0
    connections: int = 0
    requests: list[tuple[str, int]] = field(default_factory=list)  # (target, body bytes)
    close_on_second: bool = False  # a kept-alive connection the server closes unanswered
    release: asyncio.Event = field(default_factory=asyncio.Event)  # /slow waits for it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _serve(
    server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    server.connections += 1
    conn = h11.Connection(h11.SERVER)
    served = 0
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.ConnectionClosed):
                return
            assert isinstance(event, h11.Request), event
            served += 1
            if server.close_on_second and served == 2:
                return  # closes without a byte of answer
            target = event.target.decode()
            size = 0
            while True:
                body = conn.next_event()
                if body is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(body, h11.Data):
                    size += len(body.data)
                else:
                    break
            server.requests.append((target, size))
            await _answer(server, conn, writer, target, size)
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    finally:
        writer.close()


async def _answer(
    server: Server, conn: h11.Connection, writer: asyncio.StreamWriter, target: str, size: int
) -> None:
    if target == "/slow":
        await server.release.wait()
    if target == "/chunked":
        writer.write(conn.send(h11.Response(status_code=200, headers=[])))
        for i in range(3):
            writer.write(conn.send(h11.Data(data=b"part%d;" % i)))
            await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))
        return
    body = str(size).encode()
    headers = [("content-length", str(len(body)))]
    if target == "/close":
        headers.append(("connection", "close"))
    writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
    writer.write(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
    await writer.drain()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    handlers: set[asyncio.Task[None]] = set()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(_serve(state, reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    state.port = listener.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        state.release.set()
        listener.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await listener.wait_closed()


@contextlib.asynccontextmanager
async def client_of(
    server: Server, make: Callable[[], AsyncH11Transport] = AsyncH11Transport
) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncH11Transport]]:
    transport = make()
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
        yield client, transport


async def test_requests_reuse_one_kept_alive_connection(server: Server) -> None:
    async with client_of(server) as (client, transport):
        for i in range(5):
            answer = await client.post("/echo", content=b"x" * i)
            assert (answer.status_code, answer.text) == (200, str(i))
    assert server.connections == 1
    assert transport.statistics()["opened"] == 1
    assert transport.statistics()["reused"] == 4


async def test_a_pooled_connection_closed_unanswered_is_retried_once_on_a_new_one(
    server: Server,
) -> None:
    server.close_on_second = True
    async with client_of(server) as (client, transport):
        assert (await client.get("/a")).text == "0"
        assert (await client.post("/b", content=b"abc")).text == "3"  # 2nd on that connection
    assert [t for t, _ in server.requests] == ["/a", "/b"]
    assert transport.statistics()["retried"] == 1
    assert server.connections == 2


async def test_a_streamed_request_body_is_sent_whole_and_not_replayed(server: Server) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(16):
            yield b"y" * 65536

    async with client_of(server) as (client, _):
        answer = await client.post("/upload", content=chunks())
        assert answer.text == str(16 * 65536)
        server.close_on_second = True  # the next one finds its connection closed unanswered
        with pytest.raises(httpx.RemoteProtocolError, match="idle"):
            await client.post("/again", content=chunks())


async def test_a_chunked_response_streams_and_the_connection_is_reused(server: Server) -> None:
    async with client_of(server) as (client, transport):
        async with client.stream("GET", "/chunked") as answer:
            parts = [part async for part in answer.aiter_bytes()]
        assert b"".join(parts) == b"part0;part1;part2;"
        assert (await client.get("/after")).text == "0"
    assert transport.statistics()["opened"] == 1


async def test_a_body_left_unread_closes_its_connection(server: Server) -> None:
    async with client_of(server) as (client, transport):
        async with client.stream("GET", "/chunked"):
            pass  # not read
        assert (await client.get("/next")).status_code == 200
    assert transport.statistics()["opened"] == 2


async def test_connection_close_from_the_server_is_honoured(server: Server) -> None:
    async with client_of(server) as (client, transport):
        assert (await client.get("/close")).status_code == 200
        assert (await client.get("/next")).status_code == 200
    assert transport.statistics()["opened"] == 2


async def test_a_silent_server_is_a_read_timeout(server: Server) -> None:
    async with client_of(server) as (client, _):
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow", timeout=httpx.Timeout(5.0, read=0.05))


async def test_a_refused_connection_is_a_connect_error(server: Server) -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    async with httpx.AsyncClient(transport=AsyncH11Transport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_no_free_connection_is_a_pool_timeout(server: Server) -> None:
    async with client_of(server, lambda: AsyncH11Transport(max_connections=1)) as (client, _):
        slow = asyncio.create_task(client.get("/slow"))
        async with asyncio.timeout(5):
            while not server.connections:  # the slow request holds the one connection
                await asyncio.sleep(0)
        with pytest.raises(httpx.PoolTimeout):
            await client.get("/other", timeout=httpx.Timeout(5.0, pool=0.05))
        server.release.set()
        assert (await slow).status_code == 200
        assert (await client.get("/other")).status_code == 200
