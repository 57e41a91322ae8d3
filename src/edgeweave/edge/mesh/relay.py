"""Both ends of the mesh relay on a node (the hub's side is ``cloud.hub.relay``).

**Consumer** (:class:`RelayClient`): the proxy could not reach an endpoint on another node
directly, so it asks for a relayed stream. One TLS WebSocket to the hub's ``/relay`` per TCP
connection, authenticated by this node's certificate; the hub answers the text frame ``ready``
once the target joined, or closes with a code that becomes our error (4403 →
:class:`Forbidden`, 4404 → :class:`NotFound`, anything else stays a :class:`LinkError`), which makes
the proxy try its next endpoint. The proxy wants asyncio streams, so the socket is bridged to
one end of a socket pair and the proxy gets the other end.

**Target** (:class:`RelayTarget`): the hub sent ``relay_open`` over our link. The target checks
that the port is one of this node's own endpoints of that service (the hub checked the
consumer), connects to the app on this machine, then dials ``/relay?stream=ID`` and bridges;
when it cannot, it answers ``error`` on the link so the consumer learns why at once.

Every stream runs as a task of the host's supervisor, so none outlives the agent. This module
must not choose paths (the host does) or read the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

from edgeweave.edge.mesh.bridge import BUFFER_BYTES, bridge
from edgeweave.errors import Forbidden, LinkError, NotFound, ProtocolError
from edgeweave.mesh.catalog import Endpoint, ServicePortRef
from edgeweave.mesh.proxy import Streams
from edgeweave.protocol import messages as m
from edgeweave.transport.ws import WsOptions, WsStream, dial_ws_stream

log = logging.getLogger(__name__)

READY = "ready"
Start = Callable[[Coroutine[Any, Any, object], str], None]
Reply = Callable[[m.Message], Awaitable[None]]


def refusal(error: LinkError) -> LinkError | Forbidden | NotFound:
    """The hub's close code as the error a caller can act on."""
    if error.close_code == 4403:
        return Forbidden(error.message)
    if error.close_code == 4404:
        return NotFound(error.message)
    return error


class RelayClient:
    def __init__(
        self,
        url: str,
        ssl_context: Callable[[], ssl.SSLContext],
        options: WsOptions,
        start: Start,
        *,
        open_timeout_s: float,
    ) -> None:
        self.url = url
        self._ssl_context = ssl_context
        self._options = options
        self._start = start
        self._open_timeout_s = open_timeout_s
        self._ids = itertools.count()
        self.opened = 0
        self.failed = 0

    async def open(self, ref: ServicePortRef, endpoint: Endpoint) -> Streams:
        """A relayed stream to ``endpoint`` of ``ref``, as the proxy's upstream streams."""
        query = urlencode(
            {
                "namespace": ref.namespace,
                "service": ref.name,
                "port": ref.port,
                "node": endpoint.node,
                "targetPort": endpoint.port,
            }
        )
        sock: WsStream | None = None
        try:
            async with asyncio.timeout(self._open_timeout_s):
                sock = await dial_ws_stream(
                    f"{self.url}?{query}", self._ssl_context(), self._options
                )
                verdict = await sock.recv()
            if verdict != READY:
                raise ProtocolError(f"the relay answered {verdict!r} instead of {READY!r}")
            streams = await _paired_streams(sock, self._start, f"relay-out-{next(self._ids)}")
        except BaseException as e:
            self.failed += 1
            if sock is not None:
                await _quietly_close(sock)
            if isinstance(e, LinkError):
                raise refusal(e) from e
            raise
        self.opened += 1
        return streams


async def _paired_streams(sock: WsStream, start: Start, name: str) -> Streams:
    """Streams for the proxy; a bridge task copies the other end of the pair to ``sock``."""
    ours, theirs = socket.socketpair()
    try:
        reader, writer = await asyncio.open_connection(sock=ours, limit=BUFFER_BYTES)
        inner_reader, inner_writer = await asyncio.open_connection(sock=theirs, limit=BUFFER_BYTES)
    except BaseException:
        ours.close()
        theirs.close()
        raise
    try:
        start(_bridged(inner_reader, inner_writer, sock, name), name)
    except BaseException:
        writer.close()
        inner_writer.close()
        raise
    return reader, writer


async def _bridged(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sock: WsStream, name: str
) -> None:
    await bridge(reader, writer, sock, name)


async def _quietly_close(sock: WsStream) -> None:
    with contextlib.suppress(LinkError, OSError):
        await sock.aclose()


class RelayTarget:
    def __init__(
        self,
        url: str,
        ssl_context: Callable[[], ssl.SSLContext],
        options: WsOptions,
        start: Start,
        *,
        local_host: str,
        allowed: Callable[[m.RelayOpen], str | None],
        connect_timeout_s: float,
    ) -> None:
        self.url = url
        self._ssl_context = ssl_context
        self._options = options
        self._start = start
        self._local_host = local_host
        self._allowed = allowed
        self._connect_timeout_s = connect_timeout_s
        self.served = 0
        self.refused = 0

    def on_open(self, msg: m.RelayOpen, reply: Reply) -> None:
        """The link's hook for ``relay_open``: never blocks the link's receive loop."""
        try:
            self._start(self._serve(msg, reply), f"relay-in-{msg.stream_id}")
        except (RuntimeError, ValueError) as e:  # shutting down, or a repeated stream id
            log.debug("relay stream %s not started: %s", msg.stream_id, e)

    async def _serve(self, msg: m.RelayOpen, reply: Reply) -> None:
        problem = self._allowed(msg)
        if problem is not None:
            self.refused += 1
            await _answer(reply, m.Error(reason="Forbidden", message=problem, parent_id=msg.id))
            return
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                app_reader, app_writer = await asyncio.open_connection(
                    self._local_host, msg.target_port, limit=BUFFER_BYTES
                )
        except (OSError, TimeoutError) as e:
            self.refused += 1
            text = f"cannot connect to the app on port {msg.target_port}: {e!r}"
            await _answer(
                reply, m.Error(reason="ServiceUnavailable", message=text, parent_id=msg.id)
            )
            return
        try:
            url = f"{self.url}?{urlencode({'stream': msg.stream_id})}"
            async with asyncio.timeout(self._connect_timeout_s):
                sock = await dial_ws_stream(url, self._ssl_context(), self._options)
        except (LinkError, TimeoutError) as e:
            log.info("relay stream %s: cannot join it at the hub: %s", msg.stream_id, e)
            app_writer.transport.abort()
            return
        self.served += 1
        await bridge(app_reader, app_writer, sock, f"relay-in-{msg.stream_id}")


async def _answer(reply: Reply, msg: m.Message) -> None:
    try:
        await reply(msg)
    except LinkError as e:
        log.debug("cannot answer a relay request: %s", e)
