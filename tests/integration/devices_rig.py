"""A twin host on real parts for the device tests: edge store, twin store, outbox, a broker.

The broker is the agent's embedded amqtt one or the mosquitto this machine runs; the test
talks to it with paho, as a KubeEdge mapper would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edgeweave.aio.backoff import Backoff
from edgeweave.edge.devices.broker import open_embedded_broker
from edgeweave.edge.devices.bus import BusState, OpenClient, run_bus
from edgeweave.edge.devices.host import DeviceHost
from edgeweave.edge.devices.reporter import Reporter
from edgeweave.edge.devices.twinstore import TwinStore, open_twin_store
from edgeweave.edge.outbox import Outbox, open_outbox
from edgeweave.edge.store import EdgeStore, open_edge_store
from edgeweave.edge.sync import Sync
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import ResourceRef

WAIT_S = 10.0
NODE = "node-a"

MODEL: dict[str, Any] = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "thermostat-model", "namespace": "default"},
    "spec": {
        "protocol": "modbus",
        "properties": [
            {"name": "target", "type": "FLOAT", "accessMode": "ReadWrite"},
            {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"},
        ],
    },
}


def device(name: str = "thermo-1", target: str | None = "21", cycle_ms: int = 50) -> dict[str, Any]:
    desired = {"desired": {"value": target}} if target is not None else {}
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "deviceModelRef": {"name": "thermostat-model"},
            "nodeName": NODE,
            "protocol": {"protocolName": "custom"},
            "properties": [
                {"name": "target", "reportCycle": cycle_ms, **desired},
                {"name": "temperature", "reportCycle": cycle_ms},
            ],
        },
    }


class PahoClient:
    """A paho client on its own network thread; received messages land in a queue."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("mqtt://").partition(":")
        self.received: queue.Queue[tuple[str, dict[str, Any] | bytes]] = queue.Queue()
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = self._on_message
        self._client.connect(host, int(port))
        self._client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            body: dict[str, Any] | bytes = json.loads(msg.payload)
        except ValueError:
            body = msg.payload
        self.received.put((msg.topic, body))

    async def subscribe(self, *filters: str) -> None:
        for f in filters:
            result, _mid = self._client.subscribe(f, qos=1)
            assert result == paho.MQTT_ERR_SUCCESS
        # a round trip through the broker proves the subscriptions are in place
        probe = f"edgeweave-test/probe/{id(self)}"
        self._client.subscribe(probe, qos=1)
        self._client.publish(probe, b"probe", qos=1)  # after the subscribes, in order
        await self.next(lambda t, _b: t == probe)

    def publish(self, topic: str, payload: bytes | dict[str, Any], qos: int = 1) -> None:
        """Queue a publish on paho's thread (waiting here would block the embedded broker)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._client.publish(topic, data, qos=qos)

    async def next(
        self, match: Any = None, timeout_s: float = WAIT_S
    ) -> tuple[str, dict[str, Any] | bytes]:
        """The next message for which ``match(topic, body)`` is true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("no matching MQTT message")
            try:
                topic, body = await asyncio.to_thread(self.received.get, True, min(left, 0.5))
            except queue.Empty:
                continue
            if match is None or match(topic, body):
                return topic, body

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@dataclass
class Rig:
    store: EdgeStore
    sync: Sync
    twins: TwinStore
    outbox: Outbox
    host: DeviceHost
    bus: BusState
    url: str
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    rv: int = 0

    async def put(self, *objects: dict[str, Any]) -> None:
        """As the cloud sends them: one batch through the agent's sync."""
        batch: list[m.Upsert | m.Delete] = []
        for obj in objects:
            self.rv += 1
            ref = ResourceRef(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
            batch.append(m.Upsert(ref=ref, rv=self.rv, object=obj))
        await self.sync.persist(batch)

    async def entries(self, topic: str) -> list[dict[str, Any]]:
        await self.outbox.flush()
        got = await self.outbox.peek(0, max_entries=100_000, max_bytes=1 << 30)
        return [json.loads(e.payload_json) for e in got if e.topic == topic]

    async def wait_entries(self, topic: str, pred: Any, timeout_s: float = WAIT_S) -> list[Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                found = [p for p in await self.entries(topic) if pred(p)]
                if found:
                    return found
                await asyncio.sleep(0.02)  # polling a file-backed queue, bounded by the timeout


@contextlib.asynccontextmanager
async def open_rig(tmp: Path, broker: str) -> AsyncIterator[Rig]:
    async with contextlib.AsyncExitStack() as stack:
        open_client: OpenClient | None = None  # the twin host's connection: over MQTT
        if broker == "embedded":  # in process, as the agent connects to its own broker
            embedded = await stack.enter_async_context(open_embedded_broker("127.0.0.1", 0))
            url, open_client = embedded.url, embedded.open_client
        else:
            url = broker
        store = await open_edge_store(tmp / "state.db", secret_key=b"k" * 32)
        stack.push_async_callback(store.aclose)
        twins = await open_twin_store(tmp / "twins.db")
        stack.push_async_callback(twins.aclose)
        outbox = await open_outbox(tmp / "outbox.db")
        stack.push_async_callback(outbox.aclose)
        loop = asyncio.get_running_loop()
        reporter = Reporter(outbox.append_nowait, outbox.wait_durable, clock=loop.time)
        sync = Sync(store)
        host = DeviceHost(
            NODE,
            store,
            twins,
            reporter,
            lambda p: outbox.append_nowait("event", p),
            wait_persisted=sync.wait_persisted,
        )
        host.changed, host.changed_objects = sync.devices_changed, sync.device_objects
        await host.load()
        rig = Rig(store, sync, twins, outbox, host, BusState(url), url)
        rig.tasks = [
            asyncio.create_task(host.run_reconcile()),
            asyncio.create_task(host.run_flush()),
            asyncio.create_task(reporter.run()),
            asyncio.create_task(run_bus(host, rig.bus, Backoff(0.05, 0.5), open_client)),
        ]

        async def stop() -> None:
            for t in rig.tasks:
                t.cancel()
            await asyncio.gather(*rig.tasks, return_exceptions=True)

        stack.push_async_callback(stop)
        async with asyncio.timeout(WAIT_S):
            await rig.bus.connected.wait()
        yield rig
