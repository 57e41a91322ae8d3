"""The sync hands Device objects to the twin host before the write commits; acks still wait."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from edgeweave.edge.sync import Sync
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import ResourceRef

WAIT_S = 5.0
THERMO = ResourceRef("Device", "default", "thermo-1")
APP = ResourceRef("App", "default", "web")


class SlowStore:
    """apply_batch returns only when the test lets it (a commit in flight)."""

    def __init__(self) -> None:
        self.writing = asyncio.Event()
        self.release = asyncio.Event()
        self.batches: list[Any] = []

    async def apply_batch(self, upserts: Any, deletes: Any) -> None:
        self.writing.set()
        await self.release.wait()
        self.batches.append((upserts, deletes))


def device(rv: int, target: str) -> m.Upsert:
    obj = {"kind": "Device", "metadata": {"namespace": "default", "name": "thermo-1"}}
    obj["spec"] = {"target": target}
    return m.Upsert(ref=THERMO, rv=rv, object=obj)


async def test_devices_are_handed_over_while_the_write_is_in_flight() -> None:
    store = SlowStore()
    sync = Sync(cast(Any, store))
    app = m.Upsert(ref=APP, rv=1, object={"kind": "App"})
    persist = asyncio.create_task(sync.persist([app, device(2, "21")]))
    async with asyncio.timeout(WAIT_S):
        await store.writing.wait()
    # the twin host may act now: the object, its rv, and the wake-up are there
    assert sync.devices_changed.is_set()
    assert sync.device_changes == {THERMO: (2, device(2, "21").object)}
    assert not persist.done()  # ... but nothing is acked before the commit
    assert not sync.changed.is_set()  # apps still reconcile from the store, after the write
    sync.devices_changed.clear()
    store.release.set()
    async with asyncio.timeout(WAIT_S):
        acked = await persist
    assert [v.ref for v in acked] == [APP, THERMO]
    assert sync.changed.is_set() and sync.devices_changed.is_set()  # set again once stored


async def test_the_newest_rv_wins_and_a_delete_hands_over_none() -> None:
    store = SlowStore()
    store.release.set()
    sync = Sync(cast(Any, store))
    await sync.persist([device(5, "new"), device(4, "old")])
    assert sync.device_changes[THERMO][0] == 5
    assert sync.device_changes[THERMO][1] is not None
    assert sync.device_changes[THERMO][1]["spec"] == {"target": "new"}
    await sync.persist([m.Delete(ref=THERMO, rv=6)])
    assert sync.device_changes == {THERMO: (6, None)}
    await sync.persist([device(3, "stale")])  # an older rv does not replace a newer one
    assert sync.device_changes == {THERMO: (6, None)}
