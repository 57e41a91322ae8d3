"""Sync.persist hands the twin host the Device objects it wrote, as the store kept them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from edgeweave.edge.store import open_edge_store
from edgeweave.edge.sync import Sync
from edgeweave.errors import StoreError
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


async def test_a_failed_persist_hands_over_nothing() -> None:
    sync = Sync(cast(Any, FailingStore()))
    with pytest.raises(StoreError):
        await sync.persist([m.Upsert(ref=A, rv=1, object=device("a", "x"))])
    assert not sync.device_objects
    assert not sync.devices_changed.is_set()
