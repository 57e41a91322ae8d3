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

Must not know topics or payloads; the twin host is an ordinary client of this broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import BrokerError

from edgeweave.errors import BusError

log = logging.getLogger(__name__)
_NO_PLUGINS = "edgeweave.no_amqtt_plugins"  # an entry-point group nobody registers


class _Broker(Broker):  # type: ignore[misc] # amqtt has no type hints
    """amqtt's broker, closing every client connection on shutdown."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config, plugin_namespace=_NO_PLUGINS)
        self.connections: set[asyncio.StreamWriter] = set()

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


@dataclass(frozen=True, slots=True)
class EmbeddedBroker:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


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
        yield EmbeddedBroker(host, bound)
    finally:
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
