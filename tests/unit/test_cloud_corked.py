"""The API server's corked transport: a response's writes of a loop turn and the next leave
as one write, in order; more of a streamed body goes straight through; large ones at once;
closing writes what is held; flow control goes straight through."""

from __future__ import annotations

import asyncio
from typing import Any

from edgeweave.cloud.api.corked import MAX_HELD_BYTES, CorkedTransport


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.paused = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 7

    def pause_reading(self) -> None:
        self.paused = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def next_turn() -> None:
    await asyncio.sleep(0)  # one loop turn: what call_soon scheduled has run


async def after_next_turn() -> None:
    await next_turn()
    await next_turn()


async def test_writes_of_this_turn_and_the_next_leave_as_one_in_order() -> None:
    raw = FakeTransport()
    corked = CorkedTransport(raw, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(b"")
    corked.writelines([b"{", bytearray(b'"a"'), memoryview(b":1")])
    assert raw.writes == []
    assert corked.get_write_buffer_size() == 7 + len(b'HTTP/1.1 200 OK\r\n\r\n{"a":1')
    await next_turn()
    assert raw.writes == []  # held through the next turn: what that turn writes joins
    corked.write(b"}")
    await next_turn()
    assert raw.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"a":1}']
    corked.write(b"next")
    await after_next_turn()
    assert raw.writes[1:] == [b"next"]


async def test_more_of_a_streamed_body_goes_straight_through() -> None:
    raw = FakeTransport()
    corked = CorkedTransport(raw, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(b"5\r\nfirst\r\n")  # held with the head
    assert raw.writes == []
    await after_next_turn()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\n5\r\nfirst\r\n"]
    corked.write(b"5\r\nevent\r\n")
    assert raw.writes[1:] == [b"5\r\nevent\r\n"]


async def test_large_writes_go_out_at_once() -> None:
    raw = FakeTransport()
    corked = CorkedTransport(raw, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(b"x" * MAX_HELD_BYTES)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * MAX_HELD_BYTES]
    await after_next_turn()
    assert len(raw.writes) == 1  # the scheduled flush finds nothing left


async def test_close_writes_what_is_held_and_abort_drops_it() -> None:
    raw = FakeTransport()
    corked = CorkedTransport(raw, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\n\r\nlast words")
    corked.close()
    assert (raw.writes, raw.closed) == ([b"HTTP/1.1 200 OK\r\n\r\nlast words"], True)
    corked.write(b"after close")
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    await after_next_turn()
    assert len(raw.writes) == 1  # a closing transport gets nothing more

    raw = FakeTransport()
    corked = CorkedTransport(raw, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\n\r\ndropped")
    corked.abort()
    await after_next_turn()
    assert (raw.writes, raw.aborted) == ([], True)


async def test_everything_else_is_the_wrapped_transports() -> None:
    raw = FakeTransport()
    corked = CorkedTransport(raw, asyncio.get_running_loop())
    corked.pause_reading()
    assert raw.paused
    assert corked.get_extra_info("peername") == ("127.0.0.1", 1)
    assert not corked.is_closing()
