"""Jobs end to end on real repos and real processes: incremental runs, the /pfs contract,
output collisions, retries, err_cmd recovery, timeouts, join/cross/group inputs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeweave.pipelines.jobs import JobResult, JobRunner
from edgeweave.pipelines.plan import DatumState
from edgeweave.pipelines.repo import Repos, open_repos
from edgeweave.pipelines.runner import DatumRunner
from edgeweave.pipelines.spec import PipelineDoc, parse_pipeline_specs

COPY = ["sh", "-c", 'cp -r "$PFS"/images/* "$PFS"/out/']


@dataclass
class Engine:
    repos: Repos
    jobs: JobRunner
    work: Path


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with open_repos(tmp_path / "data", fsync=False) as repos:
        runner = DatumRunner(tmp_path / "work", repos)
        yield Engine(repos, JobRunner(repos, runner), tmp_path / "work")


def pipeline(name: str = "copy", **spec: Any) -> PipelineDoc:
    doc = {
        "pipeline": {"name": name},
        "transform": {"cmd": COPY},
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
    }
    doc.update(spec)
    return parse_pipeline_specs(json.dumps(doc))[0]


async def commit(
    repos: Repos, repo: str, files: dict[str, bytes], delete: tuple[str, ...] = ()
) -> str:
    if repo not in await repos.list_repos():
        await repos.create_repo(repo)
    c = await repos.start_commit(repo)
    for path in delete:
        await repos.delete_file(c.id, path)
    for path, data in files.items():
        await repos.put_file(c.id, path, data)
    return (await repos.finish_commit(c.id)).id


async def outputs(repos: Repos, job: JobResult) -> dict[str, bytes]:
    assert job.output_commit is not None
    tree = await repos.tree(job.output_commit)
    return {p: await repos.get_file(job.output_commit, p) for p in tree.paths}


def ran(job: JobResult) -> list[str]:
    return sorted(d.name for d in job.datums)


async def test_only_new_and_changed_datums_run_and_outputs_carry_over(engine: Engine) -> None:
    repos, jobs = engine.repos, engine.jobs
    await commit(repos, "images", {"/a.txt": b"A", "/b.txt": b"B", "/c.txt": b"C"})
    doc = pipeline()
    first = await jobs.run_job(doc)
    assert (first.state, first.processed, first.skipped) == ("success", 3, 0)
    assert await outputs(repos, first) == {"/a.txt": b"A", "/b.txt": b"B", "/c.txt": b"C"}
    out_info = await repos.inspect_commit(first.output_commit or "")
    assert out_info.origin == "auto" and out_info.repo == "copy"
    assert any(p.startswith("images@") for p in out_info.provenance)

    await commit(repos, "images", {"/d.txt": b"D"})
    added = await jobs.run_job(doc, first)
    assert (added.processed, added.skipped, added.incremental) == (1, 3, True)
    assert ran(added) == ["images:/d.txt"]
    assert (await outputs(repos, added))["/d.txt"] == b"D"
    assert len(await outputs(repos, added)) == 4

    await commit(repos, "images", {"/b.txt": b"B2"})
    modified = await jobs.run_job(doc, added)
    assert ran(modified) == ["images:/b.txt"] and modified.skipped == 3
    assert (await outputs(repos, modified))["/b.txt"] == b"B2"

    await commit(repos, "images", {}, delete=("/a.txt",))
    deleted = await jobs.run_job(doc, modified)
    assert deleted.processed == 0 and deleted.skipped == 3
    assert sorted(await outputs(repos, deleted)) == ["/b.txt", "/c.txt", "/d.txt"]

    nothing = await jobs.run_job(doc, deleted)
    assert (nothing.processed, nothing.skipped) == (0, 3)
    lineage = nothing.history.owners
    assert lineage["/c.txt"] in nothing.history.datums


async def test_a_new_transform_reruns_every_datum(engine: Engine) -> None:
    await commit(engine.repos, "images", {"/a.txt": b"A", "/b.txt": b"B"})
    first = await engine.jobs.run_job(pipeline())
    salted = pipeline(salt="v2")
    again = await engine.jobs.run_job(salted, first)
    assert (again.processed, again.skipped) == (2, 0)
    every = pipeline(reprocess_spec="every_job")
    assert (await engine.jobs.run_job(every, again)).processed == 2


async def test_user_code_sees_the_pfs_contract_and_pachyderm_variables(engine: Engine) -> None:
    await commit(engine.repos, "images", {"/dir/x.png": b"X"})
    script = (
        "for v in PACH_JOB_ID PACH_DATUM_ID PACH_OUTPUT_COMMIT_ID images_COMMIT images; do "
        'eval "echo $v=\\$$v"; done > /pfs/out/env.txt; ls /pfs/images/dir > /pfs/out/ls.txt'
    )
    doc = pipeline(transform={"cmd": ["sh"], "stdin": [script], "env": {"MODE": "test"}})
    job = await engine.jobs.run_job(doc)
    assert job.state == "success", job.error
    files = await outputs(engine.repos, job)
    assert files["/ls.txt"] == b"x.png\n"
    env = dict(line.split("=", 1) for line in files["/env.txt"].decode().splitlines())
    assert env["PACH_JOB_ID"] == job.id
    assert env["PACH_OUTPUT_COMMIT_ID"] == job.output_commit
    assert env["images_COMMIT"] == job.inputs[("images", "master")]
    assert env["PACH_DATUM_ID"] == job.datums[0].id
    assert env["images"].endswith("/images/dir")


async def test_two_datums_writing_one_path_fail_the_job_naming_both(engine: Engine) -> None:
    await commit(engine.repos, "images", {"/a.txt": b"A", "/b.txt": b"B"})
    doc = pipeline(transform={"cmd": ["sh", "-c", 'cp "$PFS"/images/* "$PFS"/out/same.txt']})
    job = await engine.jobs.run_job(doc)
    assert job.state == "failure" and job.output_commit is None
    assert "images:/a.txt" in job.error and "images:/b.txt" in job.error
    assert "/same.txt" in job.error
    assert await engine.repos.latest("copy") is None  # nothing was published


async def test_a_collision_with_a_skipped_datum_fails_the_job_too(engine: Engine) -> None:
    await commit(engine.repos, "images", {"/a.txt": b"A"})
    doc = pipeline(transform={"cmd": ["sh", "-c", 'cp "$PFS"/images/* "$PFS"/out/same.txt']})
    first = await engine.jobs.run_job(doc)
    assert first.state == "success"
    await commit(engine.repos, "images", {"/b.txt": b"B"})
    second = await engine.jobs.run_job(doc, first)
    assert second.state == "failure"
    assert "images:/a.txt" in second.error and "images:/b.txt" in second.error
    # the next job plans against the last good one
    assert second.history is first.history and second.inputs == first.inputs


async def test_failed_attempts_are_retried_then_err_cmd_recovers(engine: Engine) -> None:
    await commit(engine.repos, "images", {"/good.txt": b"ok", "/bad.txt": b"bad"})
    fail_on_bad = 'grep -q ok "$images" && cp "$images" "$PFS"/out/'
    doc = pipeline(transform={"cmd": ["sh", "-c", fail_on_bad], "err_cmd": ["true"]}, datum_tries=2)
    job = await engine.jobs.run_job(doc)
    assert (job.state, job.processed, job.recovered, job.failed) == ("success", 1, 1, 0)
    bad = next(d for d in job.datums if d.name == "images:/bad.txt")
    assert (bad.state, bad.attempts) == (DatumState.RECOVERED, 2)
    assert "exited with code 1" in bad.error
    assert sorted(await outputs(engine.repos, job)) == ["/good.txt"]
    # a recovered datum runs again next time, the good one is skipped
    again = await engine.jobs.run_job(doc, job)
    assert ran(again) == ["images:/bad.txt"] and again.skipped == 1


async def test_a_failure_without_err_cmd_fails_the_job(engine: Engine) -> None:
    await commit(engine.repos, "images", {"/a.txt": b"A"})
    doc = pipeline(transform={"cmd": ["sh", "-c", "exit 3"]}, datum_tries=1)
    job = await engine.jobs.run_job(doc)
    assert (job.state, job.failed) == ("failure", 1)
    accepted = pipeline(transform={"cmd": ["sh", "-c", "exit 3"], "accept_return_code": [3]})
    assert (await engine.jobs.run_job(accepted)).state == "success"
    missing = pipeline(transform={"cmd": ["/no/such/program"]}, datum_tries=1)
    job = await engine.jobs.run_job(missing)
    assert job.state == "failure" and "cannot start" in job.datums[0].error


async def test_a_datum_over_its_timeout_is_killed(engine: Engine) -> None:
    await commit(engine.repos, "images", {"/a.txt": b"A"})
    doc = pipeline(
        transform={"cmd": ["sh", "-c", "sleep 60 & wait"]}, datum_timeout="200ms", datum_tries=1
    )
    job = await engine.jobs.run_job(doc)
    assert job.state == "failure"
    assert "timed out after 0.2s" in job.datums[0].error


async def test_join_cross_and_group_inputs_mount_every_part(engine: Engine) -> None:
    repos, jobs = engine.repos, engine.jobs
    await commit(repos, "left", {"/1.txt": b"L1", "/2.txt": b"L2"})
    await commit(repos, "right", {"/1.csv": b"R1", "/3.csv": b"R3"})
    await commit(repos, "model", {"/m": b"M"})
    concat = [
        "sh",
        "-c",
        'cat $(find "$PFS" -type f -not -path "$PFS/out/*" | sort) > "$PFS/out/$PACH_DATUM_ID"',
    ]
    join = pipeline(
        "joined",
        transform={"cmd": concat},
        input={
            "join": [
                {"pfs": {"repo": "left", "glob": "/(*).txt", "join_on": "$1"}},
                {"pfs": {"repo": "right", "glob": "/(*).csv", "join_on": "$1"}},
            ]
        },
    )
    job = await jobs.run_job(join)
    assert sorted((await outputs(repos, job)).values()) == [b"L1R1"]
    crossed = pipeline(
        "crossed",
        transform={"cmd": concat},
        input={
            "cross": [
                {"pfs": {"repo": "left", "glob": "/*"}},
                {"pfs": {"repo": "model", "glob": "/"}},
            ]
        },
    )
    job = await jobs.run_job(crossed)
    assert sorted((await outputs(repos, job)).values()) == [b"L1M", b"L2M"]
    grouped = pipeline(
        "grouped",
        transform={"cmd": concat},
        input={
            "group": [
                {"pfs": {"repo": "left", "glob": "/*", "group_by": "all"}},
                {"pfs": {"repo": "right", "glob": "/*", "group_by": "all"}},
            ]
        },
    )
    job = await jobs.run_job(grouped)
    assert list((await outputs(repos, job)).values()) == [b"L1L2R1R3"]


async def test_parallel_datums_and_a_downstream_pipeline(engine: Engine) -> None:
    await commit(engine.repos, "images", {f"/{i}.txt": str(i).encode() for i in range(6)})
    first = await engine.jobs.run_job(pipeline(parallelism_spec={"constant": 3}))
    assert first.processed == 6
    downstream = pipeline(
        "count",
        transform={"cmd": ["sh", "-c", 'ls "$PFS"/copy | wc -l > "$PFS"/out/count']},
        input={"pfs": {"repo": "copy", "glob": "/"}},
    )
    job = await engine.jobs.run_job(downstream)
    assert (await outputs(engine.repos, job))["/count"].strip() == b"6"


async def test_a_job_leaves_only_its_datum_logs_behind(engine: Engine) -> None:
    await commit(engine.repos, "images", {"/a.txt": b"A"})
    doc = pipeline(
        transform={"cmd": ["sh", "-c", 'echo hello from "$images"; cp "$images" /pfs/out/']}
    )
    job = await engine.jobs.run_job(doc)
    assert [p.suffix for p in (engine.work / job.id).iterdir()] == [".log"]
    log = Path(job.datums[0].log_path).read_text()
    assert "hello from " in log and "/images/a.txt" in log


async def test_a_job_after_another_host_wrote_the_output_branch_starts_from_its_previous_output(
    engine: Engine,
) -> None:
    repos, jobs = engine.repos, engine.jobs
    await commit(repos, "images", {"/a.txt": b"A", "/b.txt": b"B"})
    doc = pipeline()
    first = await jobs.run_job(doc)
    # meanwhile another host (a cloud worker) ran the pipeline on an input holding /e.txt;
    # its output commit lands on the branch; then /e.txt went again and /d.txt came
    await commit(repos, "images", {"/e.txt": b"E"})
    await commit(repos, "copy", {"/e.txt": b"E"})
    await commit(repos, "images", {"/d.txt": b"D"}, delete=("/e.txt",))
    second = await jobs.run_job(doc, first)
    assert ran(second) == ["images:/d.txt"]  # planned against `first`
    expected = {"/a.txt": b"A", "/b.txt": b"B", "/d.txt": b"D"}
    assert await outputs(repos, second) == expected  # no stale /e.txt of the other host

    await commit(repos, "copy", {"/stray.txt": b"?"})  # a full run starts from nothing
    fresh = await jobs.run_job(doc)
    assert fresh.processed == 3 and await outputs(repos, fresh) == expected
