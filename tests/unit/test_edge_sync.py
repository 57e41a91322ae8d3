"""Sync.persist hands the twin host the Device objects it wrote, as the store keeps them."""

from __future__ import annotations

from typing import Any, cast

import pytest

from edgeweave.edge.sync import Sync
from edgeweave.errors import StoreError
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import ResourceRef, Versioned


class FakeStore:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.batches: list[tuple[list[Any], list[Versioned]]] = []

    async def apply_batch(self, upserts: list[Any], deletes: list[Versioned]) -> None:
        if self.fail:
            raise StoreError("disk full")
        self.batches.append((upserts, deletes))


def device(name: str, value: str) -> dict[str, Any]:
    return {"kind": "Device", "metadata": {"name": name, "namespace": "default"}, "v": value}


A = ResourceRef("Device", "default", "a")
B = ResourceRef("Device", "default", "b")
APP = ResourceRef("App", "default", "web")


async def test_persist_records_the_newest_device_objects_and_deletions() -> None:
    store = FakeStore()
    sync = Sync(cast(Any, store))
    batch: list[m.Upsert | m.Delete] = [
        m.Upsert(ref=A, rv=5, object=device("a", "new")),
        m.Upsert(ref=A, rv=4, object=device("a", "old")),  # lower rv: the store keeps rv 5
        m.Delete(ref=B, rv=6),
        m.Upsert(ref=APP, rv=7, object={"kind": "App"}),
    ]
    acked = await sync.persist(batch)
    assert [v.rv for v in acked] == [5, 4, 6, 7]
    assert sync.device_refs == {A, B}
    assert sync.device_objects == {A: device("a", "new"), B: None}
    assert sync.devices_changed.is_set() and sync.changed.is_set()


async def test_a_failed_persist_hands_over_nothing() -> None:
    sync = Sync(cast(Any, FakeStore(fail=True)))
    with pytest.raises(StoreError):
        await sync.persist([m.Upsert(ref=A, rv=1, object=device("a", "x"))])
    assert not sync.device_objects and not sync.device_refs
    assert not sync.devices_changed.is_set()
