"""The embedded broker's in-process client (the agent's own connection to it): it gets what
network clients publish to its filters, in order (``$`` topics not for ``+``/``#``), its
publishes reach network subscribers and itself, a reader that falls behind loses the oldest
(counted), and it ends with a clear error when the broker stops."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from edgeweave.edge.devices.broker import open_embedded_broker
from edgeweave.errors import BusError
from edgeweave.transport.mqtt import BusClient, MqttMessage, open_mqtt_client

WAIT_S = 10.0


async def take(client: BusClient, count: int) -> list[MqttMessage]:
    got: list[MqttMessage] = []
    async with asyncio.timeout(WAIT_S):
        async for message in client:
            got.append(message)
            if len(got) == count:
                return got
    raise AssertionError("the client ended early")


async def test_network_publishes_reach_the_in_process_client_in_order() -> None:
    async with (
        open_embedded_broker("127.0.0.1", 0) as broker,
        broker.open_client() as local,
        open_mqtt_client(broker.url) as device,
    ):
        await local.subscribe("$hw/events/device/+/twin/update", "#")
        for i in range(100):
            device.publish_nowait("$hw/events/device/d1/twin/update", str(i).encode())
        device.publish_nowait("plain/topic", b"p")
        got = await take(local, 101)
        assert [m.payload for m in got[:100]] == [str(i).encode() for i in range(100)]
        assert got[100] == MqttMessage("plain/topic", b"p")  # '#' matched it, and no '$' topic


async def test_in_process_publishes_reach_network_subscribers_and_itself() -> None:
    async with (
        open_embedded_broker("127.0.0.1", 0) as broker,
        broker.open_client() as local,
        open_mqtt_client(broker.url) as mapper,
    ):
        await mapper.subscribe("$hw/events/device/+/twin/update/delta")
        await local.subscribe("$hw/events/device/+/twin/update/delta")
        local.publish_nowait("$hw/events/device/d1/twin/update/delta", b"{}")
        (seen,) = await take(mapper, 1)
        assert seen == MqttMessage("$hw/events/device/d1/twin/update/delta", b"{}")
        (own,) = await take(local, 1)  # its own filter matches: delivered, as over MQTT
        assert own == seen
        assert local.statistics()["published"] == 1


async def test_a_reader_that_falls_behind_loses_the_oldest_and_counts_them() -> None:
    async with (
        open_embedded_broker("127.0.0.1", 0) as broker,
        broker.open_client(max_queued=10) as local,
    ):
        await local.subscribe("load/#")
        for i in range(25):
            local.publish_nowait(f"load/{i}", b"x")
        got = await take(local, 10)
        assert [m.topic for m in got] == [f"load/{i}" for i in range(15, 25)]
        assert local.statistics()["dropped"] == 15


async def test_the_client_ends_with_an_error_when_the_broker_stops() -> None:
    async with contextlib.AsyncExitStack() as stack:
        async with open_embedded_broker("127.0.0.1", 0) as broker:
            local = await stack.enter_async_context(broker.open_client())
            await local.subscribe("a/#")

            async def read() -> None:
                async for _ in local:
                    pass

            reader = asyncio.create_task(read())
            await asyncio.sleep(0)  # one loop turn: the reader waits for a message
        with pytest.raises(BusError, match="closed"):
            await asyncio.wait_for(reader, WAIT_S)
        with pytest.raises(BusError, match="closed"):
            local.publish_nowait("a/b", b"x")
    with pytest.raises(BusError, match="not running"):
        async with broker.open_client():
            pass
