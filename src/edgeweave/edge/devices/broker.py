"""The agent's embedded MQTT broker (amqtt), for nodes without an external broker.

KubeEdge mappers publish to ``$hw/events/...`` topics; amqtt 0.11.2 and later drop a client
that publishes to a ``$`` topic, so the version is pinned to 0.11.1 (pyproject) and a test
publishes to a ``$hw`` topic from a separate client (tests/integration/test_device_bus.py).
The broker runs without amqtt's plugins (no ``$SYS`` tree, no persistence): anonymous clients
on the listen address only, which is loopback by default. :class:`_Broker` closes client
connections: amqtt leaves some open after a client left and at shutdown. It also matches topics
against subscription filters with one compiled pattern per filter, kept: amqtt escapes and
compiles the filter again for every message and every subscription (about 55 times per twin
round on a node with one mapper), about 4 % of the agent's CPU in an embedded-broker round
under cProfile. The pattern is amqtt's own (``#`` also matches the parent level, ``+`` one level).

The twin host of the same agent connects in process (:meth:`EmbeddedBroker.open_client`, a
:class:`LocalClient`): its publishes go into the broker's delivery queue and the messages for
its subscriptions into a queue it reads, with no socket or MQTT encoding on either side.
Mappers and other apps connect over TCP as to any broker, and see no difference.

Must not know topics or payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import BrokerError

from edgeweave.errors import BusError
from edgeweave.transport.mqtt import MqttMessage

log = logging.getLogger(__name__)
_NO_PLUGINS = "edgeweave.no_amqtt_plugins"  # an entry-point group nobody registers


class _Broker(Broker):  # type: ignore[misc] # amqtt has no type hints
    """amqtt's broker, closing every client connection on shutdown."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config, plugin_namespace=_NO_PLUGINS)
        self.connections: set[asyncio.StreamWriter] = set()
        self.local_clients: set[LocalClient] = set()

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        self.connections.add(writer)
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:  # amqtt does not always close a connection it is done with
            self.connections.discard(writer)
            writer.close()

    def _matches(self, topic: str, a_filter: str) -> bool:
        return _filter_matches(a_filter)(topic)

    async def _broadcast_message(
        self,
        session: Any,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        """Every message a network client publishes passes here: in-process clients get
        theirs at once, the rest go amqtt's way."""
        if topic is not None and data is not None:
            self._deliver_local(topic, bytes(data))
        await super()._broadcast_message(session, topic, data, force_qos)

    def _deliver_local(self, topic: str, data: bytes) -> None:
        for client in self.local_clients:
            client.deliver(topic, data)

    def publish_local(self, topic: str, data: bytes) -> None:
        """A QoS 0 publish from an in-process client: to every subscriber, itself included
        when its filters match (as over the network)."""
        self._deliver_local(topic, data)
        self._broadcast_queue.put_nowait({"session": None, "topic": topic, "data": data})

    def close_all(self) -> None:
        """Close the listeners and connections amqtt's shutdown may have left (it stops
        half-way when a delivery is cancelled)."""
        for server in self._servers.values():
            server.instance.close()
        for writer in list(self.connections):
            writer.transport.abort()
        self.connections.clear()


@functools.lru_cache(maxsize=4096)
def _filter_matches(a_filter: str) -> Callable[[str], bool]:
    """The test of one subscription filter, as amqtt 0.11.1 makes it, compiled once."""
    if "#" not in a_filter and "+" not in a_filter:
        return a_filter.__eq__
    pattern = re.escape(a_filter).replace("\\#", "?.*").replace("\\+", "[^/]*").lstrip("?")
    compiled = re.compile(pattern)
    return lambda topic: compiled.fullmatch(topic) is not None


class LocalClient:
    """An in-process connection to the embedded broker, used like
    :class:`~edgeweave.transport.mqtt.MqttClient`: subscribe, ``publish_nowait`` (QoS 0, never
    waits), iterate for messages in arrival order. Messages wait in a bounded queue; past
    ``max_queued`` the oldest is dropped (counted), as the network client does. Iteration
    raises BusError once the client or the broker closed."""

    def __init__(self, broker: _Broker, url: str, max_queued: int) -> None:
        self.url = url
        self._broker = broker
        self._filters: list[str] = []
        self._queue: deque[MqttMessage] = deque()
        self._max_queued = max_queued
        self._arrived = asyncio.Event()
        self._closed = False
        self.received = 0
        self.published = 0
        self.dropped = 0

    async def subscribe(self, *filters: str, qos: int = 0) -> None:
        self._filters.extend(f for f in filters if f not in self._filters)

    def deliver(self, topic: str, data: bytes) -> None:
        """Queue ``topic`` if a filter of this client matches it (the broker calls this)."""
        system = topic.startswith("$")  # '$' topics never match filters starting with + or #
        if self._closed or not any(
            _filter_matches(f)(topic)
            for f in self._filters
            if not (system and f.startswith(("+", "#")))
        ):
            return
        self._queue.append(MqttMessage(topic, data))
        if len(self._queue) > self._max_queued:
            self._queue.popleft()
            self.dropped += 1
        self._arrived.set()

    def publish_nowait(self, topic: str, payload: bytes) -> None:
        if self._closed:
            raise BusError(f"publish to {topic}: the connection to {self.url} is closed")
        self._broker.publish_local(topic, payload)
        self.published += 1

    async def __aiter__(self) -> AsyncIterator[MqttMessage]:
        while True:
            while self._queue:
                self.received += 1
                yield self._queue.popleft()
            if self._closed:
                raise BusError(f"the connection to {self.url} closed")
            self._arrived.clear()
            await self._arrived.wait()

    def close(self) -> None:
        self._closed = True
        self._arrived.set()

    def statistics(self) -> dict[str, int]:
        return {"received": self.received, "published": self.published, "dropped": self.dropped}


@dataclass(frozen=True, slots=True)
class EmbeddedBroker:
    host: str
    port: int
    _broker: _Broker

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @contextlib.asynccontextmanager
    async def open_client(self, max_queued: int = 10_000) -> AsyncIterator[LocalClient]:
        """An in-process client; BusError once the broker has shut down."""
        broker = self._broker
        if broker.transitions.state != "started":
            raise BusError(f"the embedded MQTT broker at {self.url} is not running")
        client = LocalClient(broker, self.url, max_queued)
        broker.local_clients.add(client)
        try:
            yield client
        finally:
            broker.local_clients.discard(client)
            client.close()


@contextlib.asynccontextmanager
async def open_embedded_broker(
    host: str = "127.0.0.1", port: int = 1884, *, max_connections: int = 256
) -> AsyncIterator[EmbeddedBroker]:
    """Listen on ``host:port`` (port 0: any free port) until the context exits."""
    config: dict[str, Any] = {
        "listeners": {
            "default": {
                "type": "tcp",
                "bind": f"{host}:{port}",
                "max_connections": max_connections,
            }
        },
        "sys_interval": 0,
        "auth": {"allow-anonymous": True},
        "topic-check": {"enabled": False},
    }
    broker = _Broker(config)
    try:
        await broker.start()
    except (BrokerError, OSError) as e:
        raise BusError(f"cannot start the embedded MQTT broker on {host}:{port}: {e}") from e
    try:
        sockets = broker._servers["default"].instance.sockets  # the bound port
        bound = int(sockets[0].getsockname()[1])
        log.info("embedded MQTT broker listening on %s:%d", host, bound)
        yield EmbeddedBroker(host, bound, broker)
    finally:
        for client in list(broker.local_clients):
            client.close()
        await _shutdown(broker)


async def _shutdown(broker: _Broker) -> None:
    try:
        await broker.shutdown()
    except (BrokerError, OSError) as e:
        log.warning("embedded MQTT broker did not shut down cleanly: %s", e)
    except asyncio.CancelledError:
        # amqtt re-raises the cancellation of a delivery still waiting for a client's ack;
        # only a cancellation of this task itself must propagate
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    finally:
        broker.close_all()
