"""The cloud workers' controller on a real state store (SQLite and PostgreSQL) and real repos:
cloud-placed pipelines handed to Ready labelled nodes and back, the assignment and input
heads written into the Pipelines' annotations, a restart adopting what is stored, and a
worker's output commit accepted only from the node that runs the pipeline."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgeweave.cloud.pipelines.workers import CloudWorkers
from edgeweave.cloud.store.base import CloudStore
from edgeweave.errors import BadRequest, Conflict, NotFound
from edgeweave.pipelines.cloudworkers import choose_worker, decode_inputs
from edgeweave.pipelines.jobinfo import JobInfo
from edgeweave.pipelines.jobreport import decode_job_report, encode_job_report
from edgeweave.pipelines.jobstore import JobStore
from edgeweave.pipelines.repo import Repos, open_repos
from edgeweave.pipelines.spec import stored_pipeline_doc

WORKER, INPUTS = "edgeweave.io/cloud-worker", "edgeweave.io/worker-inputs"
NAMES = [f"p{i}" for i in range(8)]


def pipeline(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Pipeline",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "transform": {"cmd": ["true"]},
            "input": {"pfs": {"repo": "docs", "glob": "/*"}},
            **spec,
        },
    }


async def set_node(store: CloudStore, name: str, phase: str, worker: bool = True) -> Any:
    labels = {"edgeweave.io/worker": "cloud"} if worker else {}
    try:
        obj = await store.get("Node", "", name)
    except NotFound:
        meta = {"name": name, "labels": labels}
        obj = await store.create(
            {"apiVersion": "edgeweave.io/v1", "kind": "Node", "metadata": meta}
        )
    obj["status"] = {"phase": phase}
    return await store.update(obj)


async def put(repos: Repos, path: str) -> str:
    info = await repos.start_commit("docs", "master")
    await repos.put_file(info.id, path, b"x")
    return (await repos.finish_commit(info.id)).id


class Rig:
    def __init__(self, store: CloudStore, repos: Repos) -> None:
        self.store = store
        self.repos = repos
        self.moved: list[str] = []
        self.workers = CloudWorkers(store, repos, self.on_moved)

    async def on_moved(self, name: str) -> None:
        self.moved.append(name)

    async def feed(self) -> None:
        """What the store feed hands the controller: every Pipeline and Node, as stored."""
        for obj in (await self.store.list("Pipeline")).items:
            self.workers.pipeline_event("ADDED", obj, stored_pipeline_doc(obj))
        for obj in (await self.store.list("Node")).items:
            self.workers.node_event("ADDED", obj)

    async def notes(self, name: str) -> dict[str, str]:
        obj = await self.store.get("Pipeline", "default", name)
        return dict(obj["metadata"].get("annotations") or {})


@pytest.fixture
async def rig(store: CloudStore, tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_repos(tmp_path / "repos", fsync=False) as repos:
        await repos.create_repo("docs")
        yield Rig(store, repos)


async def test_pipelines_go_to_ready_workers_and_come_back_when_none_is_ready(rig: Rig) -> None:
    store, workers = rig.store, rig.workers
    head = await put(rig.repos, "/a")
    for name in NAMES:
        await store.create(pipeline(name))
    await store.create(pipeline("pinned", placement={"nodeNames": ["w1"]}))  # not cloud-placed
    for node in ("w1", "w2"):
        await set_node(store, node, "Ready")
    await set_node(store, "plain", "Ready", worker=False)  # Ready, but no worker label
    await rig.feed()
    assert await workers.reconcile()  # nothing is decided before start
    assert all([WORKER not in await rig.notes(n) for n in NAMES])

    workers.start()
    assert await workers.reconcile()
    expected = {n: choose_worker(n, ["w1", "w2"]) for n in NAMES}
    assert set(expected.values()) == {"w1", "w2"}
    for name in NAMES:
        notes = await rig.notes(name)
        assert notes[WORKER] == expected[name] == workers.runs_on(name)
        assert decode_inputs(notes[INPUTS]) == {"docs@master": head}
    assert sorted(rig.moved) == NAMES
    assert WORKER not in await rig.notes("pinned") and workers.runs_on("pinned") is None

    late = await store.create(pipeline("late"))  # decided at once, before the scheduler looks
    workers.pipeline_event("ADDED", late, stored_pipeline_doc(late))
    assert workers.runs_on("late") == choose_worker("late", ["w1", "w2"])
    assert await workers.reconcile()
    assert (await rig.notes("late"))[WORKER] == workers.runs_on("late")
    assert "late" not in rig.moved  # the built-in worker never had it
    await store.delete("Pipeline", "default", "late")
    workers.pipeline_event("DELETED", late, None)

    newer = await put(rig.repos, "/b")  # the workers are told the new head
    workers.commit_finished("docs")
    assert await workers.reconcile()
    assert decode_inputs((await rig.notes("p0"))[INPUTS]) == {"docs@master": newer}

    rig.moved.clear()
    workers.node_event("MODIFIED", await set_node(store, "w1", "NotReady"))
    assert await workers.reconcile()
    on_w1 = sorted(n for n in NAMES if expected[n] == "w1")
    assert sorted(rig.moved) == on_w1  # only w1's pipelines moved
    assert all([(await rig.notes(n))[WORKER] == "w2" for n in NAMES])

    rig.moved.clear()
    workers.node_event("DELETED", {"metadata": {"name": "w2"}})
    assert await workers.reconcile()
    assert sorted(rig.moved) == NAMES
    for name in NAMES:  # no worker: the built-in worker runs everything
        assert workers.runs_on(name) is None
        notes = await rig.notes(name)
        assert WORKER not in notes and INPUTS not in notes


async def test_a_restart_adopts_the_stored_assignment_and_an_update_gets_it_rewritten(
    rig: Rig,
) -> None:
    store = rig.store
    await put(rig.repos, "/a")
    await store.create(pipeline("p0"))
    await set_node(store, "w1", "Ready")
    await rig.feed()
    rig.workers.start()
    await rig.workers.reconcile()
    assert (await rig.notes("p0"))[WORKER] == "w1"

    again = Rig(store, rig.repos)  # the cloud restarted; w1 is not listed yet
    obj = await store.get("Pipeline", "default", "p0")
    again.workers.pipeline_event("ADDED", obj, stored_pipeline_doc(obj))
    assert again.workers.runs_on("p0") == "w1"  # the built-in worker does not take it

    obj["metadata"]["annotations"] = {}  # `pipeline create -f` of a new spec drops them
    obj["spec"]["transform"] = {"cmd": ["echo"]}
    obj = await store.update(obj)
    again.workers.pipeline_event("MODIFIED", obj, stored_pipeline_doc(obj))
    again.workers.node_event("ADDED", await store.get("Node", "", "w1"))
    again.workers.start()
    assert await again.workers.reconcile()
    assert (await rig.notes("p0"))[WORKER] == "w1"
    assert again.moved == []  # written back, not moved


async def test_an_output_commit_is_accepted_only_from_the_worker_running_the_pipeline(
    rig: Rig, tmp_path: Path
) -> None:
    store = rig.store
    await put(rig.repos, "/a")
    await store.create(pipeline("upper"))
    for node in ("w1", "w2"):
        await set_node(store, node, "Ready")
    await rig.feed()
    rig.workers.start()
    await rig.workers.reconcile()
    runner = rig.workers.runs_on("upper")
    other = "w2" if runner == "w1" else "w1"
    assert runner is not None
    jobs = JobStore(tmp_path / "jobs.db")
    await jobs.open()
    try:
        assert not await rig.workers.caught_up(["upper"], jobs)  # the worker owes a job
        assert await rig.workers.caught_up(["docs"], jobs)  # not a pipeline: nothing owed
        info = await make_output(rig, tmp_path, runner, other)
        assert await rig.workers.caught_up(None, jobs)
        await put(rig.repos, "/b")  # a newer input: owed again, until a failed job on it
        assert not await rig.workers.caught_up(None, jobs)
        job = await failed_job(rig, jobs, runner)
        assert await rig.workers.caught_up(None, jobs), job
    finally:
        await jobs.aclose()
    head = await rig.repos.latest("upper", "master")
    assert head is not None and head.id == info
    assert await rig.repos.get_file(head.id, "/a") == b"A"


async def failed_job(rig: Rig, jobs: JobStore, node: str) -> str:
    """A failed job of `upper` on the newest docs commit, as ``node`` reports it."""
    head = await rig.repos.latest("docs")
    assert head is not None
    doc = stored_pipeline_doc(await rig.store.get("Pipeline", "default", "upper"))
    job = JobInfo(
        id="f" * 32, pipeline="upper", version=doc.version, state="failure", seq=1,
        started_at=1.0, finished_at=2.0, output_commit=None,
        inputs=(("docs", "master", head.id),), input_commits={"docs": head.id},
    )  # fmt: skip
    payload = encode_job_report("default", job, [])
    await jobs.record_reported(node, [decode_job_report(payload)])
    return job.id


async def make_output(rig: Rig, tmp_path: Path, runner: str, other: str) -> str:
    """The worker's output commit of `upper` on the newest docs commit, pushed; its id."""
    head = await rig.repos.latest("docs")
    assert head is not None
    doc = stored_pipeline_doc(await rig.store.get("Pipeline", "default", "upper"))
    provenance = [f"docs@{head.id}", f"pipeline:upper@{doc.version}"]
    async with open_repos(tmp_path / "node", fsync=False) as node:
        await node.create_repo("upper")
        info = await node.start_commit("upper", origin="auto", provenance=provenance)
        await node.put_file(info.id, "/a", b"A")
        await node.finish_commit(info.id)
        manifest = await node.manifest(info.id)
        await rig.repos.receive_chunks(
            [(d, await node.read_chunk(d)) for d in manifest.chunk_digests()]
        )
        with pytest.raises(Conflict, match=f"not run by cloud worker {other}"):
            await rig.workers.accept_output("default", "upper", other, manifest)
        alien = dataclasses.replace(manifest, info=dataclasses.replace(manifest.info, repo="docs"))
        with pytest.raises(BadRequest, match="of repo 'docs', not 'upper'"):
            await rig.workers.accept_output("default", "upper", runner, alien)
        assert await rig.workers.accept_output("default", "upper", runner, manifest) is True
        assert await rig.workers.accept_output("default", "upper", runner, manifest) is False
    out = await rig.repos.latest("upper", "master")
    assert out is not None and out.provenance == tuple(provenance)
    return info.id
