"""The cloud's pipeline worker as the API sees it, and :func:`open_pipelines` that starts it.

:class:`PipelineService` owns the cloud's repos (``DATA/pipelines/repos.db`` and chunks),
the job store (``DATA/pipelines/jobs.db``) and the datum work directory
(``DATA/pipelines/work``, where the datums' logs stay). Writes that finish a commit — a file
put, a commit finished by hand — tell the scheduler, which runs the pipelines reading that
repo. A put without a commit id is a commit of its own; puts to one branch take turns, so
two clients never collide on the branch's one open commit.

Pipelines handed to cloud workers (:mod:`.workers`) are not run here: their status says which
worker runs them, and the outputs the worker pushes land through :meth:`accept_output`.

On start, :func:`edgeweave.pipelines.hosting.recover` marks jobs a stopped cloud left running
``killed`` and deletes every commit left open: the cloud is the only writer of its repos.

Must not know HTTP: the API handlers translate requests into these calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from edgeweave.aio.tasks import open_supervisor
from edgeweave.cloud.pipelines import located as loc
from edgeweave.cloud.pipelines.copier import CopierPublisher
from edgeweave.cloud.pipelines.merger import Mergers
from edgeweave.cloud.pipelines.mergetimer import MergeTimer
from edgeweave.cloud.pipelines.watcher import PIPELINE, StoreFeed, write_status
from edgeweave.cloud.pipelines.workers import CloudWorkers
from edgeweave.cloud.store.base import Store
from edgeweave.config.settings import PipelineSettings
from edgeweave.errors import AlreadyExists, Conflict, NotFound, PayloadTooLarge
from edgeweave.models.pipelines import Input
from edgeweave.pipelines.commitreport import CommitReport
from edgeweave.pipelines.commits import CommitInfo, FileInfo, RepoInfo
from edgeweave.pipelines.hosting import open_host_stores
from edgeweave.pipelines.jobinfo import DatumInfo, JobInfo, LineageNode
from edgeweave.pipelines.jobreport import JobReport
from edgeweave.pipelines.jobs import JobRunner
from edgeweave.pipelines.jobstore import JobStore
from edgeweave.pipelines.lineage import trace_lineage
from edgeweave.pipelines.mountns import MountNamespace, probe_mount_namespace
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.runner import DatumRunner
from edgeweave.pipelines.scheduler import Scheduler, is_cloud_placed
from edgeweave.pipelines.spec import PipelineDoc, engine_input
from edgeweave.pipelines.transfer import CommitManifest

log = logging.getLogger(__name__)

LOG_READ_BYTES = 64 * 1024
WAIT_RECHECK_S = 2.0  # `pipeline wait` looks again at least this often
ON_EDGE = "placed on edge nodes: each runs its jobs there (`job list` shows them with their node)"


def _elsewhere(workers: CloudWorkers, doc: PipelineDoc) -> str:
    if not is_cloud_placed(doc):
        return ON_EDGE
    node = workers.runs_on(doc.name)
    if node is None:
        return ""
    return f"run by cloud worker {node} (`job list` shows its jobs; status.nodes.{node})"


@dataclass(frozen=True)
class CommitView:
    info: CommitInfo
    files: int
    size_bytes: int
    job: str | None  # the job whose output this commit is


class PipelineService:
    def __init__(
        self,
        repos: Repos,
        jobs: JobStore,
        scheduler: Scheduler,
        feed: StoreFeed,
        root: Path,
        settings: PipelineSettings,
        store: Store,
        mergers: Mergers,
        workers: CloudWorkers,
        namespace: MountNamespace | None = None,
    ) -> None:
        self.repos = repos
        self.namespace = namespace  # where user code runs (for workflow steps too)
        self.mergers = mergers
        self.workers = workers
        self.jobs = jobs
        self.scheduler = scheduler
        self.feed = feed
        self.settings = settings
        self._store = store
        self._uploads = root / "uploads"
        self._branch_locks: dict[tuple[str, str], asyncio.Lock] = {}

    # ---- repos -----------------------------------------------------------------------------

    async def create_repo(
        self, name: str, description: str = "", node: str | None = None
    ) -> RepoInfo:
        """A cloud repo; with ``node``, a ``Repo`` object placing it on that node (whose
        agent creates it) and the cloud's record of its commits."""
        if node is None:
            await self.repos.create_repo(name, description)
            return await self.repo(name)
        await self._store.create(loc.repo_object(name, description, node))
        with contextlib.suppress(AlreadyExists):  # the store feed may be first
            await self.repos.create_repo(name, description)
        self.feed.located[name] = node
        return await self.repo(name)

    def location(self, name: str) -> str | None:
        """The node a repo lives on (None: the cloud)."""
        return self.feed.located.get(name)

    async def record_node_jobs(self, node: str, reports: list[JobReport]) -> None:
        """Jobs ``node`` ran and reported (the hub calls this); wakes `pipeline wait`."""
        await self.jobs.record_reported(node, reports)
        await self.workers.made_progress()

    async def record_node_commits(self, node: str, reports: list[CommitReport]) -> None:
        """Commits of repos located on ``node``, as it reported them (the hub calls this)."""
        await loc.record_node_commits(self.repos, node, reports)

    async def accept_output(
        self, namespace: str, name: str, node: str, manifest: CommitManifest
    ) -> bool:
        """A cloud worker's output commit of pipeline ``name``, onto its output repo's
        ``master`` (its chunks were received first); wakes the pipelines reading it. False
        when the commit was here already."""
        imported = await self.workers.accept_output(namespace, name, node, manifest)
        if imported:
            self.scheduler.commit_finished(name)
        return imported

    async def repo(self, name: str) -> RepoInfo:
        for info in await self.repos.repo_infos():
            if info.name == name:
                return info
        raise NotFound(f"repo {name!r} does not exist; create it with `repo create {name}`")

    async def delete_repo(self, name: str) -> None:
        """Delete a repo no stored pipeline reads or writes, and free its space."""
        await self.repo(name)
        users = []
        for obj in (await self._store.list(PIPELINE)).items:
            pipeline = obj["metadata"]["name"]
            try:
                # a cron input's repo counts too (engine_input names it as a pfs input)
                reads = engine_input(Input.model_validate(obj["spec"]["input"]), pipeline).repos()
            except (KeyError, ValueError):  # not a valid spec: it reads nothing
                reads = []
            if pipeline == name or name in reads:
                users.append(pipeline)
        if users:
            raise Conflict(
                f"repo {name!r} is used by pipeline(s) {', '.join(sorted(users))}; "
                "delete the pipeline(s) first"
            )
        await self.repos.delete_repo(name)
        await self.repos.gc()

    # ---- commits and files -----------------------------------------------------------------

    async def commit(self, repo: str, ref: str) -> CommitView:
        info = await self.repos.resolve(repo, ref)
        files, size = await self.repos.commit_stats(info.id)
        job = await self.jobs.job_for_output(info.id)
        return CommitView(info, files, size, job.id if job is not None else None)

    async def start_commit(self, repo: str, branch: str, description: str = "") -> CommitInfo:
        loc.check_writable(self.feed.located, repo)
        return await self.repos.start_commit(repo, branch, description=description)

    async def list_files(self, repo: str, ref: str, path: str) -> tuple[CommitInfo, list[FileInfo]]:
        info = await self.repos.resolve(repo, ref)
        loc.check_files_listed(info)
        return info, await self.repos.list_files(info.id, path)

    async def finish_commit(self, repo: str, commit_id: str) -> CommitInfo:
        info = await self._own_commit(repo, commit_id)
        done = await self.repos.finish_commit(info.id)
        self.scheduler.commit_finished(repo)
        return done

    async def put_stream(
        self, repo: str, branch: str, path: str, chunks: AsyncIterator[bytes], commit: str | None
    ) -> tuple[CommitInfo, FileInfo]:
        """Store a streamed file at ``path``: into the open ``commit``, or as a new commit on
        ``branch`` (finished at once, which triggers the pipelines reading ``repo``)."""
        await self.repo(repo)
        loc.check_writable(self.feed.located, repo)
        upload = await self._receive(chunks)
        try:
            if commit is not None:
                info = await self._own_commit(repo, commit)
                return info, await self.repos.put_file_from(info.id, path, upload)
            async with self._branch_lock(repo, branch):
                info = await self.repos.start_commit(repo, branch)
                try:
                    put = await self.repos.put_file_from(info.id, path, upload)
                    info = await self.repos.finish_commit(info.id)
                except BaseException:
                    await self.repos.delete_commit(info.id)
                    raise
            self.scheduler.commit_finished(repo)
            return info, put
        finally:
            await asyncio.to_thread(upload.unlink, True)

    async def delete_file(
        self, repo: str, branch: str, path: str, commit: str | None
    ) -> tuple[CommitInfo, int]:
        loc.check_writable(self.feed.located, repo)
        if commit is not None:
            info = await self._own_commit(repo, commit)
            return info, await self.repos.delete_file(info.id, path)
        async with self._branch_lock(repo, branch):
            info = await self.repos.start_commit(repo, branch)
            try:
                count = await self.repos.delete_file(info.id, path)
                info = await self.repos.finish_commit(info.id)
            except BaseException:
                await self.repos.delete_commit(info.id)
                raise
        self.scheduler.commit_finished(repo)
        return info, count

    async def open_file(
        self, repo: str, ref: str, path: str
    ) -> tuple[FileInfo, AsyncIterator[bytes]]:
        info = await self.repos.resolve(repo, ref)
        found = await self.repos.file_info(info.id, path)
        if not await self.repos.file_held(info.id, path):
            raise loc.bytes_elsewhere(self.feed.located, info, path)
        return found, self.repos.iter_file(info.id, path)

    async def _own_commit(self, repo: str, commit_id: str) -> CommitInfo:
        info = await self.repos.inspect_commit(commit_id)
        if info.repo != repo:
            raise NotFound(f"commit {commit_id} belongs to repo {info.repo!r}, not {repo!r}")
        return info

    def _branch_lock(self, repo: str, branch: str) -> asyncio.Lock:
        return self._branch_locks.setdefault((repo, branch), asyncio.Lock())

    async def _receive(self, chunks: AsyncIterator[bytes]) -> Path:
        """The streamed body in a temp file, refused past ``max_file_bytes``."""
        limit = self.settings.max_file_bytes
        await asyncio.to_thread(self._uploads.mkdir, parents=True, exist_ok=True)
        fd, name = await asyncio.to_thread(tempfile.mkstemp, dir=self._uploads, suffix=".part")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                size = 0
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(
                            f"file is over the limit of {limit} bytes (pipelines.max_file_bytes)"
                        )
                    await asyncio.to_thread(f.write, chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    # ---- jobs, datums, logs, lineage -------------------------------------------------------

    async def datums(self, job_id: str, limit: int) -> tuple[JobInfo, list[DatumInfo]]:
        job = await self.jobs.job(job_id)
        return job, await self.jobs.datums(job.id, limit)

    async def job_logs(self, job_id: str, datum: str | None) -> AsyncIterator[bytes]:
        """The logs of the datums that ran in a job (one datum: an id or its prefix).
        NotFound for an unknown job comes before the first byte."""
        job = await self.jobs.job(job_id)
        datums = [
            d
            for d in await self.jobs.datums(job.id, limit=1_000_000)
            if d.state != "skipped" and (not datum or d.id.startswith(datum))
        ]
        if datum and not datums:
            raise NotFound(f"job {job.id} ran no datum {datum!r}")
        return _log_stream(datums)

    async def lineage(self, repo: str, ref: str, path: str) -> LineageNode:
        info = await self.repos.resolve(repo, ref)
        return await trace_lineage(self.repos, self.jobs, repo, info.id, path)

    async def wait(self, names: list[str] | None, namespace: str) -> None:
        """Until the pipelines (all when None) as stored now have processed every commit of
        their inputs, and so have those upstream of them — on the built-in worker or on a
        cloud worker (whose output must have reached the cloud)."""
        await self.feed.ready.wait()
        if names:
            wanted = [await self._store.get(PIPELINE, namespace, n) for n in names]
        else:
            wanted = (await self._store.list(PIPELINE)).items
        for obj in wanted:
            meta = obj["metadata"]
            await self.scheduler.wait_seen(meta["name"], int(meta.get("generation") or 0))
        while True:  # the built-in worker idle, and the cloud workers caught up
            seen = self.workers.progress
            await self.scheduler.wait_idle(names or None)
            if await self.workers.caught_up(names or None, self.jobs):
                return
            await self.workers.wait_progress(seen, WAIT_RECHECK_S)


async def _log_stream(datums: list[DatumInfo]) -> AsyncIterator[bytes]:
    for d in datums:
        yield f"=== datum {d.id[:12]} {d.name} ({d.state})\n".encode()
        if not d.log_path:  # the datum logged nothing (no file was made)
            continue
        try:
            f = await asyncio.to_thread(open, d.log_path, "rb")
        except OSError:  # the work directory was cleaned: the tail kept in the job store
            yield (d.log_tail or "(log gone)\n").encode()
            continue
        try:
            while block := await asyncio.to_thread(f.read, LOG_READ_BYTES):
                yield block
        finally:
            await asyncio.to_thread(f.close)


@contextlib.asynccontextmanager
async def open_pipelines(
    store: Store, root: Path, settings: PipelineSettings, hidden: Sequence[Path] = ()
) -> AsyncIterator[PipelineService]:
    """Open the repos and job store under ``root``, start the scheduler and the store feed;
    leaving cancels running jobs (recorded ``killed``) and closes everything. User code
    does not see the ``hidden`` directories (with the mount namespace, :mod:`.mountns`)."""
    async with open_host_stores(root) as (repos, jobs):
        namespace, mode = await probe_mount_namespace(settings.mount_namespace, hidden)
        log.info("pipelines: %s", mode)
        runner = JobRunner(repos, DatumRunner(root / "work", repos, namespace=namespace))
        async with open_supervisor("pipelines") as supervisor:
            copiers = CopierPublisher(store, repos)

            async def moved(name: str) -> None:
                await scheduler.rehost(name)

            def on_commit(repo: str) -> None:
                copiers.commit_finished(repo)
                workers.commit_finished(repo)

            workers = CloudWorkers(store, repos, moved)
            scheduler = Scheduler(
                repos,
                jobs,
                runner,
                supervisor,
                max_running_jobs=settings.max_running_jobs,
                on_status=partial(write_status, store),
                elsewhere=partial(_elsewhere, workers),
                on_commit=on_commit,
            )
            timer = MergeTimer()
            mergers = Mergers(store, repos, scheduler.commit_finished, on_merged=timer.merged)
            feed = StoreFeed(store, scheduler, repos, copiers, timer, workers)
            service = PipelineService(
                repos, jobs, scheduler, feed, root, settings, store, mergers, workers, namespace
            )
            supervisor.start(feed.run, name="store-feed", restart=True)
            supervisor.start(copiers.run, name="copier-publisher", restart=True)
            supervisor.start(workers.run, name="cloud-workers", restart=True)
            supervisor.start(partial(timer.run, mergers.check), name="merge-timer", restart=True)
            yield service
