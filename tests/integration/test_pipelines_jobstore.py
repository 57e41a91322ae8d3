"""The job store on real SQLite files with real jobs: records survive a reopen, the next job
plans incrementally from them, datum lists show processed and skipped datums, and lineage
walks from a downstream output back to the files users put."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline_rig import pipeline_doc as spec

from edgeweave.errors import InvalidObject
from edgeweave.pipelines.jobreport import decode_job_report, encode_job_report
from edgeweave.pipelines.jobs import JobRunner
from edgeweave.pipelines.jobstore import JobStore, run_recorded
from edgeweave.pipelines.lineage import trace_lineage
from edgeweave.pipelines.repo import Repos, open_repos
from edgeweave.pipelines.runner import DatumRunner


@dataclass
class Host:
    repos: Repos
    jobs: JobRunner
    root: Path


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with open_repos(tmp_path / "data", fsync=False) as repos:
        yield Host(repos, JobRunner(repos, DatumRunner(tmp_path / "work", repos)), tmp_path)


async def open_store(root: Path) -> JobStore:
    store = JobStore(root / "data" / "jobs.db")
    await store.open()
    return store


UPPER = ["sh", "-c", 'for f in "$PFS"/docs/*; do tr a-z A-Z < "$f" > "$PFS/out/${f##*/}"; done']
LEN = ["sh", "-c", 'for f in "$PFS"/upper/*; do wc -c < "$f" > "$PFS/out/${f##*/}.len"; done']


async def put(repos: Repos, repo: str, files: dict[str, bytes]) -> str:
    if repo not in await repos.list_repos():
        await repos.create_repo(repo)
    c = await repos.start_commit(repo)
    await repos.put_files(c.id, files.items())
    return (await repos.finish_commit(c.id)).id


async def test_records_survive_a_reopen_and_the_next_job_is_incremental(host: Host) -> None:
    await put(host.repos, "docs", {"/a.txt": b"alpha", "/b.txt": b"beta"})
    upper = spec("upper", "docs", UPPER)
    store = await open_store(host.root)
    try:
        first = await run_recorded(host.jobs, store, upper, None)
        assert first.state == "success"
    finally:
        await store.aclose()

    await put(host.repos, "docs", {"/c.txt": b"gamma"})
    store = await open_store(host.root)  # a restart: everything comes from the file
    try:
        previous = await store.previous("upper")
        assert previous is not None and previous.output_commit == first.output_commit
        assert sorted(previous.history.owners) == ["/a.txt", "/b.txt"]
        second = await run_recorded(host.jobs, store, upper, previous)
        assert (second.processed, second.skipped, second.incremental) == (1, 2, True)

        info = await store.job(second.id[:8])  # a prefix finds it
        assert (info.state, info.total, info.processed, info.skipped) == ("success", 3, 1, 2)
        assert info.bytes_in == 5 and info.bytes_out == 5
        datums = await store.datums(second.id)
        assert (datums[0].name, datums[0].state) == ("docs:/c.txt", "success")
        assert sorted((d.name, d.state, d.outputs) for d in datums[1:]) == [
            ("docs:/a.txt", "skipped", ("/a.txt",)),
            ("docs:/b.txt", "skipped", ("/b.txt",)),
        ]
        assert datums[0].state == "success" and datums[0].attempts == 1
        # the first job's datum list is unchanged by the second job
        assert sorted(d.state for d in await store.datums(first.id)) == ["success", "success"]
        jobs = await store.list_jobs("upper")
        assert [j.id for j in jobs] == [second.id, first.id]
    finally:
        await store.aclose()


async def test_lineage_walks_back_across_pipelines_to_the_put_files(host: Host) -> None:
    docs_commit = await put(host.repos, "docs", {"/a.txt": b"alpha", "/b.txt": b"beta"})
    store = await open_store(host.root)
    try:
        upper = await run_recorded(host.jobs, store, spec("upper", "docs", UPPER), None)
        length = await run_recorded(host.jobs, store, spec("length", "upper", LEN), None)
        assert length.output_commit is not None and upper.output_commit is not None
        assert await host.repos.get_file(length.output_commit, "/a.txt.len") == b"5\n"

        node = await trace_lineage(host.repos, store, "length", length.output_commit, "/a.txt.len")
        assert (node.pipeline, node.job) == ("length", length.id)
        [mid] = node.inputs
        assert (mid.repo, mid.commit, mid.path, mid.pipeline) == (
            "upper",
            upper.output_commit,
            "/a.txt",
            "upper",
        )
        [leaf] = mid.inputs
        assert (leaf.repo, leaf.commit, leaf.path) == ("docs", docs_commit, "/a.txt")
        assert leaf.pipeline is None and leaf.inputs == []

        # a skipped datum's output still traces to the job that ran it
        await put(host.repos, "docs", {"/c.txt": b"gamma"})
        again = await run_recorded(
            host.jobs, store, spec("upper", "docs", UPPER), await store.previous("upper")
        )
        assert again.output_commit is not None
        node = await trace_lineage(host.repos, store, "upper", again.output_commit, "/b.txt")
        assert (node.job, node.datum_job) == (again.id, upper.id)
        assert [(n.path, n.commit) for n in node.inputs] == [("/b.txt", docs_commit)]
    finally:
        await store.aclose()


async def test_a_failed_job_is_recorded_and_publishes_no_history(host: Host) -> None:
    await put(host.repos, "docs", {"/a.txt": b"alpha", "/bad.txt": b"x"})
    fail_on_bad = [
        "sh",
        "-c",
        'echo "working on $docs"; case "$docs" in *bad*) exit 3;; esac; cp "$docs" "$PFS/out/"',
    ]
    store = await open_store(host.root)
    try:
        job = await run_recorded(
            host.jobs, store, spec("copy", "docs", fail_on_bad, datum_tries=1), None
        )
        assert job.state == "failure"
        info = await store.job(job.id)
        assert (info.state, info.failed, info.processed, info.output_commit) == (
            "failure",
            1,
            1,
            None,
        )
        datums = {d.name: d for d in await store.datums(job.id)}
        assert datums["docs:/bad.txt"].state == "failed"
        assert "exited with code 3" in datums["docs:/bad.txt"].error
        assert "working on" in datums["docs:/bad.txt"].log_tail
        assert await store.previous("copy") is None
        assert (await store.last_job("copy") or info).id == job.id
    finally:
        await store.aclose()


async def test_jobs_left_running_by_a_stopped_host_are_marked_killed(host: Host) -> None:
    await put(host.repos, "docs", {"/a.txt": b"alpha"})
    store = await open_store(host.root)
    try:
        result = await host.jobs.run_job(spec("upper", "docs", UPPER))
        await store.start_job(result)  # as if the host died before finishing it
        [killed] = await store.interrupt_running(1.0)
        assert killed.id == result.id and killed.output_commit == result.output_commit
        assert (await store.job(result.id)).state == "killed"
        assert await store.last_job("upper") is None  # killed jobs do not count as attempts
    finally:
        await store.aclose()


async def test_jobs_reported_by_a_node_are_listed_with_it_replaced_on_replay_and_not_planned_on(
    host: Host,
) -> None:
    await host.repos.create_repo("docs")
    commit = await host.repos.start_commit("docs", "master")
    await host.repos.put_file(commit.id, "/a.txt", b"alpha")
    await host.repos.finish_commit(commit.id)
    edge = await open_store(host.root / "edge")
    cloud = await open_store(host.root / "cloud")
    try:
        doc = spec("upper", "docs", ["sh", "-c", "cp -r /pfs/docs/. /pfs/out/"])
        job = await run_recorded(host.jobs, edge, doc, None)
        info = await edge.job(job.id)
        report = encode_job_report("default", info, await edge.datums(job.id))
        decoded = decode_job_report(json.loads(json.dumps(report)))
        for _ in range(2):  # a replayed outbox entry changes nothing
            await cloud.record_reported("node-a", [decoded])
        await cloud.record_reported("node-b", [decoded])  # another node cannot take it over
        [listed] = await cloud.list_jobs("upper")
        assert (listed.id, listed.node, listed.state, listed.processed) == (
            job.id,
            "node-a",
            "success",
            1,
        )
        assert [d.state for d in await cloud.datums(job.id)] == ["success"]
        assert await cloud.previous("upper") is None  # an edge job is never planned on here
        assert await cloud.interrupt_running(0.0) == []
    finally:
        await edge.aclose()
        await cloud.aclose()


async def test_a_filter_passes_matching_files_unchanged_drops_the_rest_and_counts_both(
    host: Host,
) -> None:
    await host.repos.create_repo("frames")
    commit = await host.repos.start_commit("frames", "master")
    frames = {"/f1.txt": b"person at door", "/f2.txt": b"empty hall", "/f3.txt": b"cat"}
    for path, data in frames.items():
        await host.repos.put_file(commit.id, path, data)
    await host.repos.finish_commit(commit.id)
    store = await open_store(host.root)
    try:
        predicate = ["sh", "-c", 'grep -q person "$frames"']
        doc = spec("people", "frames", predicate, pattern={"filter": {"dropCodes": [1]}})
        job = await run_recorded(host.jobs, store, doc, None)
        assert job.state == "success"
        assert job.output_commit is not None
        files = await host.repos.list_files(job.output_commit)
        assert [f.path for f in files] == ["/f1.txt"]
        assert await host.repos.get_file(job.output_commit, "/f1.txt") == b"person at door"
        counts = (await store.job(job.id)).filter
        assert counts is not None
        assert (counts.items_in, counts.items_passed, counts.items_dropped) == (3, 1, 2)
        assert counts.bytes_passed == 14 and counts.bytes_dropped == len(b"empty hallcat")
        verdicts = {d.name: d.filter for d in await store.datums(job.id)}
        assert sorted(verdicts.values()) == ["dropped", "dropped", "passed"]
        other = spec("people", "frames", predicate, pattern={"filter": {"dropCodes": [1, 2]}})
        assert other.version != doc.version  # the predicate is versioned with its drop codes
    finally:
        await store.aclose()


def test_filter_settings_are_checked_where_the_spec_is_read() -> None:
    with pytest.raises(InvalidObject, match="dropCodes"):
        spec("people", "frames", ["true"], pattern={"filter": {"dropCodes": [0]}})
    with pytest.raises(InvalidObject, match="unknown"):
        spec("people", "frames", ["true"], pattern={"filter": {"keep": "*.jpg"}})
