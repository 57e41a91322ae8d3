"""The MQTT seam against real brokers: ``publish_nowait`` writes at once, and a burst larger
than the socket takes still arrives whole and in order (the rest goes out when the socket is
writable)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from edgeweave.edge.devices.broker import open_embedded_broker
from edgeweave.transport.mqtt import open_mqtt_client

BURST = 64
SIZE = 256 * 1024  # 16 MiB in all: more than a loopback socket buffers


@pytest.fixture(params=["embedded", "mosquitto"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if request.param == "mosquitto":
        yield request.getfixturevalue("mosquitto_url")
        return
    async with open_embedded_broker("127.0.0.1", 0) as embedded:
        yield embedded.url


async def test_a_burst_of_publishes_arrives_whole_and_in_order(broker: str) -> None:
    topic = f"edgeweave-test/burst/{id(broker)}"
    async with (
        open_mqtt_client(broker) as sub,
        open_mqtt_client(broker) as pub,
    ):
        await sub.subscribe(topic)
        got: list[bytes] = []

        async def receive() -> None:
            async for message in sub:
                got.append(message.payload)
                if len(got) == BURST:
                    return

        receiver = asyncio.create_task(receive())
        try:
            sent = [bytes([i]) * SIZE for i in range(BURST)]
            for payload in sent:
                pub.publish_nowait(topic, payload)  # never waits, whatever the socket takes
            async with asyncio.timeout(30):
                await receiver
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
        assert [p[0] for p in got] == list(range(BURST))
        assert all(len(p) == SIZE for p in got)
        assert pub.statistics()["published"] == BURST
