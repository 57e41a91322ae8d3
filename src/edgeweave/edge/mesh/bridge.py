"""Copy a TCP stream to and from a relay socket until both directions have ended.

The relay's framing (docs/mesh.md): binary frames carry the bytes; an empty binary frame is
an EOF in that direction (a TCP half-close), so protocols that close their sending side and
then wait for the answer still work. TCP to the socket: reads of at most ``CHUNK_BYTES``, one
frame each, each send awaited (the socket's own backpressure). Socket to TCP: each frame
written and drained before the next is read, so neither side buffers more than a frame.

Any failure on either side (the peer's socket closed, a reset, a text frame) ends both; the
caller closes nothing itself. This module must not dial anything or know what it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from edgeweave.errors import EdgeweaveError, ProtocolError

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024  # one frame; the hub's frame limit is 1 MiB
BUFFER_BYTES = 128 * 1024  # stream buffer limit (as the proxy's)
EOF_FRAME = b""


class FrameSocket(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def recv(self) -> bytes | str: ...

    async def aclose(self, code: int = 1000, reason: str = "") -> None: ...


async def _tcp_to_socket(reader: asyncio.StreamReader, sock: FrameSocket) -> int:
    sent = 0
    while data := await reader.read(CHUNK_BYTES):
        await sock.send(data)
        sent += len(data)
    await sock.send(EOF_FRAME)
    return sent


async def _socket_to_tcp(sock: FrameSocket, writer: asyncio.StreamWriter) -> int:
    received = 0
    while True:
        frame = await sock.recv()
        if isinstance(frame, str):
            raise ProtocolError("a text frame inside a relayed stream")
        if not frame:
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
            return received
        writer.write(frame)
        received += len(frame)
        await writer.drain()


async def bridge(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sock: FrameSocket, name: str
) -> tuple[int, int]:
    """Run until both directions ended or either failed; closes both ends.

    Returns the bytes carried (TCP→socket, socket→TCP).
    """
    sent = received = 0
    try:
        async with asyncio.TaskGroup() as group:
            up = group.create_task(_tcp_to_socket(reader, sock), name=f"{name}/up")
            down = group.create_task(_socket_to_tcp(sock, writer), name=f"{name}/down")
        sent, received = up.result(), down.result()
    except* (EdgeweaveError, OSError) as failure:
        log.debug("relayed stream %s ended: %r", name, failure.exceptions[0])
        writer.transport.abort()
    finally:
        writer.close()
        with contextlib.suppress(EdgeweaveError, OSError):
            await sock.aclose()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
    return sent, received
