"""Sync.persist hands the twin host the Device objects of a batch, as the store keeps them,
while the batch is being written; ``wait_persisted`` says when they are on disk."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

import pytest
from devices_rig import MODEL, NODE
from devices_rig import device as rig_device

from edgeweave.edge.devices.host import DeviceHost
from edgeweave.edge.devices.reporter import Reporter
from edgeweave.edge.devices.twinstore import open_twin_store
from edgeweave.edge.store import open_edge_store
from edgeweave.edge.sync import Sync
from edgeweave.errors import InvalidObject, StoreError
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import ResourceRef, Versioned


def device(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"v": value},
    }


A = ResourceRef("Device", "default", "a")
B = ResourceRef("Device", "default", "b")
APP = ResourceRef("App", "default", "web")


async def test_persist_hands_over_the_device_objects_the_store_kept(tmp_path: Path) -> None:
    store = await open_edge_store(tmp_path / "state.db", secret_key=b"k" * 32)
    try:
        sync = Sync(store)
        await sync.persist([m.Upsert(ref=B, rv=1, object=device("b", "gone soon"))])
        sync.device_objects.clear()
        batch: list[m.Upsert | m.Delete] = [
            m.Upsert(ref=A, rv=5, object=device("a", "new")),
            m.Upsert(ref=A, rv=4, object=device("a", "old")),  # lower rv: the store keeps rv 5
            m.Delete(ref=B, rv=6),
            m.Upsert(
                ref=APP,
                rv=7,
                object={
                    "kind": "App",
                    "metadata": {"name": "web", "namespace": "default"},
                    "spec": {},
                },
            ),
        ]
        acked = await sync.persist(batch)
        assert [v.rv for v in acked] == [5, 4, 6, 7]
        assert set(sync.device_objects) == {A, B}
        assert sync.device_objects == {A: device("a", "new"), B: None}
        assert sync.device_objects[A] == await store.get(A)
        assert sync.devices_changed.is_set() and sync.changed.is_set()
    finally:
        await store.aclose()


class FailingStore:
    async def apply_batch(self, upserts: list[Any], deletes: list[Versioned]) -> None:
        raise StoreError("disk full")


async def test_a_failed_persist_is_not_acked_and_does_not_hold_the_twin_writes() -> None:
    sync = Sync(cast(Any, FailingStore()))
    with pytest.raises(StoreError):  # not acked: the cloud sends the batch again
        await sync.persist([m.Upsert(ref=A, rv=1, object=device("a", "x"))])
    assert sync.device_objects == {A: device("a", "x")}  # the cloud's value, applied early
    async with asyncio.timeout(5):
        await sync.wait_persisted()  # nothing left in flight


class SlowStore:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.written: list[Any] = []

    async def apply_batch(self, upserts: list[Any], deletes: list[Versioned]) -> None:
        await self.release.wait()
        self.written.extend(upserts)


async def test_devices_go_to_the_twin_host_while_the_batch_is_written() -> None:
    store = SlowStore()
    sync = Sync(cast(Any, store))
    persist = asyncio.create_task(sync.persist([m.Upsert(ref=A, rv=1, object=device("a", "x"))]))
    try:
        async with asyncio.timeout(5):
            await sync.devices_changed.wait()
        assert sync.device_objects == {A: device("a", "x")} and not store.written
        waiter = asyncio.create_task(sync.wait_persisted())
        await asyncio.sleep(0)  # one loop turn: the waiter is parked, not done
        assert not waiter.done()
        store.release.set()
        async with asyncio.timeout(5):
            await waiter
        assert store.written and persist.done()
        assert sync.devices_changed.is_set()  # said again once on disk, for store readers
    finally:
        store.release.set()
        await asyncio.gather(persist, return_exceptions=True)


async def test_an_object_the_store_refuses_is_not_handed_over(tmp_path: Path) -> None:
    store = await open_edge_store(tmp_path / "state.db", secret_key=b"k" * 32)
    try:
        sync = Sync(store)
        named_b = device("b", "x")  # under A's ref: the store refuses the batch
        with pytest.raises(InvalidObject, match="the object says Device default/b"):
            await sync.persist([m.Upsert(ref=A, rv=1, object=named_b)])
        assert not sync.device_objects
    finally:
        await store.aclose()


async def test_twins_reach_disk_only_after_the_objects_they_came_from(tmp_path: Path) -> None:
    store = SlowStore()
    sync = Sync(cast(Any, store))
    twins = await open_twin_store(tmp_path / "twins.db")
    appended: list[Any] = []

    def append(topic: str, payload: Any) -> int:
        appended.append(payload)
        return len(appended)

    async def durable(seq: int) -> None:
        return None

    reporter = Reporter(append, durable, clock=time.monotonic)
    host = DeviceHost(
        NODE, cast(Any, store), twins, reporter, appended.append, wait_persisted=sync.wait_persisted
    )
    ref = ResourceRef("Device", "default", "thermo-1")
    batch: list[m.Upsert | m.Delete] = [
        m.Upsert(ref=ResourceRef("DeviceModel", "default", "thermostat-model"), rv=1, object=MODEL),
        m.Upsert(ref=ref, rv=2, object=rig_device()),
    ]
    persist = asyncio.create_task(sync.persist(batch))
    try:
        async with asyncio.timeout(5):
            await sync.devices_changed.wait()
        await host.reconcile(dict(sync.device_objects))
        assert host.twin(ref) is not None  # applied while the batch is being written
        flush = asyncio.create_task(host.flush())
        await asyncio.sleep(0)  # one loop turn: the flush is parked, not done
        assert not flush.done() and await twins.load() == {}
        store.release.set()
        async with asyncio.timeout(5):
            await flush
        assert ref in await twins.load()
    finally:
        store.release.set()
        await asyncio.gather(persist, return_exceptions=True)
        await twins.aclose()
