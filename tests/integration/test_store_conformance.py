"""One conformance suite for every state-store backend (SQLite file, PostgreSQL schema).

Each test runs against both backends through the ``backend`` fixture; PostgreSQL tests use a
fresh schema that is dropped afterwards. Waits are conditions under ``asyncio.wait_for``,
never sleeps.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgeweave.cloud.store.base import (
    CloudStore,
    JSONObject,
    Store,
    TwinSample,
    Watch,
    WatchEvent,
    WatchFilter,
)
from edgeweave.errors import AlreadyExists, BadRequest, Conflict, Gone, NotFound
from edgeweave.models.selectors import LabelSelector

TIMEOUT_S = 10.0


@dataclass
class Backend:
    name: str
    opener: Callable[..., Awaitable[Any]]
    opened: list[Store] = field(default_factory=list)

    async def open(self, **kwargs: Any) -> Store:
        store: Store = await self.opener(**kwargs)
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        from edgeweave.cloud.store.sqlite import open_sqlite_store

        path = tmp_path / "store.db"
        b = Backend("sqlite", lambda **kw: open_sqlite_store(path, **kw))
        yield b
        for store in b.opened:
            await store.aclose()
        return
    url: str = request.getfixturevalue("postgres_url")
    from edgeweave.cloud.store.postgres import drop_postgres_schema, open_postgres_store

    schema = f"ew_test_{uuid.uuid4().hex[:12]}"
    b = Backend("postgres", lambda **kw: open_postgres_store(url, schema=schema, **kw))
    try:
        yield b
    finally:
        for store in b.opened:
            await store.aclose()
        await drop_postgres_schema(url, schema)


@pytest.fixture
async def store(backend: Backend) -> Store:
    return await backend.open()


def obj(
    name: str,
    *,
    kind: str = "App",
    namespace: str | None = "default",
    labels: dict[str, str] | None = None,
    spec: Any = None,
) -> JSONObject:
    meta: JSONObject = {"name": name, "labels": labels or {}}
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": kind,
        "metadata": meta,
        "spec": spec if spec is not None else {"n": 0},
    }


def rv_of(o: JSONObject) -> int:
    return int(o["metadata"]["resourceVersion"])


async def take(watch: Watch, count: int, timeout_s: float = TIMEOUT_S) -> list[WatchEvent]:
    async def collect() -> list[WatchEvent]:
        events: list[WatchEvent] = []
        async for event in watch:
            events.append(event)
            if len(events) == count:
                break
        return events

    return await asyncio.wait_for(collect(), timeout_s)


def names(items: list[JSONObject]) -> list[str]:
    return [o["metadata"]["name"] for o in items]


# ---- create / get / update / delete -------------------------------------------------------


async def test_create_sets_server_metadata_and_get_returns_the_stored_object(store: Store) -> None:
    sent = obj("web", labels={"app": "web"})
    created = await store.create(sent)
    meta = created["metadata"]
    assert uuid.UUID(meta["uid"]).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["generation"] == 1
    assert isinstance(meta["resourceVersion"], str)
    assert rv_of(created) == await store.current_resource_version()
    assert "uid" not in sent["metadata"], "the caller's dict is left alone"
    assert await store.get("App", "default", "web") == created


async def test_a_cluster_scoped_object_has_the_empty_namespace(store: Store) -> None:
    created = await store.create(obj("node-a", kind="Node", namespace=None))
    assert await store.get("Node", "", "node-a") == created
    assert names((await store.list("Node")).items) == ["node-a"]
    assert names((await store.list("Node", "")).items) == ["node-a"]


async def test_creating_an_existing_object_raises_already_exists(store: Store) -> None:
    await store.create(obj("web"))
    with pytest.raises(AlreadyExists):
        await store.create(obj("web"))
    await store.create(obj("web", namespace="other"))
    await store.create(obj("web", kind="Service"))


async def test_missing_objects_raise_not_found_on_get_update_and_delete(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get("App", "default", "nope")
    with pytest.raises(NotFound):
        await store.update(obj("nope"))
    with pytest.raises(NotFound):
        await store.delete("App", "default", "nope")


async def test_update_keeps_identity_and_bumps_generation_only_when_spec_changes(
    store: Store,
) -> None:
    created = await store.create(obj("web", spec={"n": 1}))
    relabelled = copy.deepcopy(created)
    relabelled["metadata"]["labels"] = {"tier": "front"}
    relabelled["status"] = {"phase": "Running"}
    same_spec = await store.update(relabelled)
    assert same_spec["metadata"]["generation"] == 1
    assert same_spec["metadata"]["labels"] == {"tier": "front"}
    assert same_spec["status"] == {"phase": "Running"}
    assert rv_of(same_spec) > rv_of(created)

    changed = copy.deepcopy(same_spec)
    changed["spec"] = {"n": 2}
    changed["metadata"]["uid"] = "forged"
    changed["metadata"]["creationTimestamp"] = "1999-01-01T00:00:00Z"
    updated = await store.update(changed)
    assert updated["metadata"]["generation"] == 2
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert await store.get("App", "default", "web") == updated


async def test_resource_version_strictly_increases_across_kinds_and_namespaces(
    store: Store,
) -> None:
    start = await store.current_resource_version()
    seen = [
        rv_of(await store.create(obj("a"))),
        rv_of(await store.create(obj("a", kind="Service"))),
        rv_of(await store.create(obj("a", namespace="other"))),
        rv_of(await store.update(obj("a"))),
        rv_of(await store.delete("Service", "default", "a")),
        rv_of(await store.create(obj("n", kind="Node", namespace=None))),
    ]
    assert seen == sorted(set(seen))
    assert seen[0] > start
    assert await store.current_resource_version() == seen[-1]


async def test_update_with_a_stale_resource_version_raises_conflict(store: Store) -> None:
    created = await store.create(obj("web"))
    await store.update(created)
    with pytest.raises(Conflict):
        await store.update(created)


async def test_update_without_a_resource_version_is_unconditional(store: Store) -> None:
    await store.create(obj("web"))
    updated = await store.update(obj("web", spec={"n": 5}))
    assert updated["spec"] == {"n": 5}


async def test_delete_with_a_stale_resource_version_raises_conflict_and_keeps_the_object(
    store: Store,
) -> None:
    created = await store.create(obj("web"))
    updated = await store.update(created)
    with pytest.raises(Conflict):
        await store.delete("App", "default", "web", resource_version=rv_of(created))
    assert await store.get("App", "default", "web") == updated
    deleted = await store.delete("App", "default", "web", resource_version=rv_of(updated))
    assert rv_of(deleted) > rv_of(updated)
    assert deleted["metadata"]["uid"] == created["metadata"]["uid"]
    with pytest.raises(NotFound):
        await store.get("App", "default", "web")


# ---- list ---------------------------------------------------------------------------------


async def test_list_by_namespace_or_all_namespaces_is_ordered_by_namespace_then_name(
    store: Store,
) -> None:
    for ns, name in [("b", "x"), ("a", "z"), ("a", "y"), ("b", "a")]:
        await store.create(obj(name, namespace=ns))
    await store.create(obj("other-kind", kind="Service", namespace="a"))
    everything = await store.list("App")
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everything.items] == [
        ("a", "y"),
        ("a", "z"),
        ("b", "a"),
        ("b", "x"),
    ]
    assert names((await store.list("App", "b")).items) == ["a", "x"]
    assert (await store.list("App", "nope")).items == []


async def test_list_resource_version_is_the_store_version_the_items_agree_with(
    store: Store,
) -> None:
    empty = await store.list("App")
    assert empty.resource_version == await store.current_resource_version()
    await store.create(obj("a"))
    last = await store.create(obj("b", kind="Service"))
    listed = await store.list("App")
    assert listed.resource_version == rv_of(last)
    assert listed.continue_token is None


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("tier in (front,back)", ["a", "b"]),
        ("tier notin (front)", ["b", "c", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("app=web,tier=back", ["b"]),
    ],
)
async def test_list_filters_by_label_selector(
    store: Store, selector: str, expected: list[str]
) -> None:
    await store.create(obj("a", labels={"app": "web", "tier": "front"}))
    await store.create(obj("b", labels={"app": "web", "tier": "back"}))
    await store.create(obj("c", labels={"app": "db"}))
    await store.create(obj("d"))
    result = await store.list("App", "default", LabelSelector.parse(selector))
    assert names(result.items) == expected


async def test_paging_with_limit_and_continue_returns_every_object_exactly_once(
    store: Store,
) -> None:
    expected = []
    for i in range(23):
        ns = f"ns{i % 3}"
        await store.create(obj(f"o{i:02d}", namespace=ns))
        expected.append((ns, f"o{i:02d}"))
    pages: list[list[JSONObject]] = []
    token: str | None = None
    while True:
        page = await store.list("App", limit=5, continue_token=token)
        pages.append(page.items)
        token = page.continue_token
        if token is None:
            break
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    got = [(o["metadata"]["namespace"], o["metadata"]["name"]) for p in pages for o in p]
    assert got == sorted(expected)


async def test_paging_with_a_selector_returns_only_matching_objects(store: Store) -> None:
    for i in range(30):
        await store.create(obj(f"o{i:02d}", labels={"even": str(i % 2 == 0).lower()}))
    got: list[str] = []
    token: str | None = None
    selector = LabelSelector.parse("even=true")
    while True:
        page = await store.list("App", "default", selector, limit=4, continue_token=token)
        assert len(page.items) <= 4
        got += names(page.items)
        token = page.continue_token
        if token is None:
            break
    assert got == [f"o{i:02d}" for i in range(0, 30, 2)]


async def test_a_selector_page_read_in_several_chunks_is_complete_and_consistent(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeweave.cloud.store import _paging

    monkeypatch.setattr(_paging, "SELECTOR_CHUNK_ROWS", 3)
    for i in range(20):
        await store.create(obj(f"o{i:02d}", labels={"pick": "yes" if i % 7 == 6 else "no"}))
    selector = LabelSelector.parse("pick=yes")
    first = await store.list("App", "default", selector, limit=2)
    assert names(first.items) == ["o06", "o13"]
    assert first.resource_version == await store.current_resource_version()
    assert first.continue_token is not None
    rest = await store.list(
        "App", "default", selector, limit=2, continue_token=first.continue_token
    )
    assert names(rest.items) == []
    assert rest.continue_token is None


async def test_a_garbage_or_foreign_continue_token_raises_bad_request(store: Store) -> None:
    for i in range(3):
        await store.create(obj(f"o{i}"))
    token = (await store.list("App", limit=1)).continue_token
    assert token is not None
    for bad in ["garbage!", "e30", "bm90IGpzb24", token[:-3]]:
        with pytest.raises(BadRequest):
            await store.list("App", limit=1, continue_token=bad)
    with pytest.raises(BadRequest):
        await store.list("Service", limit=1, continue_token=token)


# ---- watch --------------------------------------------------------------------------------


async def test_watch_from_zero_replays_history_in_order_then_delivers_live_writes(
    store: Store,
) -> None:
    a = await store.create(obj("a"))
    a2 = await store.update(a)
    b = await store.create(obj("b", kind="Service"))
    async with store.open_watch(0) as watch:
        history = await take(watch, 3)
        assert [(e.type, e.resource_version) for e in history] == [
            ("ADDED", rv_of(a)),
            ("MODIFIED", rv_of(a2)),
            ("ADDED", rv_of(b)),
        ]
        assert history[1].object == a2
        live = await store.create(obj("c"))
        (event,) = await take(watch, 1)
        assert (event.type, event.object) == ("ADDED", live)


async def test_watch_resumed_from_a_middle_version_gives_exactly_the_later_events(
    store: Store,
) -> None:
    written = [await store.create(obj(f"o{i}")) for i in range(6)]
    middle = rv_of(written[2])
    async with store.open_watch(middle) as watch:
        events = await take(watch, 3)
        assert [e.resource_version for e in events] == [rv_of(o) for o in written[3:]]
        fence = await store.create(obj("fence"))
        (next_event,) = await take(watch, 1)
        assert next_event.resource_version == rv_of(fence)


@pytest.mark.parametrize(
    ("flt", "expected", "fence"),
    [
        (WatchFilter(kind="Service"), ["svc-a", "svc-b"], obj("f", kind="Service")),
        (WatchFilter(namespace="b"), ["app-b", "svc-b"], obj("f", namespace="b")),
        (
            WatchFilter(kind="App", selector=LabelSelector.parse("tier in (front)")),
            ["app-a"],
            obj("f", labels={"tier": "front"}),
        ),
        (WatchFilter(kind="App", name="app-b"), ["app-b"], obj("app-b", namespace="c")),
        (WatchFilter(kind="Node", namespace=""), ["node-1"], obj("f", kind="Node", namespace=None)),
        (
            WatchFilter(kinds=frozenset({"Service", "Node"})),
            ["svc-a", "svc-b", "node-1"],
            obj("f", kind="Service"),
        ),
        (
            WatchFilter(kind="App", kinds=frozenset({"App", "Node"}), namespace="b"),
            ["app-b"],
            obj("f", namespace="b"),
        ),
    ],
)
async def test_watch_filters_by_kind_namespace_selector_and_name(
    store: Store, flt: WatchFilter, expected: list[str], fence: JSONObject
) -> None:
    await store.create(obj("app-a", namespace="a", labels={"tier": "front"}))
    await store.create(obj("svc-a", kind="Service", namespace="a"))
    await store.create(obj("app-b", namespace="b", labels={"tier": "back"}))
    await store.create(obj("svc-b", kind="Service", namespace="b"))
    await store.create(obj("node-1", kind="Node", namespace=None))
    async with store.open_watch(0, flt) as watch:
        events = await take(watch, len(expected))
        assert [e.object["metadata"]["name"] for e in events] == expected
        fenced = await store.create(fence)
        (next_event,) = await take(watch, 1)
        assert next_event.object == fenced


async def test_delete_is_delivered_as_a_deleted_event_with_the_new_version(store: Store) -> None:
    created = await store.create(obj("web", labels={"app": "web"}))
    flt = WatchFilter(selector=LabelSelector.parse("app=web"))
    async with store.open_watch(rv_of(created), flt) as watch:
        deleted = await store.delete("App", "default", "web")
        (event,) = await take(watch, 1)
    assert event.type == "DELETED"
    assert event.resource_version == rv_of(deleted) > rv_of(created)
    assert event.object["metadata"]["uid"] == created["metadata"]["uid"]
    assert event.object["spec"] == created["spec"]


async def test_watching_from_before_compaction_raises_gone(store: Store) -> None:
    written = [await store.create(obj(f"o{i}")) for i in range(10)]
    oldest = await store.compact(3)
    assert oldest == rv_of(written[6])
    with pytest.raises(Gone, match=rf"resourceVersion 0 is too old \(oldest retained {oldest}\)"):
        async with store.open_watch(0):
            pass
    async with store.open_watch(oldest) as watch:
        events = await take(watch, 3)
    assert [e.resource_version for e in events] == [rv_of(o) for o in written[7:]]
    assert await store.compact(100) == oldest, "compaction never moves backwards"


async def test_a_watch_overtaken_by_compaction_raises_gone_instead_of_skipping(
    store: Store,
) -> None:
    for i in range(5):
        await store.create(obj(f"o{i}"))
    async with store.open_watch(0) as watch:
        await store.compact(1)
        with pytest.raises(Gone):
            await take(watch, 5)


async def test_automatic_retention_keeps_the_change_log_bounded(backend: Backend) -> None:
    store = await backend.open(changelog_retention=10)
    current = await store.create(obj("counter"))
    for _ in range(1000):
        current = await store.update(current)
    with pytest.raises(Gone):
        async with store.open_watch(0):
            pass
    async with store.open_watch(rv_of(current) - 10) as watch:
        events = await take(watch, 10)
    assert events[-1].resource_version == rv_of(current)


async def test_closing_the_store_ends_an_open_watch(backend: Backend) -> None:
    store = await backend.open()
    async with store.open_watch(0) as watch:
        await store.create(obj("a"))
        (first,) = await take(watch, 1)
        assert first.type == "ADDED"

        async def drain() -> list[WatchEvent]:
            return [event async for event in watch]

        rest = asyncio.create_task(drain(), name="drain-watch")
        await store.aclose()
        assert await asyncio.wait_for(rest, TIMEOUT_S) == []


async def test_next_event_says_idle_then_gives_the_event_that_comes(store: Store) -> None:
    async with store.open_watch(await store.current_resource_version()) as watch:
        assert await asyncio.wait_for(watch.next_event(0.05), TIMEOUT_S) is None
        created = await store.create(obj("a"))  # nothing was lost by the idle answer
        event = await asyncio.wait_for(watch.next_event(TIMEOUT_S), TIMEOUT_S)
        assert event is not None and (event.type, event.object) == ("ADDED", created)


async def test_next_event_ends_with_the_store(backend: Backend) -> None:
    store = await backend.open()
    async with store.open_watch(0) as watch:
        waiting = asyncio.create_task(watch.next_event(TIMEOUT_S * 10))
        await asyncio.sleep(0)  # one loop turn: it is parked on the store's notifier
        await store.aclose()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, TIMEOUT_S)


async def test_leaving_a_watch_while_it_waits_stops_it(store: Store) -> None:
    async with store.open_watch(await store.current_resource_version()) as watch:
        with pytest.raises(TimeoutError):
            await take(watch, 1, timeout_s=0.05)
    await store.create(obj("after"))


# ---- twin history (the samples of device.twin reports) ----------------------------------------


def samples(prop: str, times_ms: list[int], device: str = "thermostat-1") -> list[TwinSample]:
    return [("default", device, prop, t, f"{prop}@{t}") for t in times_ms]


def values(items: list[JSONObject]) -> list[str]:
    return [i["value"] for i in items]


async def test_twin_history_is_written_with_the_upstream_commit_and_read_oldest_first(
    store: CloudStore,
) -> None:
    now = int(time.time() * 1000)
    batch = samples("temp", [now - 3000, now - 2000]) + samples("mode", [now - 2500])
    assert await store.commit_upstream("n1", 1, [], [], batch) == 1
    assert await store.commit_upstream("n1", 1, [], [], batch) == 1  # a replay writes nothing
    await store.commit_upstream("n1", 2, [], [], samples("temp", [now - 1000]))
    got = await store.list_twin_history("default", "thermostat-1", "temp")
    assert got == [
        {"property": "temp", "value": f"temp@{now - 3000}", "timestamp": now - 3000},
        {"property": "temp", "value": f"temp@{now - 2000}", "timestamp": now - 2000},
        {"property": "temp", "value": f"temp@{now - 1000}", "timestamp": now - 1000},
    ]
    every = await store.list_twin_history("default", "thermostat-1")
    assert [i["property"] for i in every] == ["temp", "mode", "temp", "temp"]
    newest = await store.list_twin_history("default", "thermostat-1", "temp", limit=2)
    assert values(newest) == [f"temp@{now - 2000}", f"temp@{now - 1000}"]
    since = await store.list_twin_history("default", "thermostat-1", "temp", since_ms=now - 2000)
    assert values(since) == [f"temp@{now - 2000}", f"temp@{now - 1000}"]
    assert await store.list_twin_history("default", "other", "temp") == []
    assert await store.list_twin_history("default", "thermostat-1", "temp", limit=0) == []


async def test_twin_history_keeps_the_newest_points_per_device_property(
    backend: Backend,
) -> None:
    store: CloudStore = await backend.open(twin_history_points=5)
    now = int(time.time() * 1000)
    await store.commit_upstream("n1", 1, [], [], samples("other", [now]))
    for seq in range(1, 4):
        times = [now - 100_000 + seq * 1000 + i for i in range(4)]
        await store.commit_upstream("n1", seq + 1, [], [], samples("temp", times))
    kept = await store.list_twin_history("default", "thermostat-1", "temp")
    assert [i["timestamp"] for i in kept] == [
        now - 100_000 + 2003,
        *(now - 100_000 + 3000 + i for i in range(4)),
    ]
    # out-of-order arrivals: the oldest by time go first; equal times keep the later insert
    await store.commit_upstream("n1", 9, [], [], samples("temp", [now - 200_000, now, now]))
    kept = await store.list_twin_history("default", "thermostat-1", "temp", limit=100)
    assert [i["timestamp"] for i in kept] == [now - 100_000 + 3000 + i for i in (1, 2, 3)] + [
        now,
        now,
    ]
    assert len(await store.list_twin_history("default", "thermostat-1", "other")) == 1
    # another device with the same property name has its own budget
    await store.commit_upstream("n1", 10, [], [], samples("temp", [now - 5, now - 4], "t-2"))
    assert len(await store.list_twin_history("default", "t-2", "temp")) == 2
    assert len(await store.list_twin_history("default", "thermostat-1", "temp")) == 5


async def test_twin_history_drops_values_older_than_the_maximum_age(backend: Backend) -> None:
    store: CloudStore = await backend.open(twin_history_max_age_s=3600)
    now = int(time.time() * 1000)
    hour = 3_600_000
    await store.commit_upstream("n1", 1, [], [], samples("temp", [now - 2 * hour, now - 60_000]))
    kept = await store.list_twin_history("default", "thermostat-1", "temp")
    assert [i["timestamp"] for i in kept] == [now - 60_000]
    # what ages out later goes at the next insert for that property, counted right
    store.twin_history_max_age_s = 30  # type: ignore[attr-defined]
    await store.commit_upstream("n1", 2, [], [], samples("temp", [now]))
    kept = await store.list_twin_history("default", "thermostat-1", "temp")
    assert [i["timestamp"] for i in kept] == [now]
    store.twin_history_points = 2  # type: ignore[attr-defined]
    store.twin_history_max_age_s = 3600  # type: ignore[attr-defined]
    await store.commit_upstream("n1", 3, [], [], samples("temp", [now + 1, now + 2]))
    kept = await store.list_twin_history("default", "thermostat-1", "temp")
    assert [i["timestamp"] for i in kept] == [now + 1, now + 2]


async def test_deleting_a_devices_history_leaves_the_others_and_resets_its_budget(
    backend: Backend,
) -> None:
    store: CloudStore = await backend.open(twin_history_points=3)
    now = int(time.time() * 1000)
    await store.commit_upstream("n1", 1, [], [], samples("temp", [now - 3, now - 2, now - 1]))
    await store.commit_upstream("n1", 2, [], [], samples("temp", [now - 5], "t-2"))
    devices = [("default", "t-2"), ("default", "thermostat-1")]
    assert await store.twin_history_devices() == devices
    assert await store.delete_twin_history("default", "thermostat-1") == 3
    assert await store.twin_history_devices() == [("default", "t-2")]
    assert await store.list_twin_history("default", "thermostat-1") == []
    assert len(await store.list_twin_history("default", "t-2")) == 1
    assert await store.delete_twin_history("default", "thermostat-1") == 0
    # a device created again with the same name starts with an empty budget
    await store.commit_upstream("n1", 3, [], [], samples("temp", [now, now + 1, now + 2]))
    kept = await store.list_twin_history("default", "thermostat-1", "temp")
    assert [i["timestamp"] for i in kept] == [now, now + 1, now + 2]


async def test_adoptions_are_kept_with_the_commit_and_claimed_once_until_the_lease_ends(
    backend: Backend,
) -> None:
    store: CloudStore = await backend.open()
    first = ("n1", "default", "d1", '[{"property": "p", "value": "1"}]')
    second = ("n1", "default", "d2", "[]")
    await store.commit_upstream("n1", 1, [], [], adoptions=[first, second])
    await store.commit_upstream("n1", 1, [], [], adoptions=[("n1", "x", "replayed", "[]")])
    other: CloudStore = await backend.open()  # another replica on the same database
    claimed = await store.claim_adoptions("replica-a", 60.0, 10)
    assert [c[1:] for c in claimed] == [first, second]  # oldest first; the replay kept none
    assert await other.claim_adoptions("replica-b", 60.0, 10) == []  # held by replica-a
    event = (
        "n1",
        1_700_000_000.0,
        "Device",
        "default",
        "d1",
        "Normal",
        "TwinDesiredSetOnEdge",
        "m",
    )
    assert await store.finish_adoption(claimed[0][0], [event])
    # done twice (another replica after the lease): no error, and its events are not written
    assert not await other.finish_adoption(claimed[0][0], [event])
    assert await store.finish_adoption(claimed[1][0])
    (recorded,) = await store.list_events("Device", "default", "d1")
    assert recorded["reason"] == "TwinDesiredSetOnEdge" and recorded["node"] == "n1"
    # a holder that died: once its lease ran out another replica takes the adoption
    third = ("n1", "default", "d3", "[]")
    await store.commit_upstream("n1", 2, [], [], adoptions=[third])
    (held,) = await store.claim_adoptions("replica-a", -1.0, 10)  # a lease already over
    (taken,) = await other.claim_adoptions("replica-b", 60.0, 10)
    assert held == taken and taken[1:] == third
    await other.finish_adoption(taken[0])
    assert await store.claim_adoptions("replica-a", 60.0, 10) == []


async def test_replicas_claiming_at_once_never_share_an_adoption(backend: Backend) -> None:
    stores: list[CloudStore] = [await backend.open() for _ in range(3)]
    await stores[0].commit_upstream(
        "n1", 1, [], [], adoptions=[("n1", "default", f"d{i}", "[]") for i in range(30)]
    )
    rounds = await asyncio.gather(
        *(s.claim_adoptions(f"replica-{i}", 60.0, 4) for i in range(8) for s in stores)
    )
    ids = [c[0] for batch in rounds for c in batch]
    assert len(ids) == len(set(ids)) == 30


# ---- concurrency --------------------------------------------------------------------------


async def test_concurrent_compare_and_set_increments_lose_no_update(store: Store) -> None:
    await store.create(obj("counter", spec={"n": 0}))

    async def increment(times: int) -> int:
        conflicts = 0
        for _ in range(times):
            while True:
                current = await store.get("App", "default", "counter")
                current["spec"]["n"] += 1
                try:
                    await store.update(current)
                    break
                except Conflict:
                    conflicts += 1
        return conflicts

    await asyncio.wait_for(asyncio.gather(*(increment(50) for _ in range(8))), 60)
    final = await store.get("App", "default", "counter")
    assert final["spec"]["n"] == 400
    assert final["metadata"]["generation"] == 401


async def test_failed_writes_take_no_resource_version_and_log_nothing(store: Store) -> None:
    start = await store.current_resource_version()
    web = await store.create(obj("web"))
    stale = copy.deepcopy(web)
    web = await store.update(web)
    with pytest.raises(AlreadyExists):
        await store.create(obj("web"))
    with pytest.raises(Conflict):
        await store.update(stale)
    with pytest.raises(Conflict):
        await store.delete("App", "default", "web", resource_version=rv_of(stale))
    with pytest.raises(NotFound):
        await store.update(obj("nope"))
    with pytest.raises(NotFound):
        await store.delete("App", "default", "nope")
    gone_obj = await store.delete("App", "default", "web", resource_version=rv_of(web))
    assert rv_of(gone_obj) == start + 3 == await store.current_resource_version()
    async with store.open_watch(start) as watch:
        events = await take(watch, 3)
    assert [(e.type, e.resource_version) for e in events] == [
        ("ADDED", start + 1),
        ("MODIFIED", start + 2),
        ("DELETED", start + 3),
    ]
    assert events[1].object == web


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("optimistic_writes", [1, 3, 0], ids=["default", "retrying", "locked"])
async def test_replicas_racing_on_one_object_lose_no_write_and_log_each_once(
    backend: Backend, optimistic_writes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeweave.cloud.store import postgres

    monkeypatch.setattr(postgres, "OPTIMISTIC_WRITES", optimistic_writes)
    replicas = [await backend.open() for _ in range(2)]
    created = await replicas[0].create(obj("hot", spec={"by": None}))

    async def hammer(store: Store, writer: int) -> list[JSONObject]:
        written = []
        for i in range(25):  # unconditional: must never conflict
            written.append(await store.update(obj("hot", spec={"by": f"{writer}-{i}"})))
        return written

    async with replicas[1].open_watch(rv_of(created)) as watch:
        seen = asyncio.create_task(take(watch, 150, timeout_s=30), name="take-events")
        results = await asyncio.wait_for(
            asyncio.gather(*(hammer(replicas[w % 2], w) for w in range(6))), 60
        )
        events = await seen
    written = sorted((o for batch in results for o in batch), key=rv_of)
    assert [rv_of(o) for o in written] == list(range(rv_of(created) + 1, rv_of(created) + 151))
    assert [e.object for e in events] == written  # each write once, in version order
    final = await replicas[0].get("App", "default", "hot")
    assert final == written[-1]
    assert final["metadata"]["generation"] == 151
    assert final["metadata"]["uid"] == created["metadata"]["uid"]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_replicas_racing_to_create_one_name_make_it_once_without_version_gaps(
    backend: Backend,
) -> None:
    replicas = [await backend.open() for _ in range(2)]
    start = await replicas[0].current_resource_version()

    async def try_create(store: Store, name: str) -> JSONObject | None:
        try:
            return await store.create(obj(name))
        except AlreadyExists:
            return None

    attempts = [try_create(replicas[i % 2], f"app-{i // 4}") for i in range(40)]
    made = [o for o in await asyncio.gather(*attempts) if o is not None]
    assert sorted(names(made)) == sorted(f"app-{n}" for n in range(10))
    assert sorted(rv_of(o) for o in made) == list(range(start + 1, start + 11))
    assert await replicas[1].current_resource_version() == start + 10


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_replicas_writing_concurrently_are_seen_by_a_third_once_each_in_order(
    backend: Backend,
) -> None:
    writer_a, writer_b, watcher = [await backend.open() for _ in range(3)]
    start = await watcher.current_resource_version()

    async def write(store: Store, prefix: str) -> list[int]:
        versions = []
        for i in range(60):
            created = await store.create(obj(f"{prefix}-{i}"))
            updated = await store.update(created)
            versions += [rv_of(created), rv_of(updated)]
        return versions

    async with watcher.open_watch(start) as watch:
        seen = asyncio.create_task(take(watch, 240, timeout_s=30), name="take-events")
        written_a, written_b = await asyncio.gather(write(writer_a, "a"), write(writer_b, "b"))
        events = await seen
    versions = [e.resource_version for e in events]
    assert versions == sorted(written_a + written_b)
    assert versions == list(range(start + 1, start + 241))


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_watch_keeps_delivering_after_its_listener_connection_is_killed(
    backend: Backend, postgres_url: str
) -> None:
    import psycopg

    from edgeweave.cloud.store.postgres import PostgresStore

    watcher, writer = await backend.open(), await backend.open()
    assert isinstance(watcher, PostgresStore)
    async with watcher.open_watch(await watcher.current_resource_version()) as watch:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
            # only this test's listeners: other runs may share the database
            cur = await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query = %s AND pid <> pg_backend_pid()",
                (f'LISTEN "edgeweave_{watcher.schema}"',),
            )
            assert any(row[0] for row in await cur.fetchall())
        written = await writer.create(obj("after-kill"))
        (event,) = await take(watch, 1)
        assert event.object == written
