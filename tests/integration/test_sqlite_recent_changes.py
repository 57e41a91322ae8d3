"""A SQLite store serves caught-up watches from its in-memory log tail, and the table for the
rest: a watch from before the store was opened reads history, then live events from memory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edgeweave.cloud.store.sqlite import open_sqlite_store

WAIT_S = 5.0


def app(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"cmd": ["true"]},
    }


async def test_history_from_the_table_then_live_events_from_memory(tmp_path: Path) -> None:
    path = tmp_path / "cloud.db"
    first = await open_sqlite_store(path)
    try:
        before = [await first.create(app(f"a{i}")) for i in range(3)]
    finally:
        await first.aclose()
    store = await open_sqlite_store(path)  # reopened: the tail starts empty
    try:
        recent = store._recent
        assert recent is not None and recent.floor == int(before[-1]["metadata"]["resourceVersion"])
        async with store.open_watch(0) as watch:
            async with asyncio.timeout(WAIT_S):
                history = [await anext(watch) for _ in range(3)]
                assert [e.object["metadata"]["name"] for e in history] == ["a0", "a1", "a2"]
                served = recent.served
                live = await store.update(before[1])
                event = await anext(watch)
        assert (event.type, event.object) == ("MODIFIED", live)
        assert recent.served > served  # the live event came from memory
    finally:
        await store.aclose()
