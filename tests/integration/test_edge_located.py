"""Repos located on a node, on the node's side: created when the Repo arrives, every finished
commit reported upstream in order through a real outbox, nothing reported twice after a
restart, and commits made while the reporter was stopped reported when it runs again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edgeweave.edge.outbox import Outbox
from edgeweave.edge.pipelines.located import LocatedRepos
from edgeweave.pipelines.commitreport import COMMIT_TOPIC, decode_commit_report
from edgeweave.pipelines.repo import Repos, open_repos

WAIT_S = 10.0


async def put(repos: Repos, path: str, data: bytes) -> str:
    info = await repos.start_commit("frames", "master")
    await repos.put_file(info.id, path, data)
    return (await repos.finish_commit(info.id)).id


async def reported(outbox: Outbox, count: int) -> list[Any]:
    """The first ``count`` reports in the outbox, waiting for them."""

    async def wait() -> list[Any]:
        while True:
            entries = await outbox.wait_peek(0, max_entries=100, max_bytes=1 << 20)
            if len(entries) >= count:
                return entries
            await outbox.wait_peek(entries[-1].seq, max_entries=1, max_bytes=1 << 20)

    return await asyncio.wait_for(wait(), WAIT_S)


async def test_every_commit_of_a_located_repo_is_reported_once_in_order(tmp_path: Path) -> None:
    root = tmp_path / "pipelines"
    root.mkdir()
    outbox = await Outbox.open(tmp_path / "outbox.db")
    try:
        async with open_repos(root, fsync=False) as repos:
            located = LocatedRepos(repos, outbox, root)
            await located.update({"frames"})
            assert "frames" in await repos.list_repos()  # created when the Repo arrived
            first = await put(repos, "/f1.jpg", b"one")
            second = await put(repos, "/f2.jpg", b"two")
            task = asyncio.create_task(located.run(), name="located")
            try:
                entries = await reported(outbox, 2)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            reports = [decode_commit_report(e.payload) for e in entries]
            assert {e.topic for e in entries} == {COMMIT_TOPIC}
            assert [r.manifest.info.id for r in reports] == [first, second]  # oldest first
            assert [p for p, _, _ in reports[1].manifest.files] == ["/f1.jpg", "/f2.jpg"]

            third = await put(repos, "/f3.jpg", b"three")  # made while nothing reported
            again = LocatedRepos(repos, outbox, root)  # the agent restarted
            await again.update({"frames"})
            task = asyncio.create_task(again.run(), name="located-again")
            try:
                entries = await reported(outbox, 3)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            ids = [decode_commit_report(e.payload).manifest.info.id for e in entries]
            assert ids == [first, second, third]
    finally:
        await outbox.aclose()
