"""The cloud's Merger on a real state store (SQLite and PostgreSQL) and real repo stores:
deliveries keyed by node or by a correlation key, completion per key, the merged view on
``master``, the timer completing a merge with no further delivery, retries changing nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgeweave.aio.clock import ManualClock
from edgeweave.cloud.pipelines.merger import Mergers
from edgeweave.cloud.pipelines.mergetimer import MergeTimer
from edgeweave.cloud.store.base import CloudStore
from edgeweave.pipelines.repo import Repos, open_repos

WAIT_S = 10.0


def merger(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Pipeline",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "transform": {"cmd": ["true"]},
            "input": {"pfs": {"repo": "counts", "glob": "/"}},
            "placement": {"nodeNames": ["node-a", "node-b"]},
            "pattern": {"merger": settings},
        },
    }


@pytest.fixture
async def rig(
    store: CloudStore, tmp_path: Path
) -> AsyncIterator[tuple[CloudStore, Repos, dict[str, Repos]]]:
    for node in ("node-a", "node-b"):
        meta = {"name": node, "labels": {}}
        await store.create({"apiVersion": "edgeweave.io/v1", "kind": "Node", "metadata": meta})
    async with (
        open_repos(tmp_path / "cloud", fsync=False) as cloud,
        open_repos(tmp_path / "a", fsync=False) as a,
        open_repos(tmp_path / "b", fsync=False) as b,
    ):
        for node in (a, b):
            await node.create_repo("counts")
        yield store, cloud, {"node-a": a, "node-b": b}


async def commit(repos: Repos, files: dict[str, bytes]) -> str:
    info = await repos.start_commit("counts", "master")
    for path, data in files.items():
        await repos.put_file(info.id, path, data)
    return (await repos.finish_commit(info.id)).id


async def deliver(
    mergers: Mergers, cloud: Repos, nodes: dict[str, Repos], node: str, name: str
) -> Any:
    """What a node's delivery does, minus HTTP: the chunks, then the commit."""
    source = nodes[node]
    head = await source.latest("counts")
    assert head is not None
    manifest = await source.manifest(head.id)
    for digest in manifest.chunk_digests():
        await cloud.receive_chunks([(digest, await source.read_chunk(digest))])
    return await mergers.deliver("default", name, node, manifest)


async def files(repos: Repos, repo: str, ref: str = "master") -> dict[str, bytes]:
    head = await repos.resolve(repo, ref)
    tree = await repos.tree(head.id)
    return {p: await repos.get_file(head.id, p) for p in tree.paths}


async def test_correlation_keys_merge_per_key_when_every_node_delivered_it(
    rig: tuple[CloudStore, Repos, dict[str, Repos]],
) -> None:
    store, cloud, nodes = rig
    await store.create(merger("shifts", {"key": {"path": "/(*)/**"}}))
    woken: list[str] = []
    mergers = Mergers(store, cloud, woken.append)
    await commit(nodes["node-a"], {"/s1/n.json": b"a1", "/s2/n.json": b"a2", "/x.txt": b"-"})
    first = await deliver(mergers, cloud, nodes, "node-a", "shifts")
    assert first["imported"] is True and first["complete"] is False
    assert "master" not in await cloud.branches("shifts")  # no key is complete yet
    assert first["merger"]["unkeyed"] == {"node-a": 1}

    await commit(nodes["node-b"], {"/s1/n.json": b"b1"})
    second = await deliver(mergers, cloud, nodes, "node-b", "shifts")
    keys = second["merger"]["keys"]
    assert keys["s1"]["complete"] is True and keys["s1"]["nodes"] == ["node-a", "node-b"]
    assert keys["s2"]["complete"] is False
    assert await files(cloud, "shifts") == {
        "/s1/node-a/s1/n.json": b"a1",
        "/s1/node-b/s1/n.json": b"b1",
    }
    merged = second["merger"]["merged"]
    assert woken.count("shifts") == 3  # two imports, one merged commit

    again = await deliver(mergers, cloud, nodes, "node-b", "shifts")  # a retried delivery
    assert again["imported"] is False
    assert (await cloud.latest("shifts", "master")).id == merged  # type: ignore[union-attr]
    assert woken.count("shifts") == 3

    await commit(nodes["node-b"], {"/s2/n.json": b"b2"})  # node-b adds its s2
    await deliver(mergers, cloud, nodes, "node-b", "shifts")
    obj = await store.get("Pipeline", "default", "shifts")
    assert obj["status"]["merger"]["complete"] is True
    assert (await files(cloud, "shifts"))["/s2/node-b/s2/n.json"] == b"b2"


async def test_a_timeout_completes_the_merge_by_the_timer_without_another_delivery(
    rig: tuple[CloudStore, Repos, dict[str, Repos]],
) -> None:
    store, cloud, nodes = rig
    await store.create(merger("hourly", {"complete": {"timeoutSeconds": 60}}))
    clock = ManualClock(time=5000.0)
    woken: list[str] = []
    checked = asyncio.Event()

    async def check(namespace: str, name: str) -> Any:
        state = await mergers.check(namespace, name)
        checked.set()
        return state

    timer = MergeTimer(clock)
    mergers = Mergers(store, cloud, woken.append, clock, on_merged=timer.merged)
    await commit(nodes["node-a"], {"/hour.json": b'{"people": 4}'})
    answer = await deliver(mergers, cloud, nodes, "node-a", "hourly")
    assert answer["complete"] is False
    assert timer.deadlines() == {("default", "hourly"): 5060.0}
    task = asyncio.create_task(timer.run(check), name="merge-timer")
    try:
        await clock.wait_sleepers(1)
        assert not checked.is_set()
        clock.advance(60)
        await asyncio.wait_for(checked.wait(), WAIT_S)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    merge = (await store.get("Pipeline", "default", "hourly"))["status"]["merger"]
    assert merge["complete"] is True
    assert merge["completedAt"] == 5060.0 and merge["sources"] == ["node-a", "node-b"]
    assert await files(cloud, "hourly") == {"/node-a/hour.json": b'{"people": 4}'}
    assert woken == ["hourly", "hourly"]  # the import, then the merged view
    assert timer.deadlines() == {}
