"""The MQTT client seam: connect to a broker, subscribe, publish, read messages.

The agent's device host, the mappers and the benchmarks talk MQTT only through
:func:`open_mqtt_client`, so one module knows the client library (aiomqtt, on paho). Its
errors become :class:`~edgeweave.errors.BusError`. Messages are read in arrival order from a
bounded queue (``max_queued``): a consumer that falls behind makes the library drop the
oldest QoS 0 messages rather than grow without limit — :meth:`MqttClient.statistics` counts
what arrived.

URLs: ``mqtt://host:port`` (``tcp://`` is accepted too; the port defaults to 1883).

Must not interpret topics or payloads (that is :mod:`edgeweave.twin`) or reconnect on its
own: the caller's supervised loop decides when to open a new client.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as paho

from edgeweave.errors import BusError, ConfigError

DEFAULT_PORT = 1883
_SCHEMES = ("mqtt", "tcp")


@dataclass(frozen=True, slots=True)
class MqttMessage:
    topic: str
    payload: bytes


class BusClient(Protocol):
    """What a user of the bus needs of a connection: :class:`MqttClient`, or an in-process
    twin (the agent's connection to its own embedded broker)."""

    url: str

    async def subscribe(self, *filters: str, qos: int = 0) -> None: ...

    def publish_nowait(self, topic: str, payload: bytes) -> None: ...

    def __aiter__(self) -> AsyncIterator[MqttMessage]: ...

    def statistics(self) -> dict[str, int]: ...


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """``(host, port)`` of an ``mqtt://host:port`` URL; ConfigError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ConfigError(f"MQTT URL {url!r}: the scheme must be one of {', '.join(_SCHEMES)}")
    if not parts.hostname:
        raise ConfigError(f"MQTT URL {url!r} has no host")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as e:
        raise ConfigError(f"MQTT URL {url!r}: bad port") from e
    return parts.hostname, port


class MqttClient:
    """One connected client. Use :func:`open_mqtt_client`; iterate to read messages."""

    def __init__(self, client: aiomqtt.Client, url: str, client_id: str) -> None:
        self._client = client
        self.url = url
        self.client_id = client_id
        self.received = 0
        self.published = 0
        # publish_nowait writes at once; meanwhile paho's "wants to write" callback (aiomqtt
        # answers it with a self-pipe wake-up and a writer on the next loop turn) is skipped,
        # and so is the "done writing" one that matches it (aiomqtt holds no writer then)
        self._writing_now = False
        self._writer_held = False  # aiomqtt was asked for a writer and still has it
        paho_client = client._client
        register, unregister = (
            paho_client.on_socket_register_write,
            paho_client.on_socket_unregister_write,
        )

        def register_write(c: paho.Client, userdata: Any, sock: Any) -> None:
            if not self._writing_now and register is not None:
                self._writer_held = True
                register(c, userdata, sock)

        def unregister_write(c: paho.Client, userdata: Any, sock: Any) -> None:
            if self._writer_held and unregister is not None:
                self._writer_held = False
                unregister(c, userdata, sock)

        self._register_write = register
        paho_client.on_socket_register_write = register_write
        paho_client.on_socket_unregister_write = unregister_write

    async def subscribe(self, *filters: str, qos: int = 0) -> None:
        try:
            for topic_filter in filters:
                await self._client.subscribe(topic_filter, qos=qos)
        except aiomqtt.MqttError as e:
            raise BusError(f"subscribe to {filters} on {self.url} failed: {e}") from e

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False
    ) -> None:
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as e:
            raise BusError(f"publish to {topic} on {self.url} failed: {e}") from e
        self.published += 1

    async def __aiter__(self) -> AsyncIterator[MqttMessage]:
        try:
            async for message in self._client.messages:
                self.received += 1
                payload = message.payload
                data = payload if isinstance(payload, bytes) else str(payload or "").encode()
                yield MqttMessage(message.topic.value, data)
        except aiomqtt.MqttError as e:
            raise BusError(f"connection to {self.url} lost: {e}") from e

    def publish_nowait(self, topic: str, payload: bytes) -> None:
        """A QoS 0 publish, written to the socket before this returns (what the socket does
        not take now goes out when it is writable, in order): no event-loop turn between a
        twin change and its message, and none each for several in a row."""
        client = self._client._client  # the paho client
        self._writing_now = True
        try:
            info = client.publish(topic, payload, 0, False)
        finally:
            self._writing_now = False
        rc = info.rc if info.rc != paho.MQTT_ERR_SUCCESS else client.loop_write()
        if rc != paho.MQTT_ERR_SUCCESS:
            raise BusError(f"publish to {topic} on {self.url} failed: {paho.error_string(rc)}")
        sock = client.socket()
        if client.want_write() and sock is not None and self._register_write is not None:
            self._writer_held = True  # the socket was full: the rest when it is writable
            self._register_write(client, client.user_data_get(), sock)
        self.published += 1

    def statistics(self) -> dict[str, int]:
        return {"received": self.received, "published": self.published}


@contextlib.asynccontextmanager
async def open_mqtt_client(
    url: str,
    *,
    client_id: str | None = None,
    keepalive_s: int = 30,
    connect_timeout_s: float = 5.0,
    max_queued: int = 10_000,
) -> AsyncIterator[MqttClient]:
    """Connect to the broker at ``url``; disconnect on exit. BusError when it is unreachable."""
    host, port = parse_mqtt_url(url)
    client_id = client_id or f"edgeweave-{uuid.uuid4().hex[:12]}"
    client = aiomqtt.Client(
        host,
        port,
        identifier=client_id,
        keepalive=keepalive_s,
        timeout=connect_timeout_s,
        max_queued_incoming_messages=max_queued,
        # small messages in a row (a result, then a document) must not wait for Nagle's
        # algorithm to meet the peer's delayed ACK (~40 ms)
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as e:
        raise BusError(f"cannot connect to the MQTT broker at {url}: {e}") from e
    try:
        yield MqttClient(client, url, client_id)
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)
