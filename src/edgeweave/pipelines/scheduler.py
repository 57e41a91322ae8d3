"""When a host runs a job: one loop per pipeline, woken by new input commits.

The cloud's pipeline worker and the edge pipeline host both use it, each on its own repos and
job store. Each pipeline the host runs has a task (``pipeline/<name>`` in the host's
supervisor) that
sleeps on a wake flag. The flag is set when the pipeline appears or its spec changes
(:meth:`Scheduler.upsert`), and when a commit is finished on a branch it reads
(:meth:`Scheduler.commit_finished` — from a file put, or from an upstream pipeline's job, so
downstream pipelines run on a new output commit without anyone asking). Woken, the loop reads
the newest finished commit of every input branch and runs a job unless the last job that ran
to an end already read exactly those commits with the same pipeline version; a failed job is
therefore not retried until something changes. Wakes that arrive while a job runs coalesce
into one more look afterwards. A pipeline with ``cron`` inputs that runs here also has a tick
task per cron input (``crontick.py``, on the injected clock) beside its loop: each tick is a
commit to the input's repo, which wakes the loop like any input commit.

Jobs of different pipelines run side by side up to ``max_running_jobs``; inside a job
``parallelism_spec`` bounds the datums (the job runner). Jobs are recorded in the job store,
so the next job after a restart still plans incrementally.

Pipeline names are global here (a pipeline writes the repo of its name): a second Pipeline
with a name another namespace already uses is refused in its status. ``elsewhere(doc)`` says
why a pipeline runs on another host (the cloud: it is placed on edge nodes); such a pipeline
only gets a ``waiting`` status; when the answer changes (a cloud worker takes the pipeline or
gives it back), :meth:`Scheduler.rehost` cancels its running job and makes it look again.
``on_job(job)`` is called after each job that ran to an end (the edge host reports it
upstream).

:meth:`Scheduler.wait_idle` waits until named pipelines — and every pipeline upstream of
them — have nothing left to do. Must not: read the state store (the watcher feeds it) or
touch HTTP, the cloud or the edge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from edgeweave.aio.clock import Clock, SystemClock
from edgeweave.aio.tasks import Supervisor
from edgeweave.errors import EdgeweaveError, NotFound
from edgeweave.pipelines.crontick import CronTicker
from edgeweave.pipelines.datums import TreeKey, tree_keys
from edgeweave.pipelines.jobs import JobResult, JobRunner
from edgeweave.pipelines.jobstore import JobStore, run_recorded
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.spec import PipelineDoc

log = logging.getLogger(__name__)

Status = dict[str, Any]
StatusSink = Callable[[str, str, Status], Awaitable[None]]  # (namespace, name, status)
Attempt = tuple[dict[TreeKey, str], str]  # the input commits and the pipeline version
Elsewhere = Callable[[PipelineDoc], str]  # why the pipeline runs on another host, or ""
OnJob = Callable[[JobResult], Awaitable[None]]


def _runs_here(doc: PipelineDoc) -> str:
    return ""


@dataclass
class _Pipeline:
    namespace: str
    name: str
    doc: PipelineDoc | None  # None: refused (see ``problem``)
    generation: int
    problem: str = ""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    active: bool = False  # looking at its inputs or running a job
    loaded: bool = False
    previous: JobResult | None = None  # the last successful job: what the next plans against
    last_attempt: Attempt | None = None  # of the last job that ran to an end
    task: asyncio.Task[object] | None = None

    @property
    def busy(self) -> bool:
        return self.active or self.wake.is_set()

    def reads(self) -> set[str]:
        return set(self.doc.input.repos()) if self.doc is not None else set()


def is_cloud_placed(doc: PipelineDoc) -> bool:
    placement = doc.pipeline.spec.placement
    return placement is None or placement == "cloud"


def upstream_of(names: Iterable[str], reads: Callable[[str], Iterable[str] | None]) -> set[str]:
    """``names`` and every pipeline they read from, transitively; ``reads(name)`` gives the
    repos a pipeline reads (a pipeline's output repo has its name), None for a repo that no
    pipeline writes."""
    found: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        inputs = None if name in found else reads(name)
        if inputs is None:
            continue
        found.add(name)
        todo.extend(inputs)
    return found


class Scheduler:
    def __init__(
        self,
        repos: Repos,
        store: JobStore,
        runner: JobRunner,
        supervisor: Supervisor,
        *,
        max_running_jobs: int,
        on_status: StatusSink,
        elsewhere: Elsewhere = _runs_here,
        on_job: OnJob | None = None,
        on_commit: Callable[[str], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._repos = repos
        self._store = store
        self._runner = runner
        self._supervisor = supervisor
        self._slots = asyncio.Semaphore(max_running_jobs)
        self._on_status = on_status
        self._elsewhere = elsewhere
        self._on_job = on_job
        self._on_commit = on_commit
        self._clock = clock or SystemClock()
        self._pipelines: dict[str, _Pipeline] = {}
        self._changed = asyncio.Condition()
        self._starts = 0

    # ---- fed by the watcher and the file API ---------------------------------------------

    async def upsert(
        self, namespace: str, name: str, doc: PipelineDoc | None, generation: int, problem: str
    ) -> None:
        """A Pipeline object was listed, added or changed (``doc`` None: it is invalid)."""
        current = self._pipelines.get(name)
        if current is not None and current.namespace != namespace:
            why = f"pipeline name {name!r} is already used in namespace {current.namespace!r}"
            await self._on_status(namespace, name, {"state": "failure", "message": why})
            return
        if current is not None and current.generation == generation:
            return  # a status write (ours) or a label change: nothing to run
        await self._restart(namespace, name, doc, generation, problem)

    async def rehost(self, name: str) -> None:
        """Where pipeline ``name`` runs may have changed (``elsewhere`` answers otherwise now):
        its running job is cancelled (recorded ``killed``) and it looks again."""
        state = self._pipelines.get(name)
        if state is not None:
            await self._restart(state.namespace, name, state.doc, state.generation, state.problem)

    async def _restart(
        self, namespace: str, name: str, doc: PipelineDoc | None, generation: int, problem: str
    ) -> None:
        current = self._pipelines.get(name)
        before = current.task if current is not None else None
        if before is not None:
            before.cancel()  # a new spec: a running job is of the old one
        state = _Pipeline(namespace, name, doc, generation, problem)
        self._pipelines[name] = state
        state.wake.set()
        loop = self._loop(state, before)
        self._starts += 1  # a rehost starts the same generation again
        task_name = f"pipeline/{name}/{generation}/{self._starts}"
        state.task = self._supervisor.start(loop, name=task_name)
        async with self._changed:
            self._changed.notify_all()

    async def remove(self, namespace: str, name: str) -> None:
        state = self._pipelines.get(name)
        if state is None or state.namespace != namespace:
            return
        del self._pipelines[name]
        if state.task is not None:
            state.task.cancel()
        async with self._changed:
            self._changed.notify_all()

    def commit_finished(self, repo: str) -> None:
        """A commit was finished on ``repo``: wake every pipeline that reads it (and tell
        ``on_commit``, e.g. the cloud's Copier publisher)."""
        if self._on_commit is not None:
            self._on_commit(repo)
        for state in self._pipelines.values():
            if repo in state.reads():
                state.wake.set()

    # ---- waiting ---------------------------------------------------------------------------

    async def wait_seen(self, name: str, generation: int) -> None:
        """Until the scheduler holds pipeline ``name`` at ``generation`` or later."""

        def seen() -> bool:
            state = self._pipelines.get(name)
            return state is not None and state.generation >= generation

        async with self._changed:
            await self._changed.wait_for(seen)

    async def wait_idle(self, names: list[str] | None = None) -> None:
        """Until the named pipelines (all when None) and those upstream of them are idle."""
        for name in names or ():
            if name not in self._pipelines:
                raise NotFound(f"no pipeline {name!r}")

        def idle() -> bool:
            wanted = self._upstream(names)
            return not any(s.busy for n, s in self._pipelines.items() if n in wanted)

        async with self._changed:
            await self._changed.wait_for(idle)

    def _upstream(self, names: list[str] | None) -> set[str]:
        if names is None:
            return set(self._pipelines)
        pipelines = self._pipelines
        return upstream_of(names, lambda n: pipelines[n].reads() if n in pipelines else None)

    # ---- the loops -------------------------------------------------------------------------

    async def _loop(self, state: _Pipeline, before: asyncio.Task[object] | None) -> None:
        if before is not None:  # the old spec's job deletes its output commit first
            await asyncio.wait([before])
        doc = state.doc
        if doc is None or not doc.crons or self._elsewhere(doc):
            await self._jobs(state)
            return
        tickers = [
            CronTicker(self._repos, state.name, cron, self._clock, self.commit_finished)
            for cron in doc.crons
        ]
        try:  # the repos exist before the first look
            latest = [await ticker.prepare() for ticker in tickers]
        except EdgeweaveError as e:
            await self._status(state, {"state": "failure", "message": e.message})
            return
        async with asyncio.TaskGroup() as tasks:
            ticks = [
                tasks.create_task(t.run(at), name=f"pipeline/{state.name}/cron/{t.repo}")
                for t, at in zip(tickers, latest, strict=True)
            ]
            await self._jobs(state)
            for tick in ticks:
                tick.cancel()

    async def _jobs(self, state: _Pipeline) -> None:
        while self._pipelines.get(state.name) is state:
            await state.wake.wait()
            state.active = True  # before the flag clears: a waiter never sees a gap
            state.wake.clear()
            try:
                await self._look(state)
            except EdgeweaveError as e:
                await self._status(state, {"state": "failure", "message": e.message})
            except Exception:  # a bug: this pipeline stops; the others go on
                log.exception("pipeline %s: job loop failed", state.name)
                await self._status(state, {"state": "failure", "message": "internal error"})
                return
            finally:
                state.active = False
                async with self._changed:
                    self._changed.notify_all()

    async def _look(self, state: _Pipeline) -> None:
        doc = state.doc
        if doc is None:
            await self._status(state, {"state": "failure", "message": state.problem})
            return
        message = self._elsewhere(doc)
        if message:
            await self._status(state, {"state": "waiting", "message": message})
            return
        if not state.loaded:
            state.previous = await self._store.previous(state.name)
            last = await self._store.last_job(state.name)
            if last is not None:
                state.last_attempt = ({(r, b): c for r, b, c in last.inputs}, last.version)
            state.loaded = True
        attempt = (await self._inputs(doc), doc.version)
        if not any(attempt[0].values()):
            await self._status(state, {"state": "idle", "message": "waiting for input commits"})
            return
        if attempt == state.last_attempt:
            return
        previous = await self._still_there(state.previous)
        async with self._slots:
            await self._status(state, {"state": "running", "message": ""})
            job = await run_recorded(self._runner, self._store, doc, previous)
        info = await self._store.job(job.id)
        if self._on_job is not None:
            await self._on_job(job)
        state.last_attempt = ({(r, b): c for r, b, c in info.inputs}, info.version)
        summary = {
            "id": job.id,
            "state": job.state,
            "processed": job.processed,
            "skipped": job.skipped,
            "total": job.total,
        }
        if job.state == "success":
            state.previous = job
            self.commit_finished(state.name)  # downstream first, so waiters never see a gap
            await self._status(state, {"state": "idle", "message": "", "lastJob": summary})
        else:
            await self._status(
                state, {"state": "failure", "message": job.error, "lastJob": summary}
            )

    async def _inputs(self, doc: PipelineDoc) -> dict[TreeKey, str]:
        inputs: dict[TreeKey, str] = {}
        for repo, branch in tree_keys(doc.input):
            try:
                info = await self._repos.latest(repo, branch)
            except NotFound:
                raise NotFound(
                    f"input repo {repo!r} does not exist; create it with "
                    f"`edgeweave repo create {repo}`"
                ) from None
            inputs[(repo, branch)] = info.id if info is not None else ""
        return inputs

    async def _still_there(self, previous: JobResult | None) -> JobResult | None:
        """``previous`` unless its output commit is gone (output repo deleted): then the next
        job starts from nothing instead of carrying over outputs that no longer exist."""
        if previous is None or previous.output_commit is None:
            return previous
        try:
            await self._repos.inspect_commit(previous.output_commit)
        except NotFound:
            return None
        return previous

    async def _status(self, state: _Pipeline, status: Status) -> None:
        status = {**status, "outputRepo": state.name}
        try:
            await self._on_status(state.namespace, state.name, status)
        except EdgeweaveError as e:
            log.warning("pipeline %s: cannot write its status: %s", state.name, e.message)
