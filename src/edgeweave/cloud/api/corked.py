"""The API server's HTTP/1.1 protocol: uvicorn's h11 one, with the writes of a response sent
as one, after the work the request set off.

uvicorn writes a response's status line and headers, then its body, as two transport writes;
over TLS that is two records and two socket sends, and on loopback each send costs the
receiver's wake-up too. :class:`CorkedTransport` holds what is written, from the start of a
response (``HTTP/...``), until the end of the *next* event-loop turn or until
:data:`MAX_HELD_BYTES` are held, and then writes it in one call; order is kept, and closing
writes what is held first. More of a streamed body (a watch event), written when nothing is
held, goes straight through: it is one write already, and nothing waits to go first.

Why a response waits for the next turn: a write to the store wakes the node hub in the turn
after the commit, and the hub pushes the changed object to its node in the turn after that.
Held one turn longer, the answer to the client leaves after that push instead of before it;
on loopback the answer's send costs a wake-up of the client, so the order matters (a twin set
reaches its device about 0.1 ms sooner; bench/twin.py, BENCHMARKS.md). A watch event has
nothing to let go first. :class:`CorkedH11Protocol` puts the transport it is given behind one.

Must not: reorder writes, hold bytes beyond the next loop turn, or hide the transport's flow
control (pausing and resuming go straight through).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["MAX_HELD_BYTES", "CorkedH11Protocol", "CorkedTransport"]

MAX_HELD_BYTES = 64 * 1024
"""Held bytes beyond which a write goes out at once (large bodies need no coalescing)."""


class CorkedTransport:
    """A write transport whose writes within one loop turn leave as one write; everything
    else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held and bytes(data[:5]) != b"HTTP/":
            # more of a streamed body (a watch event): nothing to join it, nothing to wait for
            if not self._transport.is_closing():
                self._transport.write(data)
            return
        self._held.append(bytes(data))
        self._held_bytes += len(data)
        if self._held_bytes >= MAX_HELD_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._next_turn)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _next_turn(self) -> None:
        self._loop.call_soon(self._flush_scheduled)  # what is written meanwhile joins

    def _flush_scheduled(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write what is held now."""
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held, self._held_bytes = [], 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._held_bytes + self._transport.get_write_buffer_size()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held, self._held_bytes = [], 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CorkedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol writing through a :class:`CorkedTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        corked = CorkedTransport(transport, asyncio.get_running_loop())
        super().connection_made(corked)  # type: ignore[arg-type]
