"""Workflow runs on the cloud's side against each state store (SQLite, PostgreSQL): a run's
status persisted step by step, runs left running by a stopped cloud marked interrupted, a
clean stop marking the running run, and schedules ticking (missed ticks fired once)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edgeweave.aio.tasks import Supervisor, open_supervisor
from edgeweave.cloud.pipelines.wfschedule import WorkflowSchedules
from edgeweave.cloud.pipelines.workflows import RUN, WORKFLOW, Workflows, update_status
from edgeweave.cloud.store.base import CloudStore, WatchFilter
from edgeweave.errors import InvalidObject
from edgeweave.models.registry import validate
from edgeweave.pipelines.dagspec import parse_workflow_file
from edgeweave.pipelines.dagstep import StepRunner
from edgeweave.pipelines.hosting import open_host_stores
from edgeweave.pipelines.jobstore import JobStore
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.runner import DatumRunner

CHAIN = """
workflow: {name: chain}
params: {word: hello}
steps:
  - {name: first, cmd: [sh, -c, 'printf "%s" "$1" > /pfs/out/w.txt', sh, "{{params.word}}"]}
  - {name: second, cmd: [sh, -c, 'tr a-z A-Z < /pfs/first/w.txt > /pfs/out/w.txt'],
     depends_on: [first]}
"""


@dataclass
class Host:
    store: CloudStore
    repos: Repos
    jobs: JobStore
    workflows: Workflows
    supervisor: Supervisor


@pytest.fixture
async def host(store: CloudStore, tmp_path: Path) -> AsyncIterator[Host]:
    async with open_host_stores(tmp_path / "host") as (repos, jobs):
        steps = StepRunner(repos, jobs, DatumRunner(tmp_path / "host" / "work", repos))
        async with open_supervisor("workflows") as sup:
            yield Host(store, repos, jobs, Workflows(store, steps, sup), sup)


async def create(store: CloudStore, text: str) -> dict[str, Any]:
    (wf,) = parse_workflow_file(text)
    return await store.create(validate(wf.model_dump(mode="json", exclude_unset=True)))


async def test_a_run_is_kept_in_the_store_with_every_step(host: Host) -> None:
    await create(host.store, CHAIN)
    with pytest.raises(InvalidObject) as info:
        await host.workflows.start_run("default", "chain", {"wrod": "x"})
    assert info.value.field == "params.wrod"
    run = await host.workflows.start_run("default", "chain", {"word": "abc"})
    name = run["metadata"]["name"]
    assert name.startswith("chain-") and run["spec"]["params"] == {"word": "abc"}
    done = await asyncio.wait_for(host.workflows.wait_run("default", name), 30)
    status = done["status"]
    assert status["state"] == "success" and status["finishedAt"] >= status["startedAt"]
    second = status["steps"]["second"]
    assert second["state"] == "success" and second["tries"] == 1
    assert second["startedAt"] >= status["steps"]["first"]["finishedAt"]
    assert await host.repos.get_file(second["outputCommit"], "/w.txt") == b"ABC"
    job = await host.jobs.job(second["jobs"][0])
    assert job.pipeline == "chain.second" and job.state == "success"
    assert job.task is not None and (job.task.run, job.task.step) == (name, "second")
    assert job.input_commits == {"first": status["steps"]["first"]["outputCommit"]}
    wf = await host.store.get(WORKFLOW, "default", "chain")
    assert wf["status"] == {"lastRun": name, "lastRunState": "success"}


async def test_runs_a_stopped_cloud_left_running_are_marked_interrupted(host: Host) -> None:
    await create(host.store, CHAIN)
    steps = {
        "first": {"state": "success", "tries": 1, "jobs": ["j"]},
        "second": {"state": "running", "tries": 1, "jobs": ["k"]},
    }
    await host.store.create(
        {
            "apiVersion": "edgeweave.io/v1",
            "kind": RUN,
            "metadata": {"name": "chain-old", "namespace": "default"},
            "spec": {"workflow": "chain"},
            "status": {"state": "running", "startedAt": time.time(), "steps": steps},
        }
    )
    assert await host.workflows.interrupt_stale_runs() == ["chain-old"]
    status = (await host.store.get(RUN, "default", "chain-old"))["status"]
    assert status["state"] == "interrupted" and "start a new run" in status["message"]
    assert status["steps"]["first"]["state"] == "success"
    assert status["steps"]["second"]["state"] == "killed"
    assert await host.workflows.interrupt_stale_runs() == []


async def test_a_clean_stop_marks_the_running_run_interrupted(
    store: CloudStore, tmp_path: Path
) -> None:
    await create(
        store,
        "workflow: {name: slow}\nsteps:\n  - {name: wait, cmd: [sleep, '60']}\n",
    )
    async with open_host_stores(tmp_path / "host") as (repos, jobs):
        steps = StepRunner(repos, jobs, DatumRunner(tmp_path / "host" / "work", repos))
        async with open_supervisor("workflows") as sup:
            run = await Workflows(store, steps, sup).start_run("default", "slow", {})
            name = run["metadata"]["name"]
            async with store.open_watch(0, WatchFilter(kind=RUN, name=name)) as watch:
                async for event in watch:  # until the step is running ...
                    if event.object["status"]["steps"]["wait"]["state"] == "running":
                        break
            async with asyncio.timeout(10):  # ... and its job started (it is recorded after)
                while not await jobs.list_jobs():
                    await asyncio.sleep(0.005)  # polling the job store, bounded above
        status = (await store.get(RUN, "default", name))["status"]
        assert status["state"] == "interrupted"
        assert status["steps"]["wait"]["state"] == "killed"
        (job,) = await jobs.list_jobs()
        assert job.state == "killed"


async def test_a_schedule_fires_a_missed_tick_once_then_ticks_on(host: Host) -> None:
    obj = await create(host.store, CHAIN.replace("params:", 'schedule: "@every 1s"\nparams:'))
    long_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    def change(status: dict[str, Any]) -> None:
        status["lastScheduledTime"] = long_ago

    await update_status(host.store, WORKFLOW, "default", obj["metadata"]["name"], change)
    since = await host.store.current_resource_version()
    schedules = WorkflowSchedules(host.store, host.workflows)
    host.supervisor.start(schedules.run, name="schedules")
    started: list[dict[str, Any]] = []
    async with asyncio.timeout(20), host.store.open_watch(since, WatchFilter(kind=RUN)) as w:
        async for event in w:
            if event.type == "ADDED":
                started.append(event.object)
                if len(started) == 2:
                    break
    assert [r["spec"]["trigger"] for r in started] == ["schedule", "schedule"]
    ticks = [
        datetime.strptime(r["metadata"]["name"].removeprefix("chain-")[:15], "%Y%m%d-%H%M%S")
        for r in started
    ]
    first, second = (t.replace(tzinfo=UTC) for t in ticks)
    assert abs(first - (datetime.fromisoformat(long_ago) + timedelta(seconds=1))) < timedelta(
        seconds=2
    )  # the first missed tick, fired once ...
    assert datetime.now(UTC) - second < timedelta(seconds=15)  # ... then counted from now
    for run in started:
        await asyncio.wait_for(host.workflows.wait_run("default", run["metadata"]["name"]), 30)
