"""The mesh relay: a TCP stream between two nodes that cannot reach each other, via the hub.

Each relayed connection is a pair of dedicated WebSockets on the hub's port (path
``/relay``), both authenticated by the nodes' client certificates like the link:

1. the **consumer** node dials ``/relay?namespace=NS&service=NAME&port=P&node=T&targetPort=X``;
   the hub checks that the consumer receives that Service (only nodes allowed to reach a
   service may open streams to it), that the service's Endpoints list node ``T`` serving port
   ``P`` on ``X``, and that ``T`` is connected here;
2. the hub sends ``relay_open`` over ``T``'s link; ``T`` connects to its app, then dials
   ``/relay?stream=ID`` (or answers ``error``, which ends the stream with its reason);
3. the hub sends the text frame ``ready`` to the consumer and copies binary frames both ways
   until either side closes. An empty binary frame is a half-close (EOF one way) and is copied
   like any other.

Flow control is the WebSockets' own: a frame is read from one side only after the previous one
was written to the other, and websockets buffers a bounded number of frames per connection, so
a slow reader slows its writer instead of growing memory here. Relay connections are separate
from the links, so a bulk transfer never queues behind (or in front of) another node's
heartbeat frames. Failures close the consumer's socket with a code and a reason it can act on:
4400 bad request, 4403 not allowed, 4404 no such endpoint, 4502 the target refused, 1013 try
again (target not connected, no answer in time, too many streams — in all, or from that one
consumer node, so no node can take every stream).

This module must not read the link's frames (the session hands over refusals) or decide
endpoints (the index holds the Endpoints objects the controller keeps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from edgeweave.cloud.hub.index import ENDPOINTS, SERVICE, DesiredIndex
from edgeweave.errors import EdgeweaveError
from edgeweave.protocol.messages import AppName, Error, Message, RelayOpen, new_message_id
from edgeweave.protocol.refs import ResourceRef

log = logging.getLogger(__name__)

RELAY_PATH = "/relay"
READY = "ready"
CLOSE_BAD_REQUEST = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_REFUSED = 4502
CLOSE_TRY_AGAIN = 1013


class _Refusal(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close reason must fit a control frame


@dataclass
class _Pending:
    target: str
    answer: asyncio.Future[ServerConnection]
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class RelayRequest:
    namespace: str
    service: str
    port: int
    node: str
    target_port: int


def parse_request(path: str) -> RelayRequest:
    """The consumer's query string; :class:`_Refusal` when anything is missing or malformed."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items() if v}
    try:
        request = RelayRequest(
            namespace=query["namespace"],
            service=query["service"],
            port=int(query["port"]),
            node=query["node"],
            target_port=int(query["targetPort"]),
        )
    except (KeyError, ValueError) as e:
        raise _Refusal(
            CLOSE_BAD_REQUEST,
            f"relay request needs namespace, service, port, node, targetPort: {e}",
        ) from None
    if not (1 <= request.port <= 65535 and 1 <= request.target_port <= 65535):
        raise _Refusal(CLOSE_BAD_REQUEST, "relay ports must be 1..65535")
    return request


def check_endpoint(index: DesiredIndex, source: str, request: RelayRequest) -> None:
    """May ``source`` open a stream to ``request``? Raises :class:`_Refusal` when not."""
    name = f"{request.namespace}/{request.service}"
    if index.desired(source, ResourceRef(SERVICE, request.namespace, request.service)) is None:
        raise _Refusal(CLOSE_FORBIDDEN, f"node {source} may not reach service {name}")
    entry = index.entry(ResourceRef(ENDPOINTS, request.namespace, request.service))
    endpoints = entry.body.get("endpoints") if entry is not None else None
    for endpoint in endpoints if isinstance(endpoints, list) else ():
        if not isinstance(endpoint, dict) or endpoint.get("node") != request.node:
            continue
        for port in endpoint.get("ports") or ():
            if isinstance(port, dict) and (port.get("port"), port.get("targetPort")) == (
                request.port,
                request.target_port,
            ):
                return
    raise _Refusal(
        CLOSE_NOT_FOUND,
        f"service {name} has no endpoint on node {request.node} for port {request.port}",
    )


class RelayBroker:
    """Pairs the consumer's and the target's sockets of each relayed stream."""

    def __init__(
        self,
        index: Callable[[], DesiredIndex],
        send_to_node: Callable[[str, Message], bool],
        *,
        open_timeout_s: float,
        max_streams: int,
        max_streams_per_node: int,
    ) -> None:
        self._index = index
        self._send_to_node = send_to_node
        self._open_timeout_s = open_timeout_s
        self._max_streams = max_streams
        self._max_per_node = max_streams_per_node
        self._by_source: dict[str, int] = {}  # streams open or opening, per consumer node
        self._pending: dict[str, _Pending] = {}
        self._active = 0
        self.opened = 0
        self.refused = 0
        self.bytes_relayed = 0

    def statistics(self) -> dict[str, int]:
        return {
            "relay_streams_active": self._active,
            "relay_streams_opened": self.opened,
            "relay_streams_refused": self.refused,
            "relay_bytes": self.bytes_relayed,
        }

    async def handle(self, node: str, ws: ServerConnection) -> None:
        """A relay socket from ``node`` (TLS identity checked): a consumer or a target."""
        try:
            stream_id = parse_qs(urlsplit(ws.request.path if ws.request else "").query).get(
                "stream"
            )
            if stream_id:
                await self._serve_target(node, ws, stream_id[0])
            else:
                await self._serve_consumer(node, ws)
        except _Refusal as e:
            self.refused += 1
            log.info("relay from node %s refused: %s", node, e.reason)
            await ws.close(e.code, e.reason)

    def refuse(self, node: str, error: Error) -> bool:
        """The session's hook: ``node`` answered a ``relay_open`` with ``error``. True when the
        error was about a pending stream (the consumer then gets the reason)."""
        pending = self._pending.get(error.parent_id or "")
        if pending is None or pending.target != node:
            return False
        if not pending.answer.done():
            reason = f"node {node} refused: {error.message or error.reason}"
            pending.answer.set_exception(_Refusal(CLOSE_REFUSED, reason))
        return True

    async def _serve_target(self, node: str, ws: ServerConnection, stream_id: str) -> None:
        pending = self._pending.get(stream_id)
        if pending is None or pending.target != node or pending.answer.done():
            raise _Refusal(CLOSE_NOT_FOUND, f"no relay stream {stream_id} waits for node {node}")
        pending.answer.set_result(ws)
        await pending.done.wait()  # the consumer's handler copies; this socket lives till then

    async def _serve_consumer(self, source: str, ws: ServerConnection) -> None:
        request = parse_request(ws.request.path if ws.request else "")
        check_endpoint(self._index(), source, request)
        if self._active + len(self._pending) >= self._max_streams:
            raise _Refusal(CLOSE_TRY_AGAIN, f"the relay is full ({self._max_streams} streams)")
        if self._by_source.get(source, 0) >= self._max_per_node:
            raise _Refusal(
                CLOSE_TRY_AGAIN, f"node {source} has {self._max_per_node} relayed streams already"
            )
        self._by_source[source] = self._by_source.get(source, 0) + 1
        try:
            await self._open_and_splice(source, ws, request)
        finally:
            left = self._by_source.pop(source) - 1
            if left:
                self._by_source[source] = left

    async def _open_and_splice(
        self, source: str, ws: ServerConnection, request: RelayRequest
    ) -> None:
        stream_id = new_message_id()
        pending = _Pending(request.node, asyncio.get_running_loop().create_future())
        self._pending[stream_id] = pending
        try:
            opened = RelayOpen(
                id=stream_id,  # so the target's refusal (its parent_id) finds the stream
                stream_id=stream_id,
                service=AppName(namespace=request.namespace, name=request.service),
                port=request.port,
                target_port=request.target_port,
            )
            if not self._send_to_node(request.node, opened):
                raise _Refusal(CLOSE_TRY_AGAIN, f"node {request.node} is not connected here")
            try:
                async with asyncio.timeout(self._open_timeout_s):
                    target = await pending.answer
            except TimeoutError:
                raise _Refusal(
                    CLOSE_TRY_AGAIN, f"node {request.node} did not open the stream in time"
                ) from None
            self._active += 1
            self.opened += 1
            try:
                await self._splice(ws, target)
            finally:
                self._active -= 1
        finally:
            del self._pending[stream_id]
            pending.done.set()

    async def _splice(self, consumer: ServerConnection, target: ServerConnection) -> None:
        try:
            await consumer.send(READY)
        except ConnectionClosed:
            await target.close()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._copy(consumer, target), name="relay-to-target")
            group.create_task(self._copy(target, consumer), name="relay-to-consumer")

    async def _copy(self, source: ServerConnection, sink: ServerConnection) -> None:
        """Frames from ``source`` to ``sink`` until either closes; then both are closed."""
        try:
            async for frame in source:
                if not isinstance(frame, bytes):
                    await source.close(CLOSE_BAD_REQUEST, "only binary frames on a relay")
                    break
                await sink.send(frame)
                self.bytes_relayed += len(frame)
        except ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(EdgeweaveError, ConnectionClosed):
                await sink.close()
            with contextlib.suppress(EdgeweaveError, ConnectionClosed):
                await source.close()
