"""Cron inputs on a host's scheduler with real repos, job store and processes: ticks commit
to ``<pipeline>_<name>``, each tick runs a job, ``overwrite`` keeps only the newest tick, a
cron input crossed with a pfs input, one catch-up tick after a host was away. Time is a
ManualClock the test advances (one test runs on the real clock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edgeweave.aio.clock import Clock, ManualClock, SystemClock
from edgeweave.aio.tasks import open_supervisor
from edgeweave.pipelines.crontick import CronTicker, parse_tick_name, tick_name
from edgeweave.pipelines.hosting import open_host_stores
from edgeweave.pipelines.jobs import JobRunner
from edgeweave.pipelines.jobstore import JobStore
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.runner import DatumRunner
from edgeweave.pipelines.scheduler import Scheduler
from edgeweave.pipelines.spec import PipelineDoc, parse_pipeline_specs

START = 1_700_000_000.0  # the ManualClock's wall time: 2023-11-14T22:13:20Z
T0 = datetime.fromtimestamp(START, UTC)
# each datum writes a file named after its tick (and image, when crossed) holding the inputs
RECORD = [
    "sh",
    "-c",
    'n=$(basename "$tick"); [ -n "$images" ] && n="$n-$(basename "$images")"; '
    'echo "$tick_COMMIT" > "$PFS/out/$n"',
]


@dataclass
class Host:
    repos: Repos
    store: JobStore
    scheduler: Scheduler
    jobs: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_jobs(self, n: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """Until ``n`` jobs have ended (their statuses seen)."""
        async with asyncio.timeout(timeout_s), self.changed:
            await self.changed.wait_for(lambda: len(self.jobs) >= n)
        return self.jobs[:n]


def cron_doc(name: str, input: dict[str, Any]) -> PipelineDoc:
    doc = {"pipeline": {"name": name}, "transform": {"cmd": RECORD}, "input": input}
    return parse_pipeline_specs(json.dumps(doc))[0]


def tick(spec: str = "@every 1s", overwrite: bool = False) -> dict[str, Any]:
    return {"cron": {"name": "tick", "spec": spec, "overwrite": overwrite}}


OpenHost = Callable[[Clock], AbstractAsyncContextManager[Host]]


@pytest.fixture
def open_host(tmp_path: Path) -> OpenHost:
    return lambda clock: _open_host(tmp_path / "host", clock)


@asynccontextmanager
async def _open_host(root: Path, clock: Clock) -> AsyncIterator[Host]:
    async with open_host_stores(root) as (repos, store), open_supervisor("test") as sup:
        host: Host | None = None

        async def on_status(namespace: str, name: str, status: dict[str, Any]) -> None:
            assert host is not None
            if "lastJob" in status:
                async with host.changed:
                    host.jobs.append(status["lastJob"])
                    host.changed.notify_all()

        runner = JobRunner(repos, DatumRunner(root / "work", repos))
        scheduler = Scheduler(
            repos, store, runner, sup, max_running_jobs=2, on_status=on_status, clock=clock
        )
        host = Host(repos, store, scheduler)
        yield host


async def files(repos: Repos, repo: str) -> list[str]:
    head = await repos.latest(repo)
    return [] if head is None else (await repos.tree(head.id)).paths


async def read(repos: Repos, repo: str, path: str) -> bytes:
    head = await repos.latest(repo)
    assert head is not None
    return await repos.get_file(head.id, path)


async def advance(clock: ManualClock, seconds: float) -> None:
    await clock.wait_sleepers(1)  # the ticker waits for its next tick
    clock.advance(seconds)


async def test_each_tick_commits_a_file_named_after_it_and_runs_a_job(
    open_host: OpenHost,
) -> None:
    clock = ManualClock(time=START)
    async with open_host(clock) as host:
        await host.scheduler.upsert("default", "clock", cron_doc("clock", tick()), 1, "")
        await advance(clock, 1)
        [first] = await host.wait_jobs(1)
        assert (first["state"], first["processed"], first["total"]) == ("success", 1, 1)
        await advance(clock, 1)
        second = (await host.wait_jobs(2))[1]
        assert (second["processed"], second["skipped"], second["total"]) == (1, 1, 2)
        names = [tick_name(T0 + timedelta(seconds=s)) for s in (1, 2)]
        assert names == ["2023-11-14T22:13:21Z", "2023-11-14T22:13:22Z"]
        assert await files(host.repos, "clock_tick") == [f"/{n}" for n in names]
        assert await read(host.repos, "clock_tick", f"/{names[0]}") == b""  # as Pachyderm
        assert await files(host.repos, "clock") == [f"/{n}" for n in names]  # accumulate


async def test_overwrite_keeps_only_the_newest_tick_and_its_output(
    open_host: OpenHost,
) -> None:
    clock = ManualClock(time=START)
    async with open_host(clock) as host:
        doc = cron_doc("fresh", tick(overwrite=True))
        await host.scheduler.upsert("default", "fresh", doc, 1, "")
        for n in (1, 2, 3):
            await advance(clock, 1)
            job = (await host.wait_jobs(n))[-1]
            assert (job["processed"], job["skipped"], job["total"]) == (1, 0, 1)
        newest = f"/{tick_name(T0 + timedelta(seconds=3))}"
        assert await files(host.repos, "fresh_tick") == [newest]
        assert await files(host.repos, "fresh") == [newest]  # the old datums' outputs went
        assert len(await host.repos.list_commits("fresh_tick")) == 3


async def test_a_cron_input_crossed_with_a_pfs_input_reruns_the_images_each_tick(
    open_host: OpenHost,
) -> None:
    clock = ManualClock(time=START)
    async with open_host(clock) as host:
        await host.repos.create_repo("images")
        commit = await host.repos.start_commit("images")
        for name in ("a.png", "b.png"):
            await host.repos.put_file(commit.id, f"/{name}", name.encode())
        await host.repos.finish_commit(commit.id)
        doc = cron_doc(
            "scan", {"cross": [tick(overwrite=True), {"pfs": {"repo": "images", "glob": "/*"}}]}
        )
        await host.scheduler.upsert("default", "scan", doc, 1, "")
        await host.scheduler.wait_idle(["scan"])  # no tick yet: a job of no datums
        assert [(j["state"], j["total"]) for j in host.jobs] == [("success", 0)]
        await advance(clock, 1)
        await host.wait_jobs(2)
        await advance(clock, 1)
        job = (await host.wait_jobs(3))[2]
        assert (job["processed"], job["total"]) == (2, 2)
        t2 = tick_name(T0 + timedelta(seconds=2))
        assert await files(host.repos, "scan") == [f"/{t2}-a.png", f"/{t2}-b.png"]
        head = await host.repos.latest("scan_tick")
        assert head is not None
        out = await read(host.repos, "scan", f"/{t2}-a.png")
        assert out.decode().strip() == head.id  # tick_COMMIT: the tick commit the job read


async def test_a_host_that_was_away_makes_one_tick_for_all_it_missed(
    open_host: OpenHost,
) -> None:
    clock = ManualClock(time=START)
    async with open_host(clock) as host:
        doc = cron_doc("away", tick())
        [cron] = doc.crons
        first = CronTicker(host.repos, "away", cron, clock, lambda repo: None)
        assert await first.prepare() is None
        await first.tick(T0)
        clock.advance(3600)  # an hour of ticks missed
        ticker = CronTicker(host.repos, "away", cron, clock, lambda repo: None)
        latest = await ticker.prepare()
        assert latest == T0
        run = asyncio.create_task(ticker.run(latest))
        try:
            await clock.wait_sleepers(1)  # made its one catch-up tick, waits for the next
            back = T0 + timedelta(hours=1)
            assert await files(host.repos, "away_tick") == [f"/{tick_name(t)}" for t in (T0, back)]
            clock.advance(1)  # the schedule goes on from the catch-up tick
            await clock.wait_sleepers(1)
            assert (await files(host.repos, "away_tick"))[-1] == (
                f"/{tick_name(back + timedelta(seconds=1))}"
            )
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)


async def test_a_cron_pipeline_ticks_on_the_real_clock(
    open_host: OpenHost,
) -> None:
    async with open_host(SystemClock()) as host:
        await host.scheduler.upsert("default", "live", cron_doc("live", tick()), 1, "")
        jobs = await host.wait_jobs(2, timeout_s=30)
        assert [j["state"] for j in jobs] == ["success", "success"]
        ticks = [parse_tick_name(p) for p in await files(host.repos, "live_tick")]
        assert len(ticks) >= 2 and all(t is not None for t in ticks)


def test_tick_names_are_rfc3339_utc_and_parse_back() -> None:
    t = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert tick_name(t) == "2024-05-01T12:00:00Z"
    half = t + timedelta(milliseconds=1500)
    assert tick_name(half) == "2024-05-01T12:00:01.5Z"
    assert parse_tick_name("/" + tick_name(half)) == half
    assert parse_tick_name("/notes.txt") is None
