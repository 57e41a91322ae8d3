"""The WebSocket link (agent side): dial the hub over TLS with the node's client certificate.

The only module on the edge that imports ``websockets``; it maps the library's errors to
``LinkClosed`` / ``LinkBroken`` (``raise ... from e``). Keepalive and half-open detection are
websockets' ping/pong (``ping_interval_s``, ``ping_timeout_s``); frames over
``max_frame_bytes`` close the link with 1009. Compression is off: frames are small JSON and
per-connection zlib state would cost memory on both sides.

:func:`dial_ws_stream` dials the same way for the mesh relay: a socket of binary frames (one
relayed TCP stream), the first text frame being the hub's verdict.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI

from edgeweave.errors import LinkBroken, LinkClosed, ProtocolError


@dataclass(frozen=True)
class WsOptions:
    max_frame_bytes: int = 1 << 20
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 5.0


def _closed_error(e: ConnectionClosed) -> LinkClosed | LinkBroken:
    rcvd = e.rcvd
    code = rcvd.code if rcvd is not None else 1006
    reason = rcvd.reason if rcvd is not None else "no close frame"
    text = f"link closed by the peer ({code} {reason})".strip()
    if isinstance(e, ConnectionClosedOK):
        return LinkClosed(text, close_code=code)
    return LinkBroken(text, close_code=code)


class WsLink:
    def __init__(self, conn: ClientConnection) -> None:
        self._conn = conn

    @property
    def closed(self) -> bool:
        return self._conn.close_code is not None

    async def send(self, frame: str) -> None:
        try:
            await self._conn.send(frame)
        except ConnectionClosed as e:
            raise _closed_error(e) from e

    async def recv(self) -> str:
        try:
            data = await self._conn.recv()
        except ConnectionClosed as e:
            raise _closed_error(e) from e
        if isinstance(data, bytes):
            raise ProtocolError("binary frame on the link; only text frames are used")
        return data

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        await self._conn.close(code, reason)


class WsStream:
    """One relayed stream: binary frames both ways; errors are ``LinkClosed`` / ``LinkBroken``
    carrying the close code the hub or the peer gave."""

    def __init__(self, conn: ClientConnection) -> None:
        self._conn = conn

    async def send(self, data: bytes) -> None:
        try:
            await self._conn.send(data)
        except ConnectionClosed as e:
            raise _closed_error(e) from e

    async def recv(self) -> bytes | str:
        try:
            return await self._conn.recv()
        except ConnectionClosed as e:
            raise _closed_error(e) from e

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        await self._conn.close(code, reason)


async def _dial(
    url: str, ssl_context: ssl.SSLContext | None, options: WsOptions
) -> ClientConnection:
    try:
        return await connect(
            url,
            ssl=ssl_context,
            compression=None,
            max_size=options.max_frame_bytes,
            ping_interval=options.ping_interval_s,
            ping_timeout=options.ping_timeout_s,
            open_timeout=options.open_timeout_s,
            close_timeout=options.close_timeout_s,
            proxy=None,
            user_agent_header=None,
        )
    except ConnectionClosed as e:
        raise _closed_error(e) from e
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ssl.SSLError) as e:
        raise LinkBroken(f"cannot connect to {url}: {e}") from e


async def dial_ws_stream(
    url: str, ssl_context: ssl.SSLContext | None, options: WsOptions = WsOptions()
) -> WsStream:
    """Dial a relay socket (``wss://host:port/relay?...``); the caller ``aclose``s it."""
    return WsStream(await _dial(url, ssl_context, options))


@contextlib.asynccontextmanager
async def open_ws_link(
    url: str, ssl_context: ssl.SSLContext | None, options: WsOptions = WsOptions()
) -> AsyncIterator[WsLink]:
    """Dial ``url`` (``wss://host:port/link``); the link is closed when the context exits."""
    conn = await _dial(url, ssl_context, options)
    link = WsLink(conn)
    try:
        yield link
    finally:
        await conn.close()
