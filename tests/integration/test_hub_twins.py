"""``device.twin`` through the real hub: a websockets "agent" (no edge code) reports a device's
twins, the hub commits them and adopts a desired value set on the edge.

Uses the hub fixture and bare agent of test_hub.py (real TLS, real SQLite store).
"""

from __future__ import annotations

import time
from typing import Any

from test_hub import Agent, Env, add_node, env, open_agent, ref, refs_of, wait_for  # noqa: F401

from edgeweave.protocol.messages import Upstream, UpstreamAck, UpstreamEntry

MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "m", "namespace": "default"},
    "spec": {"properties": [{"name": "temp", "type": "FLOAT"}, {"name": "target", "type": "INT"}]},
}
DEVICE = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "Device",
    "metadata": {"name": "d1", "namespace": "default"},
    "spec": {
        "deviceModelRef": {"name": "m"},
        "nodeName": "a",
        "properties": [{"name": "target", "desired": {"value": "20"}}],
    },
}


def twin_entry(seq: int, now_ms: int, **extra: Any) -> UpstreamEntry:
    payload = {
        "device": {"namespace": "default", "name": "d1"},
        "state": "online",
        "twins": [{"propertyName": "temp", "reported": {"value": "21.5"}}],
        "samples": [{"property": "temp", "value": "21.5", "timestamp": now_ms}],
        **extra,
    }
    return UpstreamEntry(seq=seq, topic="device.twin", payload=payload)


async def test_a_node_reports_twins_and_sets_a_desired_value_through_the_hub(
    env: Env,  # noqa: F811 - the fixture imported from test_hub
) -> None:
    await add_node(env, "a")
    await env.store.create(MODEL)
    await env.store.create(DEVICE)
    now = int(time.time() * 1000)
    async with open_agent(env, "a") as ws:
        agent = Agent(ws)
        got = await agent.sync()
        assert {ref("Device", "d1"), ref("DeviceModel", "m")} <= refs_of(got)
        local = [{"property": "target", "value": "22", "base": "20", "timestamp": now}]
        await agent.send(
            Upstream(
                entries=(
                    twin_entry(1, now, localDesired=local),
                    UpstreamEntry(seq=2, topic="device.twin", payload={"device": "d1"}),
                )
            )
        )
        ack = await agent.until(UpstreamAck)
        assert isinstance(ack[-1], UpstreamAck) and ack[-1].committed_seq == 2

        async def adopted() -> bool:
            device = await env.store.get("Device", "default", "d1")
            return device["spec"]["properties"][0]["desired"]["value"] == "22"

        await wait_for(adopted, "the edge's desired value adopted")
        device = await env.store.get("Device", "default", "d1")
        assert device["status"]["state"] == "online"
        history = await env.store.list_twin_history("default", "d1", "temp")
        assert [(h["value"], h["timestamp"]) for h in history] == [("21.5", now)]
        reasons = {e["reason"] for e in await env.store.list_events()}
        assert {"TwinDesiredSetOnEdge", "UpstreamRefused"} <= reasons
        assert env.hub.statistics()["twin_desired_adopted"] == 1


async def test_deleting_a_device_forgets_its_twin_history(
    env: Env,  # noqa: F811 - the fixture imported from test_hub
) -> None:
    await add_node(env, "a")
    await env.store.create(MODEL)
    await env.store.create(DEVICE)
    now = int(time.time() * 1000)
    async with open_agent(env, "a") as ws:
        agent = Agent(ws)
        await agent.sync()
        await agent.send(Upstream(entries=(twin_entry(1, now),)))
        await agent.until(UpstreamAck)
    assert len(await env.store.list_twin_history("default", "d1")) == 1
    await env.store.delete("Device", "default", "d1")

    async def forgotten() -> bool:
        return await env.store.list_twin_history("default", "d1") == []

    await wait_for(forgotten, "the deleted device's history pruned")
    assert env.hub.statistics()["history_pruned_rows"] == 1
