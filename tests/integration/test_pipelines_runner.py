"""The datum runner on real processes: cancellation kills the whole process group, a
background process the code leaves behind dies with the datum, inputs are shared per job."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from pipeline_rig import group_members

from edgeweave.models.pipelines import Input, Transform
from edgeweave.pipelines.datums import Datum, enumerate_datums
from edgeweave.pipelines.plan import DatumState
from edgeweave.pipelines.repo import Repos, open_repos
from edgeweave.pipelines.runner import DatumContext, DatumRunner
from edgeweave.pipelines.spec import RunSettings

SETTINGS = RunSettings(
    datum_tries=1, datum_timeout_s=None, job_timeout_s=None, every_job=False, parallelism=1
)


async def one_datum_repo(repos: Repos, files: dict[str, bytes]) -> tuple[list[Datum], str]:
    await repos.create_repo("images")
    c = await repos.start_commit("images")
    await repos.put_files(c.id, files.items())
    await repos.finish_commit(c.id)
    tree = await repos.tree(c.id)
    spec = Input.model_validate({"pfs": {"repo": "images", "glob": "/*"}})
    return enumerate_datums(spec, {("images", "master"): tree}, "v1"), c.id


def context(commit: str) -> DatumContext:
    return DatumContext("job1", "0" * 32, {"images": commit})


async def test_cancelling_a_datum_kills_its_process_group(tmp_path: Path) -> None:
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    async with open_repos(tmp_path / "data", fsync=False) as repos:
        datums, commit = await one_datum_repo(repos, {"/a": b"A"})
        runner = DatumRunner(tmp_path / "work", repos)
        transform = Transform(
            cmd=["sh", "-c", 'sleep 60 & echo started > "$FIFO"; wait'], env={"FIFO": str(fifo)}
        )
        task = asyncio.create_task(runner.run(datums[0], transform, SETTINGS, context(commit)))
        assert await asyncio.to_thread(fifo.read_text) == "started\n"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the conftest fails this test if the shell or its sleep survived


async def test_a_background_process_ends_with_its_datum(tmp_path: Path) -> None:
    async with open_repos(tmp_path / "data", fsync=False) as repos:
        datums, commit = await one_datum_repo(repos, {"/a": b"A"})
        runner = DatumRunner(tmp_path / "work", repos)
        transform = Transform(cmd=["sh", "-c", "(sleep 60 &) ; echo $$ > /pfs/out/pid"])
        result = await runner.run(datums[0], transform, SETTINGS, context(commit))
        assert result.state == DatumState.SUCCESS
        assert [o.path for o in result.outputs] == ["/pid"]
        group = int(result.outputs[0].local.read_text())
        async with asyncio.timeout(5):  # SIGKILL to the group was sent; its delivery is async
            while group_members(group):
                await asyncio.sleep(0.01)  # polling /proc, bounded by the timeout


async def test_inputs_shared_by_datums_are_materialised_once_per_job(tmp_path: Path) -> None:
    async with open_repos(tmp_path / "data", fsync=False) as repos:
        datums, commit = await one_datum_repo(repos, {"/a": b"same", "/b": b"same"})
        runner = DatumRunner(tmp_path / "work", repos)
        transform = Transform(cmd=["sh", "-c", 'cp "$images" /pfs/out/'])
        results = [await runner.run(d, transform, SETTINGS, context(commit)) for d in datums]
        objects = list((tmp_path / "work" / "job1" / ".objects").iterdir())
        assert len(objects) == 1 and objects[0].stat().st_nlink == 3  # cache + two datums
        assert not os.access(objects[0], os.W_OK) or os.geteuid() == 0
        assert [r.outputs[0].local.read_bytes() for r in results] == [b"same", b"same"]
        await runner.cleanup_job("job1")
        assert [p.suffix for p in (tmp_path / "work" / "job1").iterdir()] == [".log", ".log"]
