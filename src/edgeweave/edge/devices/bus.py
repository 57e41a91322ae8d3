"""The agent's connection to the MQTT event bus: subscribe, feed the twin host, reconnect.

One supervised loop: connect to the broker (an external broker such as mosquitto over MQTT,
or the agent's embedded one in process), subscribe to the KubeEdge request topics
(:data:`~edgeweave.twin.topics.REQUEST_FILTERS`), attach the twin host's publisher, and hand
every message to :meth:`~.host.DeviceHost.handle` in arrival order. A lost connection
detaches the host and reconnects after a capped, jittered backoff; the host resends pending
deltas on attach.

Must not interpret topics or payloads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from edgeweave.aio.backoff import Backoff
from edgeweave.edge.devices.host import DeviceHost
from edgeweave.errors import BusError
from edgeweave.transport.mqtt import BusClient, open_mqtt_client
from edgeweave.twin.topics import REQUEST_FILTERS

log = logging.getLogger(__name__)


@dataclass
class BusState:
    url: str
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    connects: int = 0
    detail: str = ""


OpenClient = Callable[[], AbstractAsyncContextManager[BusClient]]


async def run_bus(
    host: DeviceHost, state: BusState, backoff: Backoff, open_client: OpenClient | None = None
) -> None:
    """Until cancelled: keep ``host`` connected to the broker at ``state.url`` (through
    ``open_client``, e.g. the embedded broker's in-process client; default: over MQTT)."""

    def open_network_client() -> AbstractAsyncContextManager[BusClient]:
        return open_mqtt_client(state.url, client_id=f"edgeweave-agent-{host.node}")

    opener = open_client or open_network_client
    while True:
        try:
            async with opener() as c:
                await c.subscribe(*REQUEST_FILTERS, qos=1)
                state.connects += 1
                state.detail = ""
                backoff.reset()
                await host.attach(c.publish_nowait)
                state.connected.set()
                await _serve(host, c)
        except BusError as e:
            state.detail = str(e)
            log.warning("device bus: %s", e)
        finally:
            state.connected.clear()
            host.detach()
        await asyncio.sleep(backoff.next_delay())  # reconnect backoff, not synchronisation


async def _serve(host: DeviceHost, client: BusClient) -> None:
    async for message in client:
        await host.handle(message.topic, message.payload)
