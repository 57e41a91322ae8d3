"""The twin history pruner's start-up sweep: history of a Device deleted while no cloud process
ran is dropped; the history of Devices that exist is kept. Both stores."""

from __future__ import annotations

import asyncio
import contextlib
import time

from edgeweave.cloud.hub.historyprune import HistoryPruner
from edgeweave.cloud.store.base import CloudStore

WAIT_S = 10.0


def device(name: str) -> dict[str, object]:
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"deviceModelRef": {"name": "m"}, "nodeName": "a"},
    }


async def test_history_without_a_device_is_swept_at_start(store: CloudStore) -> None:
    now = int(time.time() * 1000)
    rows = [("default", name, "temp", now, "21") for name in ("gone", "kept")]
    await store.commit_upstream("n1", 1, [], [], rows)
    await store.create(device("kept"))  # "gone" was deleted while no cloud ran
    pruner = HistoryPruner(store)
    task = asyncio.create_task(pruner.run(), name="test-history-pruner")
    try:
        async with asyncio.timeout(WAIT_S):
            while await store.twin_history_devices() != [("default", "kept")]:
                await asyncio.sleep(0.01)  # polling the store, with a deadline
        assert pruner.statistics()["pruned_rows"] == 1
        assert len(await store.list_twin_history("default", "kept")) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
