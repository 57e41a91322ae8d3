"""The edge pipeline host: runs the pipelines the cloud placed on this node, offline too.

:func:`serve_pipelines` is started once the local store holds a ``Pipeline`` or a ``Repo``
(the agent waits for one, so a node without opens no repo store). It opens the node's repos and job
store under ``DATA/pipelines`` (recovering what a stopped agent left), starts the engine's
scheduler on them and the local put endpoint (:mod:`.putserver`), and follows the held
Pipeline objects: each is parsed, its input repos are created when missing (an edge repo
exists once a pipeline reads it), and the scheduler runs its jobs whenever a commit is
finished on an input branch — a local file put, or an upstream pipeline's job on this node.
Everything reads the local store and local repos only, so it works the same with the cloud
away.

Repos located on this node (``Repo`` objects the cloud sends) are created and their commits
reported upstream by :mod:`.located`. Copier and Merger pipelines are not run:
:mod:`.copier` fetches the commit the cloud sends a Copier, :mod:`.merger` delivers a
Merger's input commits to the cloud (both through the calls in :mod:`.cloudcalls`). A
cloud-placed pipeline the cloud handed to this node as a cloud worker (annotation
``edgeweave.io/cloud-worker``) runs like any other; :mod:`.worker` fetches its input commits
from the cloud and pushes its output commits back.
Upstream, through the outbox: ``pipeline.status`` (the scheduler's status, coalesced per
pipeline) and ``pipeline.job`` after each job that ran to an end (the job and its datum
records with the paths each wrote, :mod:`edgeweave.pipelines.jobreport` — the cloud's lineage
follows them).
``on_status`` mirrors the statuses into the agent's status file (`edgeweave edge status`).

Must not talk to the link itself, or run anything but through the engine's scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeweave.aio.tasks import open_supervisor
from edgeweave.config.edge import EdgePipelineSettings
from edgeweave.edge.outbox import Outbox
from edgeweave.edge.pipelines.cloudcalls import CloudCalls
from edgeweave.edge.pipelines.copier import EdgeCopiers, Wanted
from edgeweave.edge.pipelines.located import LocatedRepos
from edgeweave.edge.pipelines.merger import EdgeMergers, MergeWanted
from edgeweave.edge.pipelines.putserver import open_put_server
from edgeweave.edge.pipelines.worker import EdgeWorkers, WorkerWanted
from edgeweave.edge.store import EdgeStore
from edgeweave.errors import AlreadyExists, EdgeweaveError
from edgeweave.models.pipelines import (
    CLOUD_WORKER_ANNOTATION,
    COPIER_COMMIT_ANNOTATION,
    WORKER_INPUTS_ANNOTATION,
)
from edgeweave.pipelines.cloudworkers import decode_inputs
from edgeweave.pipelines.hosting import open_host_stores
from edgeweave.pipelines.jobreport import (
    JOB_TOPIC,
    MAX_REPORTED_DATUMS,
    STATUS_TOPIC,
    encode_job_report,
)
from edgeweave.pipelines.jobs import JobResult, JobRunner
from edgeweave.pipelines.jobstore import JobStore
from edgeweave.pipelines.mountns import probe_mount_namespace
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.runner import DatumRunner
from edgeweave.pipelines.scheduler import Scheduler, Status, is_cloud_placed
from edgeweave.pipelines.spec import PipelineDoc, stored_pipeline_doc

log = logging.getLogger(__name__)

PIPELINE, REPO = "Pipeline", "Repo"
OnStatus = Callable[[dict[str, Any]], None]


class _Reporter:
    """The scheduler's status sink and job hook: to the outbox and the status file."""

    def __init__(self, outbox: Outbox, jobs: JobStore, on_status: OnStatus) -> None:
        self._outbox = outbox
        self._jobs = jobs
        self._on_status = on_status
        self.namespaces: dict[str, str] = {}  # pipeline name -> namespace
        self.statuses: dict[str, Status] = {}

    async def status(self, namespace: str, name: str, status: Status) -> None:
        status = {**status, "time": time.time()}
        ref = {"namespace": namespace, "name": name}
        self._outbox.append_nowait(
            STATUS_TOPIC, {"pipeline": ref, "status": status}, key=f"{namespace}/{name}"
        )
        self.statuses[name] = {"namespace": namespace, **status}
        self._on_status(dict(sorted(self.statuses.items())))

    async def job(self, job: JobResult) -> None:
        info = await self._jobs.job(job.id)
        datums = await self._jobs.datums(job.id, limit=MAX_REPORTED_DATUMS)
        lineage = await self._jobs.datum_lineage(job.id)  # what lets the cloud trace files
        namespace = self.namespaces.get(job.pipeline, "default")
        report = encode_job_report(namespace, info, datums, lineage)
        self._outbox.append_nowait(JOB_TOPIC, report)


async def _put(
    repos: Repos,
    scheduler: Scheduler,
    locks: dict[tuple[str, str], asyncio.Lock],
    repo: str,
    branch: str,
    files: list[tuple[str, Path]],
) -> str:
    with contextlib.suppress(AlreadyExists):
        await repos.create_repo(repo)
    async with locks.setdefault((repo, branch), asyncio.Lock()):
        info = await repos.start_commit(repo, branch)
        try:
            for path, upload in files:
                await repos.put_file_from(info.id, path, upload)
            info = await repos.finish_commit(info.id)
        except BaseException:
            await repos.delete_commit(info.id)
            raise
    scheduler.commit_finished(repo)
    return info.id


async def _follow(
    store: EdgeStore,
    changed: asyncio.Event,
    repos: Repos,
    scheduler: Scheduler,
    reporter: _Reporter,
    copiers: EdgeCopiers,
    mergers: EdgeMergers,
    located: LocatedRepos,
    workers: EdgeWorkers,
) -> None:
    """Keep the scheduler's pipelines (and the Copiers, Mergers, located repos) equal to
    the held Pipeline and Repo objects."""
    running: dict[str, str] = {}  # name -> namespace
    while True:
        changed.clear()
        repos_here = {str((r.get("metadata") or {}).get("name")) for r in await store.list(REPO)}
        await located.update({name for name in repos_here if name})
        held = await store.list(PIPELINE)
        seen: dict[str, str] = {}
        wanted: dict[str, Wanted] = {}
        merging: dict[str, MergeWanted] = {}
        working: dict[str, WorkerWanted] = {}
        for obj in held:
            meta = obj.get("metadata") or {}
            namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
            generation = int(meta.get("generation") or 0)
            reporter.namespaces[name] = namespace
            try:
                doc: PipelineDoc | None = stored_pipeline_doc(obj)
                problem = ""
            except EdgeweaveError as e:
                doc, problem = None, e.message
            except ValueError as e:
                doc, problem = None, str(e)
            pattern = doc.pipeline.spec.pattern if doc is not None else None
            if pattern is not None and pattern.copier is not None:  # fetched, not run
                notes = meta.get("annotations") or {}
                wanted[name] = Wanted(namespace, notes.get(COPIER_COMMIT_ANNOTATION))
                continue
            pfs = doc.pipeline.spec.input.pfs if doc is not None else None
            if pattern is not None and pattern.merger is not None and pfs is not None:
                with contextlib.suppress(AlreadyExists):  # delivered, not run
                    await repos.create_repo(pfs.repo)
                merging[name] = MergeWanted(namespace, pfs.repo, pfs.branch or "master")
                continue
            seen[name] = namespace
            notes = meta.get("annotations") or {}
            if doc is not None and is_cloud_placed(doc) and notes.get(CLOUD_WORKER_ANNOTATION):
                inputs = decode_inputs(notes.get(WORKER_INPUTS_ANNOTATION)).values()
                working[name] = WorkerWanted(namespace, frozenset(inputs))
            for repo in doc.pipeline.spec.input.repos() if doc is not None else ():
                with contextlib.suppress(AlreadyExists):
                    await repos.create_repo(repo)
            await scheduler.upsert(namespace, name, doc, generation, problem)
        for name, namespace in running.items():
            if name not in seen:
                await scheduler.remove(namespace, name)
        running = seen
        copiers.update(wanted)
        mergers.update(merging)
        workers.update(working)
        await changed.wait()


async def serve_pipelines(
    data_dir: Path,
    opts: EdgePipelineSettings,
    store: EdgeStore,
    outbox: Outbox,
    changed: asyncio.Event,
    on_status: OnStatus,
    calls: CloudCalls,
) -> None:
    """Until cancelled; ``changed`` is set when held Pipeline objects change; ``calls``
    reach the cloud for Copiers and Mergers."""
    root = data_dir / "pipelines"
    async with open_host_stores(root) as (repos, jobs):
        reporter = _Reporter(outbox, jobs, on_status)
        namespace, mode = await probe_mount_namespace(opts.mount_namespace, [data_dir])
        log.info("pipelines: %s", mode)
        runner = JobRunner(repos, DatumRunner(root / "work", repos, namespace=namespace))
        async with open_supervisor("edge-pipelines") as supervisor:
            mergers = EdgeMergers(repos, calls.sign_merge, calls.send, reporter.status)
            located = LocatedRepos(repos, outbox, root)

            def on_commit(repo: str) -> None:
                mergers.commit_finished(repo)
                located.commit_finished(repo)
                workers.commit_finished(repo)

            scheduler = Scheduler(
                repos,
                jobs,
                runner,
                supervisor,
                max_running_jobs=opts.max_running_jobs,
                on_status=reporter.status,
                on_job=reporter.job,
                on_commit=on_commit,
            )
            locks: dict[tuple[str, str], asyncio.Lock] = {}

            async def put(repo: str, branch: str, files: list[tuple[str, Path]]) -> str:
                return await _put(repos, scheduler, locks, repo, branch, files)

            copiers = EdgeCopiers(
                repos, calls.sign_commit, calls.fetch, reporter.status, scheduler.commit_finished
            )
            workers = EdgeWorkers(
                repos,
                calls.sign_commit,
                calls.fetch,
                calls.sign_output,
                calls.send,
                scheduler.commit_finished,
            )
            supervisor.start(copiers.run, name="copiers", restart=True)
            supervisor.start(workers.run, name="cloud-worker", restart=True)
            supervisor.start(mergers.run, name="mergers", restart=True)
            supervisor.start(located.run, name="located-repos", restart=True)
            async with open_put_server(root, opts.max_file_bytes, put):
                await _follow(
                    store, changed, repos, scheduler, reporter, copiers, mergers, located, workers
                )
