"""Real parts for the mapper tests: a broker, the agent's side of the bus, config files.

The broker is an embedded amqtt (in the test's event loop) or the mosquitto this machine
runs. :class:`AgentBus` plays the edge agent: it publishes deltas, ``twin/get`` results and
``membership/updated``, and waits (with a timeout, never a sleep) for what the mapper sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from amqtt.broker import Broker

from edgeweave.transport.mqtt import MqttClient, open_mqtt_client

WAIT_S = 10.0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextlib.asynccontextmanager
async def open_amqtt_broker() -> AsyncIterator[str]:
    """An embedded amqtt broker on a free loopback port; yields its URL."""
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0"}},
            "sys_interval": 0,
            "auth": {"allow-anonymous": True},
        },
        plugin_namespace="edgeweave.no_plugins",
    )
    await broker.start()
    try:
        port = broker._servers["default"].instance.sockets[0].getsockname()[1]
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        await broker.shutdown()


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    at: float  # time.perf_counter() on arrival

    def json(self) -> Any:
        return json.loads(self.payload)


class AgentBus:
    """The agent's side: publish to the mapper, wait for what it publishes."""

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.history: list[Seen] = []
        self._taken: set[int] = set()
        self._arrived = asyncio.Event()

    async def pump(self) -> None:
        async for message in self.client:
            self.history.append(Seen(message.topic, message.payload, time.perf_counter()))
            self._arrived.set()

    async def publish(self, topic: str, body: Any) -> float:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = time.perf_counter()
        await self.client.publish(topic, payload)
        return sent

    async def wait_for(
        self, match: Callable[[Seen], bool], what: str, timeout_s: float = WAIT_S
    ) -> Seen:
        """The first message not yet taken that ``match``es (waiting for it if need be)."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    for i, seen in enumerate(self.history):
                        if i not in self._taken and match(seen):
                            self._taken.add(i)
                            return seen
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            seen_topics = sorted({s.topic for s in self.history})
            raise AssertionError(f"no {what} within {timeout_s} s; seen: {seen_topics}") from None

    async def wait_twin_update(self, device: str, prop: str, value: str | None = None) -> Seen:
        topic = f"$hw/events/device/{device}/twin/update"

        def match(seen: Seen) -> bool:
            if seen.topic != topic:
                return False
            twin = seen.json()["twin"]
            actual = twin.get(prop, {}).get("actual", {}).get("value")
            return actual is not None and (value is None or actual == value)

        return await self.wait_for(match, f"twin/update of {device} {prop}={value}")

    async def wait_state(self, device: str, state: str) -> Seen:
        topic = f"$hw/events/device/{device}/state/update"
        return await self.wait_for(
            lambda s: s.topic == topic and s.json()["state"] == state, f"{device} {state}"
        )


@contextlib.asynccontextmanager
async def open_agent_bus(url: str) -> AsyncIterator[AgentBus]:
    async with open_mqtt_client(url, client_id=f"test-agent-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(
            "$hw/events/device/+/+/twin/update",
            "$hw/events/device/+/+/twin/get",
            "$hw/events/device/+/+/state/update",
        )
        bus = AgentBus(client)
        pump = asyncio.create_task(bus.pump(), name="test agent bus")
        try:
            yield bus
        finally:
            pump.cancel()
            await asyncio.wait([pump])


def example_docs() -> dict[str, dict[str, Any]]:
    with (EXAMPLES / "building-devices.yaml").open() as f:
        return {d["metadata"]["name"]: d for d in yaml.safe_load_all(f)}


def write_config(
    path: Path,
    node: str,
    protocol: str,
    devices: list[str],
    *,
    namespace: str,
    port: int = 0,
    cycle_ms: int | None = None,
) -> None:
    """The agent's config file for the example devices, moved to ``namespace`` (so tests on a
    shared broker do not see each other), Modbus ones pointed at the simulator's ``port``."""
    docs = example_docs()
    entries = []
    for name in devices:
        device = copy.deepcopy(docs[name])
        device["metadata"]["namespace"] = namespace
        spec = device["spec"]
        spec["nodeName"] = node
        if protocol == "modbus":
            spec["protocol"]["configData"]["port"] = port
        if cycle_ms is not None:
            for prop in spec["properties"]:
                prop["collectCycle"] = prop["reportCycle"] = cycle_ms
        model = docs[spec["deviceModelRef"]["name"]]
        entries.append({"device": device, "model": model})
    doc = {"node": node, "protocol": protocol, "devices": entries}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)  # atomically, as the agent does


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
