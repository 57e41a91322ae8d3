"""The per-node sync tables (acks, upstream commits, events, used tokens) on every backend.

Same fixture pattern as test_store_conformance.py: SQLite file and a fresh PostgreSQL schema.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from edgeweave.cloud.store.base import CloudStore, EventRow, JSONObject, WatchFilter

TIMEOUT_S = 10.0


def app(name: str, status: dict[str, Any] | None = None) -> JSONObject:
    out: JSONObject = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"lifecycle": {"run": ["true"]}},
    }
    if status is not None:
        out["status"] = status
    return out


def event(name: str, reason: str, i: int = 0) -> EventRow:
    """One event row as node n1 reports it (the hub builds rows like this)."""
    return ("n1", 1_700_000_000.0 + i, "App", "default", name, "Normal", reason, f"message {i}")


async def test_acks_round_trip_per_node(store: CloudStore) -> None:
    a = await store.create(app("a"))
    b = await store.create(app("b"))
    rv_a, rv_b = int(a["metadata"]["resourceVersion"]), int(b["metadata"]["resourceVersion"])
    assert await store.acked_versions("n1") == {}
    await store.record_acks("n1", [("App", "default", "a", rv_a), ("App", "default", "b", rv_b)])
    await store.record_acks("n2", [("App", "default", "a", rv_a)])
    assert await store.acked_versions("n1") == {
        ("App", "default", "a"): rv_a,
        ("App", "default", "b"): rv_b,
    }
    assert await store.acked_versions("n2") == {("App", "default", "a"): rv_a}
    updated = await store.update(app("a"))
    new_rv = int(updated["metadata"]["resourceVersion"])
    await store.record_acks("n1", [("App", "default", "a", new_rv)])
    assert (await store.acked_versions("n1"))[("App", "default", "a")] == new_rv


async def test_a_delete_ack_removes_the_row(store: CloudStore) -> None:
    created = await store.create(app("gone"))
    rv = int(created["metadata"]["resourceVersion"])
    await store.record_acks("n1", [("App", "default", "gone", rv)])
    deleted = await store.delete("App", "default", "gone")
    await store.record_acks(
        "n1", [("App", "default", "gone", int(deleted["metadata"]["resourceVersion"]))]
    )
    assert await store.acked_versions("n1") == {}


async def test_replace_acks_makes_the_held_set_the_acked_set(store: CloudStore) -> None:
    await store.create(app("a"))
    await store.record_acks("n1", [("App", "default", "a", 1), ("App", "default", "x", 7)])
    await store.replace_acks("n1", [("App", "default", "held", 3)])
    assert await store.acked_versions("n1") == {("App", "default", "held"): 3}
    await store.replace_acks("n1", [])
    assert await store.acked_versions("n1") == {}


async def test_commit_is_idempotent_for_a_replayed_seq(store: CloudStore) -> None:
    await store.create(app("a"))
    assert await store.upstream_committed_seq("n1") == 0
    batch = [event("a", "Started", 1), event("a", "Ready", 2)]
    assert await store.commit_upstream("n1", 5, batch, []) == 5
    assert await store.commit_upstream("n1", 5, batch, []) == 5
    assert await store.commit_upstream("n1", 3, batch, []) == 5
    assert await store.upstream_committed_seq("n1") == 5
    assert await store.upstream_committed_seq("n2") == 0
    events = await store.list_events("App", "default", "a")
    assert [e["reason"] for e in events] == ["Started", "Ready"]
    first = events[0]
    assert first["node"] == "n1" and first["object"]["name"] == "a"
    assert first["time"] == 1_700_000_001.0 and first["message"] == "message 1"


async def test_status_merge_writes_the_object_and_a_modified_event(store: CloudStore) -> None:
    created = await store.create(app("a", status={"keep": 1, "phase": "Pending"}))
    since = int(created["metadata"]["resourceVersion"])
    async with store.open_watch(since, WatchFilter(kind="App")) as watch:
        writes = [
            ("App", "default", "a", {"phase": "Installing"}),
            ("App", "default", "a", {"phase": "Running", "pid": 42}),
            ("App", "default", "missing", {"phase": "Running"}),
        ]
        await store.commit_upstream("n1", 1, [], writes)

        async def first() -> Any:
            async for e in watch:
                return e

        got = await asyncio.wait_for(first(), TIMEOUT_S)
    assert got.type == "MODIFIED"
    assert got.object["status"] == {"keep": 1, "phase": "Running", "pid": 42}
    stored = await store.get("App", "default", "a")
    assert stored["status"] == got.object["status"]
    assert int(stored["metadata"]["resourceVersion"]) > since
    assert stored["metadata"]["generation"] == 1
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]


async def test_events_are_bounded_by_retention(store: CloudStore) -> None:
    store.events_retention = 10  # type: ignore[attr-defined]
    for seq in range(1, 4):
        batch = [event("a", f"r{seq}-{i}", i) for i in range(6)]
        await store.commit_upstream("n1", seq, batch, [])
    events = await store.list_events(limit=1000)
    assert len(events) == 10
    assert events[-1]["reason"] == "r3-5"
    assert [e["reason"] for e in await store.list_events(limit=2)] == ["r3-4", "r3-5"]
    assert await store.list_events(node="other") == []


async def test_join_token_ids_are_used_once(store: CloudStore) -> None:
    now = int(time.time())
    assert await store.mark_token_used("jti-1", now + 60, now) is True
    assert await store.mark_token_used("jti-1", now + 60, now) is False
    assert await store.mark_token_used("jti-2", now + 60, now) is True


async def test_commit_of_ten_thousand_events(store: CloudStore) -> None:
    # how fast is measured in bench/sync.py, not here (a timed test fails on a busy machine)
    await store.create(app("a"))
    batch = [event("a", "Tick", i) for i in range(10_000)]
    writes = [("App", "default", "a", {"n": i}) for i in range(100)]
    await store.commit_upstream("n1", 10_000, batch, writes)
    assert len(await store.list_events(limit=20_000)) == 10_000
    assert (await store.get("App", "default", "a"))["status"] == {"n": 99}


async def test_reset_forgets_a_nodes_acks_and_upstream_seq(store: CloudStore) -> None:
    a = await store.create(app("a"))
    await store.record_acks("n1", [("App", "default", "a", int(a["metadata"]["resourceVersion"]))])
    await store.commit_upstream("n1", 7, [event("a", "Started")], [])
    await store.record_acks("n2", [("App", "default", "a", 1)])
    await store.reset_node_sync("n1")
    assert await store.acked_versions("n1") == {}
    assert await store.upstream_committed_seq("n1") == 0
    assert await store.acked_versions("n2") == {("App", "default", "a"): 1}  # others untouched
    assert await store.commit_upstream("n1", 1, [event("a", "Again")], []) == 1  # starts over
