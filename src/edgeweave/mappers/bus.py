"""What a mapper publishes on the agent's bus, in KubeEdge's topics and payloads.

:class:`BusPublisher` sends ``twin/update`` (a property's ``actual`` value, typed by the
model), ``state/update`` and ``twin/get`` for a device, encoded by
:mod:`edgeweave.twin.payloads` on the topics of :mod:`edgeweave.twin.topics`. It publishes
through the MQTT client the runner attached; while none is attached (the broker is away) a
message is dropped and counted, because every reading is sent again at its next report
cycle and the runner re-announces state and asks for twins on reconnect.

Must not decide what or when to publish (the device workers do) nor open connections.
"""

from __future__ import annotations

import logging

from edgeweave.aio.clock import Clock
from edgeweave.errors import BusError
from edgeweave.protocol.refs import ResourceRef
from edgeweave.transport.mqtt import MqttClient
from edgeweave.twin import payloads
from edgeweave.twin.messages import (
    MsgTwin,
    StateUpdate,
    TwinGet,
    TwinUpdate,
    TwinValue,
    new_event_id,
)
from edgeweave.twin.topics import DeviceAction, device_topic

log = logging.getLogger(__name__)


def twin_update_payload(prop: str, twin_type: str, value: str, now_ms: int) -> bytes:
    """A ``twin/update`` that reports ``value`` as the property's actual value."""
    twin = MsgTwin(actual=TwinValue(value, now_ms), type=twin_type)
    return payloads.encode(TwinUpdate(new_event_id(), now_ms, {prop: twin}))


def state_payload(state: str, now_ms: int) -> bytes:
    return payloads.encode(StateUpdate(new_event_id(), now_ms, state))


def twin_get_payload() -> bytes:
    return payloads.encode(TwinGet(new_event_id()))


class BusPublisher:
    """Publishes through the attached client; drops (and counts) while detached."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._client: MqttClient | None = None
        self.published = 0
        self.dropped = 0

    @property
    def connected(self) -> bool:
        return self._client is not None

    def attach(self, client: MqttClient) -> None:
        self._client = client

    def detach(self) -> None:
        self._client = None

    def now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    async def twin_update(self, device: ResourceRef, prop: str, twin_type: str, value: str) -> bool:
        payload = twin_update_payload(prop, twin_type, value, self.now_ms())
        return await self._publish(device_topic(device, DeviceAction.TWIN_UPDATE), payload)

    async def state_update(self, device: ResourceRef, state: str) -> bool:
        payload = state_payload(state, self.now_ms())
        return await self._publish(device_topic(device, DeviceAction.STATE_UPDATE), payload)

    async def twin_get(self, device: ResourceRef) -> bool:
        return await self._publish(device_topic(device, DeviceAction.TWIN_GET), twin_get_payload())

    async def _publish(self, topic: str, payload: bytes) -> bool:
        client = self._client
        if client is None:
            self.dropped += 1
            return False
        try:
            client.publish_nowait(topic, payload)  # QoS 0, in order, no loop round trip
        except BusError as e:  # the bus loop sees the broken connection and reconnects
            self.dropped += 1
            log.debug("dropped a message to %s: %s", topic, e)
            return False
        self.published += 1
        return True

    def statistics(self) -> dict[str, int]:
        return {"published": self.published, "dropped": self.dropped}
