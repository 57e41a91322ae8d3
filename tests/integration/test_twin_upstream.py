"""``device.twin`` reports through the hub's committer into a real store, and the adoption of
desired values set on the edge (the conflict rule of COMPAT.md §2: desired — the cloud wins).

The committer, the desired-state index (loaded by the real dispatcher) and the adopter run as
they do in the hub, against a SQLite file and a PostgreSQL schema; only the link is left out:
batches are handed to :meth:`Committer.submit_upstream` as a session would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from edgeweave.cloud.hub.dispatch import Dispatcher
from edgeweave.cloud.hub.twinadopt import DesiredAdopter
from edgeweave.cloud.hub.upstream import Committer
from edgeweave.cloud.store.base import CloudStore, JSONObject
from edgeweave.protocol.messages import Message, Upstream, UpstreamAck, UpstreamEntry

WAIT_S = 10.0
NODE = "edge-1"

MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "thermostat-model", "namespace": "default"},
    "spec": {
        "properties": [
            {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"},
            {"name": "target", "type": "INT", "minimum": "5", "maximum": "35"},
            {"name": "mode", "type": "STRING"},
        ]
    },
}


def device(target: str = "22", node: str = NODE) -> JSONObject:
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "thermostat-1", "namespace": "default"},
        "spec": {
            "deviceModelRef": {"name": "thermostat-model"},
            "nodeName": node,
            "properties": [
                {"name": "temperature"},
                {"name": "target", "desired": {"value": target, "metadata": {"type": "int"}}},
            ],
        },
    }


def twin_report(
    local: list[dict[str, Any]] | None = None, temperature: str = "21.5", at_ms: int = 1
) -> dict[str, Any]:
    return {
        "device": {"namespace": "default", "name": "thermostat-1"},
        "state": "online",
        "lastOnlineTime": "2026-11-26T09:00:00Z",
        "twins": [
            {
                "propertyName": "temperature",
                "reported": {"value": temperature, "metadata": {"timestamp": str(at_ms)}},
            },
            {"propertyName": "target", "observedDesired": {"value": "22"}},
        ],
        "samples": [{"property": "temperature", "value": temperature, "timestamp": at_ms}],
        "localDesired": local or [],
    }


def local(value: str, base: str | None, at_ms: int, prop: str = "target") -> dict[str, Any]:
    return {"property": prop, "value": value, "base": base, "timestamp": at_ms}


@dataclass
class Hub:
    store: CloudStore
    dispatcher: Dispatcher
    committer: Committer
    adopter: DesiredAdopter
    replies: asyncio.Queue[Message]
    seq: int = 0

    async def send(self, *payloads: Any, topic: str = "device.twin") -> Message:
        """One upstream batch from NODE; waits for its answer, then for the adopter."""
        items = []
        for payload in payloads:
            self.seq += 1
            items.append(UpstreamEntry(seq=self.seq, topic=topic, payload=payload))
        await self.dispatcher.load()  # what the hub's watch keeps current
        self.committer.submit_upstream(
            NODE, Upstream(entries=tuple(items)), self.replies.put_nowait
        )
        reply = await asyncio.wait_for(self.replies.get(), WAIT_S)
        await asyncio.wait_for(self.adopter.idle.wait(), WAIT_S)
        return reply

    async def desired(self) -> str | None:
        obj = await self.store.get("Device", "default", "thermostat-1")
        props = {p["name"]: p for p in obj["spec"]["properties"]}
        return (props["target"].get("desired") or {}).get("value")

    async def events(self, kind: str = "Device") -> list[tuple[str, str, str]]:
        found = await self.store.list_events(kind)
        return [(e["type"], e["reason"], e["message"]) for e in found]


async def seeded(store: CloudStore) -> Dispatcher:
    """NODE, the model and the Device in ``store``; the hub's dispatcher over it."""
    await store.create(
        {"kind": "Node", "apiVersion": "edgeweave.io/v1", "metadata": {"name": NODE}}
    )
    await store.create(MODEL)
    await store.create(device())
    return Dispatcher(
        store, on_marks=lambda marks: None, on_node_deleted=lambda n: None, on_rebuilt=lambda: None
    )


@pytest.fixture
async def hub(store: CloudStore) -> AsyncIterator[Hub]:
    dispatcher = await seeded(store)
    adopter = DesiredAdopter(store)
    committer = Committer(store, lambda: dispatcher.index, on_adoptions=adopter.wake)
    tasks = [
        asyncio.create_task(committer.run(), name="test-committer"),
        asyncio.create_task(adopter.run(), name="test-adopter"),
    ]
    try:
        yield Hub(store, dispatcher, committer, adopter, asyncio.Queue())
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_report_writes_the_device_status_and_its_history(hub: Hub) -> None:
    now = int(time.time() * 1000)
    reply = await hub.send(twin_report(temperature="21.5", at_ms=now))
    assert isinstance(reply, UpstreamAck) and reply.committed_seq == 1
    stored = await hub.store.get("Device", "default", "thermostat-1")
    assert stored["status"]["state"] == "online"
    assert [t["propertyName"] for t in stored["status"]["twins"]] == ["temperature", "target"]
    assert stored["status"]["twins"][0]["reported"]["value"] == "21.5"
    # the twin list is replaced whole by the next report
    await hub.send(
        {
            "device": {"namespace": "default", "name": "thermostat-1"},
            "twins": [],
            "samples": [{"property": "temperature", "value": "22.0", "timestamp": now + 1000}],
        }
    )
    stored = await hub.store.get("Device", "default", "thermostat-1")
    assert stored["status"]["twins"] == [] and stored["status"]["state"] == "online"
    history = await hub.store.list_twin_history("default", "thermostat-1", "temperature")
    assert [(h["value"], h["timestamp"]) for h in history] == [("21.5", now), ("22.0", now + 1000)]


async def test_a_desired_value_set_on_the_edge_is_adopted_when_the_cloud_did_not_move(
    hub: Hub,
) -> None:
    await hub.send(twin_report([local("23", "22", 1000)]))
    assert await hub.desired() == "23"
    stored = await hub.store.get("Device", "default", "thermostat-1")
    target = next(p for p in stored["spec"]["properties"] if p["name"] == "target")
    assert target["desired"]["metadata"] == {"type": "int"}  # kept
    (event,) = await hub.events()
    assert event[:2] == ("Normal", "TwinDesiredSetOnEdge")
    assert "'target'" in event[2] and "'23'" in event[2]
    assert hub.adopter.adopted == 1


async def test_an_edge_value_committed_while_no_adopter_ran_is_adopted_after_a_restart(
    store: CloudStore,
) -> None:
    """The cloud stopped right after committing the report: the value is not lost."""
    dispatcher = await seeded(store)
    await dispatcher.load()
    replies: asyncio.Queue[Message] = asyncio.Queue()
    committer = Committer(store, lambda: dispatcher.index)  # no adopter in this "process"
    task = asyncio.create_task(committer.run(), name="test-committer")
    try:
        entry = UpstreamEntry(
            seq=1, topic="device.twin", payload=twin_report([local("23", "22", 1)])
        )
        committer.submit_upstream(NODE, Upstream(entries=(entry,)), replies.put_nowait)
        assert isinstance(await asyncio.wait_for(replies.get(), WAIT_S), UpstreamAck)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    adopter = DesiredAdopter(store)  # the next start
    task = asyncio.create_task(adopter.run(), name="test-adopter")
    try:
        await asyncio.wait_for(adopter.idle.wait(), WAIT_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    obj = await store.get("Device", "default", "thermostat-1")
    target = next(p for p in obj["spec"]["properties"] if p["name"] == "target")
    assert target["desired"]["value"] == "23" and adopter.adopted == 1
    assert await store.claim_adoptions("check", 60.0, 10) == []  # handled once, then forgotten


async def test_kept_items_that_cannot_be_read_are_dropped_loudly_not_retried(
    hub: Hub,
) -> None:
    bad = [(NODE, "default", "thermostat-1", "not json"), (NODE, "default", "thermostat-1", "{}")]
    await hub.store.commit_upstream(NODE, 100, [], [], adoptions=bad)
    hub.adopter.wake()
    await asyncio.wait_for(hub.adopter.idle.wait(), WAIT_S)
    assert hub.adopter.failed == 2 and hub.adopter.adopted == 0
    assert await hub.store.claim_adoptions("check", 60.0, 10) == []
    assert await hub.desired() == "22"


async def test_a_cloud_change_meanwhile_wins_and_the_conflict_is_an_event(hub: Hub) -> None:
    current = await hub.store.get("Device", "default", "thermostat-1")
    changed = device("25")
    changed["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    await hub.store.update(changed)
    await hub.send(twin_report([local("24", "22", 1000)]))
    assert await hub.desired() == "25"
    (event,) = await hub.events()
    assert event[:2] == ("Warning", "TwinDesiredConflict")
    assert "'target'" in event[2] and "'24'" in event[2] and "'25'" in event[2]
    # the same edit reported again is not a new conflict
    await hub.send(twin_report([local("24", "22", 1000)]))
    assert len(await hub.events()) == 1


async def test_two_edits_made_offline_end_with_the_later_one(hub: Hub) -> None:
    await hub.send(twin_report([local("23", "22", 1000)]))
    await hub.send(twin_report([local("24", "22", 2000)]))
    assert await hub.desired() == "24"
    reasons = [e[1] for e in await hub.events()]
    assert reasons == ["TwinDesiredSetOnEdge", "TwinDesiredSetOnEdge"]
    # in one batch, the newest per property is the one applied
    await hub.send(twin_report([local("25", "24", 3000)]), twin_report([local("26", "24", 4000)]))
    assert await hub.desired() == "26"


async def test_an_edge_value_the_model_refuses_is_not_adopted(hub: Hub) -> None:
    await hub.send(twin_report([local("99", "22", 1000), local("eco", None, 1000, prop="mode")]))
    assert await hub.desired() == "22"
    stored = await hub.store.get("Device", "default", "thermostat-1")
    mode = next(p for p in stored["spec"]["properties"] if p["name"] == "mode")
    assert mode["desired"]["value"] == "eco"  # a model property the Device did not list yet
    events = {e[1]: e for e in await hub.events()}
    assert events["TwinDesiredInvalid"][0] == "Warning"
    assert "'target'" in events["TwinDesiredInvalid"][2]
    assert "TwinDesiredSetOnEdge" in events


async def test_malformed_and_foreign_reports_are_refused_and_the_committer_goes_on(
    hub: Hub,
) -> None:
    foreign = twin_report()
    foreign["device"]["name"] = "someone-elses"
    reply = await hub.send({"device": "thermostat-1", "twins": 7}, foreign, twin_report())
    assert isinstance(reply, UpstreamAck) and reply.committed_seq == 3
    assert hub.committer.refused_total == 2
    ((kind, reason, message),) = await hub.events("Node")
    assert (kind, reason) == ("Warning", "UpstreamRefused")
    assert "malformed" in message and "someone-elses" in message
    stored = await hub.store.get("Device", "default", "thermostat-1")
    assert stored["status"]["state"] == "online"
    reply = await hub.send(twin_report([local("23", "22", 1000)]))
    assert isinstance(reply, UpstreamAck) and await hub.desired() == "23"


async def test_a_device_moved_to_another_node_keeps_its_desired_value(hub: Hub) -> None:
    await hub.send(twin_report())  # assigned: accepted
    current = await hub.store.get("Device", "default", "thermostat-1")
    moved = device(node="edge-2")
    moved["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    await hub.store.update(moved)
    await hub.send(twin_report([local("23", "22", 1000)]))
    assert await hub.desired() == "22"
    assert hub.committer.refused_total == 1
