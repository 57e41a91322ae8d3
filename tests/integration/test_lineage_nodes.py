"""Lineage across nodes, on real repo and job stores and a real cloud state store (SQLite and
PostgreSQL): each node runs a Filter and reports its job the way the outbox carries it, the
cloud's Merger merges what the nodes delivered, and the cloud traces a merged file back
through the node branch and the node's job to the input file that stays on the node. A
cloud worker's pushed output is traced like a cloud job's; an input of a repo located on a
node says its node."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline_rig import pipeline_doc

from edgeweave.cloud.pipelines.located import record_node_commits
from edgeweave.cloud.pipelines.merger import Mergers
from edgeweave.cloud.store.base import CloudStore
from edgeweave.pipelines.commitreport import CommitReport
from edgeweave.pipelines.jobinfo import LineageNode
from edgeweave.pipelines.jobreport import decode_job_report, encode_job_report
from edgeweave.pipelines.jobs import JobResult, JobRunner
from edgeweave.pipelines.jobstore import JobStore, run_recorded
from edgeweave.pipelines.lineage import trace_lineage
from edgeweave.pipelines.repo import Repos, open_repos
from edgeweave.pipelines.runner import DatumRunner
from edgeweave.pipelines.spec import PipelineDoc

NODES = ("node-a", "node-b")
FILTER = ["sh", "-c", 'grep -q person "$frames"']


PEOPLE = pipeline_doc("people", "frames", FILTER, pattern={"filter": {"dropCodes": [1]}})


@dataclass
class Host:
    name: str
    repos: Repos
    jobs: JobStore
    runner: JobRunner


@dataclass
class Rig:
    cloud: Host
    nodes: dict[str, Host]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with AsyncExitStack() as stack:
        hosts = {}
        for name in ("cloud", *NODES):
            repos = await stack.enter_async_context(open_repos(tmp_path / name, fsync=False))
            jobs = JobStore(tmp_path / name / "jobs.db")
            await jobs.open()
            stack.push_async_callback(jobs.aclose)
            runner = JobRunner(repos, DatumRunner(tmp_path / name / "work", repos))
            hosts[name] = Host(name, repos, jobs, runner)
        yield Rig(hosts.pop("cloud"), hosts)


async def put(repos: Repos, repo: str, files: dict[str, bytes]) -> str:
    if repo not in await repos.list_repos():
        await repos.create_repo(repo)
    c = await repos.start_commit(repo)
    await repos.put_files(c.id, files.items())
    return (await repos.finish_commit(c.id)).id


async def run_and_report(
    node: Host, cloud: JobStore, doc: PipelineDoc, previous: JobResult | None
) -> JobResult:
    """One job on ``node``, reported to the cloud as its outbox entry carries it."""
    job = await run_recorded(node.runner, node.jobs, doc, previous)
    assert job.state == "success"
    info = await node.jobs.job(job.id)
    datums = await node.jobs.datums(job.id)
    report = encode_job_report("default", info, datums, await node.jobs.datum_lineage(job.id))
    await cloud.record_reported(node.name, [decode_job_report(json.loads(json.dumps(report)))])
    return job


async def deliver(mergers: Mergers, cloud: Repos, node: Host) -> None:
    """What a node's Merger delivery does, minus HTTP: the chunks, then the commit."""
    head = await node.repos.latest("people")
    assert head is not None
    manifest = await node.repos.manifest(head.id)
    for digest in manifest.chunk_digests():
        await cloud.receive_chunks([(digest, await node.repos.read_chunk(digest))])
    await mergers.deliver("default", "people-frames", node.name, manifest)


def chain(root: LineageNode) -> list[LineageNode]:
    out = [root]
    while out[-1].inputs:
        [only] = out[-1].inputs
        out.append(only)
    return out


async def test_a_merged_frame_traces_back_through_the_nodes_filter_job_to_its_input_there(
    store: CloudStore, rig: Rig
) -> None:
    await store.create(
        {
            "apiVersion": "edgeweave.io/v1",
            "kind": "Pipeline",
            "metadata": {"name": "people-frames", "namespace": "default"},
            "spec": {
                "transform": {"cmd": ["true"]},
                "input": {"pfs": {"repo": "people", "glob": "/"}},
                "placement": {"nodeNames": list(NODES)},
                "pattern": {"merger": {}},
            },
        }
    )
    for name in NODES:
        meta = {"name": name, "labels": {}}
        await store.create({"apiVersion": "edgeweave.io/v1", "kind": "Node", "metadata": meta})
    mergers = Mergers(store, rig.cloud.repos, lambda _: None)
    a, b = rig.nodes["node-a"], rig.nodes["node-b"]
    frames_a = await put(a.repos, "frames", {"/a1.txt": b"person at door", "/a2.txt": b"hall"})
    await put(b.repos, "frames", {"/b1.txt": b"person on stairs"})
    first = await run_and_report(a, rig.cloud.jobs, PEOPLE, None)
    await run_and_report(b, rig.cloud.jobs, PEOPLE, None)
    for node in (a, b):
        await deliver(mergers, rig.cloud.repos, node)
    merged = await rig.cloud.repos.latest("people-frames", "master")
    assert merged is not None

    root = await trace_lineage(
        rig.cloud.repos, rig.cloud.jobs, "people-frames", merged.id, "/node-a/a1.txt"
    )
    view, branch, frame = chain(root)
    assert (view.merged_from, view.pipeline, view.node) == ("node-a", None, None)
    assert (branch.repo, branch.commit, branch.path) == (
        "people-frames",
        first.output_commit,
        "/a1.txt",
    )
    assert branch.digest == view.digest and branch.size == len(b"person at door")
    assert (branch.pipeline, branch.job, branch.job_node) == ("people", first.id, "node-a")
    assert branch.datum is not None and branch.datum_job == first.id
    assert (frame.repo, frame.commit, frame.path) == ("frames", frames_a, "/a1.txt")
    assert (frame.node, frame.digest, frame.size, frame.pipeline) == ("node-a", "", None, None)
    assert not any(n.truncated for n in (view, branch, frame))
    assert frame.as_json()["node"] == "node-a" and view.as_json()["mergedFrom"] == "node-a"

    # a second frame on node-a: the first one is skipped there, so its datum is the first job's
    frames_a2 = await put(a.repos, "frames", {"/a3.txt": b"person again"})
    previous = await a.jobs.previous("people")
    second = await run_and_report(a, rig.cloud.jobs, PEOPLE, previous)
    assert second.skipped == 2 and second.processed == 1
    await deliver(mergers, rig.cloud.repos, a)
    merged = await rig.cloud.repos.latest("people-frames", "master")
    assert merged is not None and set(merged.provenance) == {
        f"people-frames@{second.output_commit}",
        f"people-frames@{(await b.repos.latest('people')).id}",  # type: ignore[union-attr]
    }
    view, branch, frame = chain(
        await trace_lineage(
            rig.cloud.repos, rig.cloud.jobs, "people-frames", merged.id, "/node-a/a1.txt"
        )
    )
    assert (branch.commit, branch.job, branch.datum_job) == (
        second.output_commit,
        second.id,
        first.id,
    )
    assert (frame.commit, frame.node) == (frames_a, "node-a")  # what the first job read
    *_, new = chain(
        await trace_lineage(
            rig.cloud.repos, rig.cloud.jobs, "people-frames", merged.id, "/node-a/a3.txt"
        )
    )
    assert (new.commit, new.path, new.node) == (frames_a2, "/a3.txt", "node-a")
    *_, other = chain(
        await trace_lineage(
            rig.cloud.repos, rig.cloud.jobs, "people-frames", merged.id, "/node-b/b1.txt"
        )
    )
    assert (other.path, other.node) == ("/b1.txt", "node-b")


async def test_a_report_without_lineage_fields_still_names_the_job_and_stops_there(
    rig: Rig,
) -> None:
    node = rig.nodes["node-a"]
    await put(node.repos, "frames", {"/a1.txt": b"person"})
    job = await run_recorded(node.runner, node.jobs, PEOPLE, None)
    report = encode_job_report("default", await node.jobs.job(job.id), [])  # an older node's
    assert "identity" not in json.dumps(report)
    await rig.cloud.jobs.record_reported("node-a", [decode_job_report(report)])
    assert job.output_commit is not None
    manifest = await node.repos.manifest(job.output_commit)
    assert await rig.cloud.repos.import_manifest(manifest, metadata_only=True)
    root = await trace_lineage(
        rig.cloud.repos, rig.cloud.jobs, "people", job.output_commit, "/a1.txt"
    )
    assert (root.pipeline, root.job_node, root.datum, root.inputs) == ("people", "node-a", None, [])


async def test_a_cloud_workers_pushed_output_traces_back_to_the_cloud_input(rig: Rig) -> None:
    worker, cloud = rig.nodes["node-a"], rig.cloud
    docs = await put(cloud.repos, "docs", {"/a.txt": b"alpha", "/b.txt": b"beta"})
    await cloud.repos.copy_commit(worker.repos, docs)  # what the worker fetches
    upper = pipeline_doc(
        "upper", "docs", ["sh", "-c", 'tr a-z A-Z < "$docs" > "$PFS/out/${docs##*/}"']
    )
    job = await run_and_report(worker, cloud.jobs, upper, None)
    assert job.output_commit is not None
    manifest = await worker.repos.manifest(job.output_commit)  # what the worker pushes
    for digest in manifest.chunk_digests():
        await cloud.repos.receive_chunks([(digest, await worker.repos.read_chunk(digest))])
    assert await cloud.repos.import_manifest(manifest, branch="master", repo="upper")

    root = await trace_lineage(cloud.repos, cloud.jobs, "upper", job.output_commit, "/b.txt")
    assert (root.pipeline, root.job, root.job_node) == ("upper", job.id, "node-a")
    [source] = root.inputs
    assert (source.repo, source.commit, source.path, source.node) == ("docs", docs, "/b.txt", None)
    assert source.size == len(b"beta") and source.pipeline is None  # put in the cloud


async def test_an_input_of_a_repo_located_on_the_node_says_its_node_with_its_digest(
    rig: Rig,
) -> None:
    node, cloud = rig.nodes["node-a"], rig.cloud
    frames = await put(node.repos, "frames", {"/a1.txt": b"person"})
    manifest = await node.repos.manifest(frames)  # the node's repo.commit report
    await record_node_commits(cloud.repos, "node-a", [CommitReport("frames", manifest, 0, 0)])
    job = await run_and_report(node, cloud.jobs, PEOPLE, None)
    assert job.output_commit is not None
    output = await node.repos.manifest(job.output_commit)
    assert await cloud.repos.import_manifest(output, metadata_only=True)

    root = await trace_lineage(cloud.repos, cloud.jobs, "people", job.output_commit, "/a1.txt")
    [frame] = root.inputs
    assert (frame.repo, frame.commit, frame.node) == ("frames", frames, "node-a")
    assert (frame.digest, frame.size) == (root.digest, len(b"person"))  # listed in the cloud
