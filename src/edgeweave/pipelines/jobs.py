"""A job: one run of a pipeline over the latest commits of its inputs (COMPAT.md §3 rules).

:meth:`JobRunner.run_job` does, in order:

1. read the newest finished commit of every input branch and its file tree;
2. plan against the previous job (:class:`JobResult` of the last run): incrementally from the
   paths that changed between the two jobs' input commits when it can, else in full;
3. open a commit on the output repo (named after the pipeline, created when missing) whose
   parent is the previous output, with ``origin: auto`` and provenance naming every input
   commit and the pipeline version; delete from it the outputs of datums that run again or
   went away — the outputs of skipped datums stay, untouched. When the branch head is not
   the previous job's output (another host — a cloud worker, or the cloud's own worker — ran
   the pipeline meanwhile), the commit first gets the previous job's files (none without a
   previous job): those are what the plan carries over;
4. run the datums (``parallelism_spec.constant`` at a time) with :class:`DatumRunner` (or,
   under ``datum_batching``, streamed through one long-lived process per slot:
   ``batchjob.py``) and put each datum's ``/pfs/out`` files into the output commit as it ends
   (small files group-committed with other datums': ``outputs.py``). Two datums writing one
   path — both in this job, or one here and one skipped — fail the job with an error naming
   both datums;
5. finish the output commit. A job that fails (a datum failed after its tries and was not
   recovered by ``err_cmd``, an output collision, ``job_timeout``) deletes its output commit and
   hands the previous job's state on, so the next job plans against the last good one.

The history a job returns records, per datum, its hash, state and output paths: which datum
(and so which input files) wrote each output file — the file-level lineage.

A :class:`JobObserver` hears of the job once it is planned (its output commit open) and of
the datums as they end, in groups, each datum once its outputs are durable in the output
commit, so a host can persist and show progress (``jobstore.JobRecorder``).

A host decides when to call ``run_job`` (``scheduler.py``); a cron input is planned as the pfs
input of its tick repo (``PipelineDoc.input``).
This module must not know where it runs (cloud or edge) or talk to the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from edgeweave.errors import NotFound, PipelineError
from edgeweave.pipelines.batchjob import Finished, run_batched_job
from edgeweave.pipelines.datums import (
    Datum,
    TreeKey,
    describe_identity,
    enumerate_datums,
    pfs_inputs,
    tree_keys,
)
from edgeweave.pipelines.incremental import plan_incremental
from edgeweave.pipelines.outputs import Committed, OutputWriter
from edgeweave.pipelines.plan import DatumHistory, DatumPlan, DatumRecord, DatumState, plan_datums
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.runner import DatumContext, DatumResult, DatumRunner
from edgeweave.pipelines.spec import PipelineDoc, RunSettings, run_settings
from edgeweave.pipelines.trees import FileTree


@dataclass(frozen=True)
class DatumSummary:
    id: str
    name: str  # input:path of each part
    state: DatumState
    attempts: int
    duration_s: float
    error: str = ""
    log_path: str = ""  # the code's stdout/stderr and the runner's notes (kept after the job;
    # "": the datum logged nothing, so no file was made)
    started_at: float = 0.0  # Unix seconds
    bytes_in: int = 0  # of the datum's input files
    bytes_out: int = 0  # of what it wrote to /pfs/out
    log_tail: str = ""  # the end of the log (see runner.LOG_TAIL_BYTES)
    items_in: int = 0  # input files
    filtered: str = ""  # a Filter's verdict: "passed" or "dropped" ("" for other pipelines)


@dataclass
class JobResult:
    id: str
    pipeline: str
    state: Literal["success", "failure"]
    inputs: dict[TreeKey, str]  # the input commits this job read ("" when a branch had none)
    history: DatumHistory  # the datum records the next job plans against
    output_commit: str | None = None
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    recovered: int = 0
    total: int = 0  # datums of the job: those it runs and those it skips
    incremental: bool = False
    error: str = ""
    datums: list[DatumSummary] = field(default_factory=list)
    version: str = ""  # the pipeline version it ran
    input_commits: dict[str, str] = field(default_factory=dict)  # input name → commit read
    started_at: float = 0.0  # Unix seconds
    finished_at: float = 0.0


class JobObserver(Protocol):
    """What a host hears while a job runs (both may be called before the job ends)."""

    async def job_planned(self, job: JobResult) -> None:
        """The plan is made and the output commit opened: ``total``, ``skipped``,
        ``inputs`` and ``output_commit`` are set."""
        ...

    async def datums_finished(self, job: JobResult, datums: Sequence[DatumSummary]) -> None:
        """Datums ended, their outputs are in the output commit (``datums`` are also in
        ``job.datums``)."""
        ...


class JobRunner:
    def __init__(self, repos: Repos, runner: DatumRunner) -> None:
        self._repos = repos
        self._runner = runner

    async def run_job(
        self,
        doc: PipelineDoc,
        previous: JobResult | None = None,
        *,
        observer: JobObserver | None = None,
    ) -> JobResult:
        spec = doc.pipeline.spec
        version = doc.version
        settings = run_settings(spec)
        started_at = time.time()
        inputs, trees = await self._read_inputs(doc)
        plan = await self._plan(doc, trees, inputs, previous, settings)
        job = JobResult(uuid.uuid4().hex, doc.name, "success", inputs, DatumHistory(version))
        job.incremental, job.skipped, job.total = plan.incremental, plan.skipped, plan.total
        job.version, job.started_at = version, started_at
        job.input_commits = _input_commits(doc, inputs)
        base = previous.history.copy(version) if previous is not None else DatumHistory(version)
        out = await self._open_output(doc, inputs, version, previous)
        job.output_commit = out
        history = base
        try:
            if observer is not None:
                await observer.job_planned(job)
            await self._drop_stale_outputs(out, history, plan)
            ctx = DatumContext(job.id, out, job.input_commits)
            async with asyncio.timeout(settings.job_timeout_s):
                await self._run_datums(plan.run, doc, settings, ctx, history, job, observer)
        except PipelineError as e:
            job.error = e.message
        except TimeoutError:
            job.error = f"job_timeout of {settings.job_timeout_s:g}s exceeded"
        except BaseException:
            with contextlib.suppress(Exception):
                await self._repos.delete_commit(out)
            raise
        finally:
            await self._runner.cleanup_job(job.id)
            job.finished_at = time.time()
        if job.failed or job.error:
            await self._repos.delete_commit(out)
            job.state, job.output_commit = "failure", None
            job.error = job.error or f"{job.failed} datum(s) failed"
            job.inputs = previous.inputs if previous is not None else {}
            job.history = previous.history if previous is not None else DatumHistory(version)
            return job
        await self._repos.finish_commit(out)
        job.history = history
        return job

    async def _read_inputs(
        self, doc: PipelineDoc
    ) -> tuple[dict[TreeKey, str], dict[TreeKey, FileTree]]:
        inputs: dict[TreeKey, str] = {}
        trees: dict[TreeKey, FileTree] = {}
        for key in tree_keys(doc.input):
            try:
                info = await self._repos.latest(*key)
            except NotFound as e:
                raise PipelineError(f"pipeline {doc.name!r}: input {e.message}") from None
            inputs[key] = info.id if info is not None else ""
            trees[key] = await self._repos.tree(info.id) if info is not None else FileTree()
        return inputs, trees

    async def _plan(
        self,
        doc: PipelineDoc,
        trees: dict[TreeKey, FileTree],
        inputs: dict[TreeKey, str],
        previous: JobResult | None,
        settings: RunSettings,
    ) -> DatumPlan:
        spec_input = doc.input
        if previous is not None and previous.inputs:
            changed = await self._changed(inputs, previous.inputs, trees)
            if changed is not None:
                plan = plan_incremental(
                    spec_input,
                    trees,
                    changed,
                    previous.history,
                    doc.version,
                    every_job=settings.every_job,
                )
                if plan is not None:
                    return plan
        history = previous.history if previous is not None else None
        datums = enumerate_datums(spec_input, trees, doc.version)
        return plan_datums(datums, history, every_job=settings.every_job)

    async def _changed(
        self, now: dict[TreeKey, str], before: dict[TreeKey, str], trees: dict[TreeKey, FileTree]
    ) -> dict[TreeKey, Sequence[str]] | None:
        changed: dict[TreeKey, Sequence[str]] = {}
        for key, commit in now.items():
            old = before.get(key)
            if old is None:
                return None  # an input the previous job did not read
            if old == commit:
                continue
            if not old:
                changed[key] = trees[key].paths
            elif not commit:
                return None
            else:
                try:
                    changed[key] = await self._repos.changed_paths(old, commit)
                except NotFound:
                    return None  # the previous input commit was deleted
        return changed

    async def _open_output(
        self,
        doc: PipelineDoc,
        inputs: dict[TreeKey, str],
        version: str,
        previous: JobResult | None,
    ) -> str:
        if doc.name not in await self._repos.list_repos():
            await self._repos.create_repo(doc.name, f"output of pipeline {doc.name}")
        provenance = [f"{repo}@{commit}" for (repo, _), commit in inputs.items() if commit]
        provenance.append(f"pipeline:{doc.name}@{version}")
        info = await self._repos.start_commit(doc.name, origin="auto", provenance=provenance)
        base = previous.output_commit if previous is not None else None
        if info.parent != base:
            try:
                await self._rebase(info.id, info.parent, base)
            except BaseException:
                await self._repos.delete_commit(info.id)
                raise
        return info.id

    async def _rebase(self, out: str, parent: str | None, base: str | None) -> None:
        """Make the open output commit hold ``base``'s files (the previous job's output, or
        nothing) where its branch head ``parent`` is another commit: another host ran the
        pipeline meanwhile (a cloud worker, the cloud's own worker). The plan is made against
        the previous job, so the outputs it carries over must be that job's."""
        have = await self._repos.tree(parent) if parent is not None else FileTree()
        want = await self._repos.tree(base) if base is not None else FileTree()
        wanted = dict(zip(want.paths, zip(want.digests, want.sizes, strict=True), strict=True))
        held = dict(zip(have.paths, zip(have.digests, have.sizes, strict=True), strict=True))
        puts = [(p, d, size) for p, (d, size) in wanted.items() if held.get(p) != (d, size)]
        gone = [p for p in held if p not in wanted]
        if puts or gone:
            await self._repos.put_entries(out, puts, gone)

    async def _drop_stale_outputs(self, out: str, history: DatumHistory, plan: DatumPlan) -> None:
        doomed: list[str] = []
        for datum_id in [*plan.removed, *(d.id for d in plan.run)]:
            record = history.drop(datum_id)
            if record is not None:
                doomed.extend(record.outputs)
        for path in doomed:
            try:
                await self._repos.delete_file(out, path)
            except NotFound:
                continue  # an output already gone (a parent deleted by hand)

    async def _run_datums(
        self,
        datums: list[Datum],
        doc: PipelineDoc,
        settings: RunSettings,
        ctx: DatumContext,
        history: DatumHistory,
        job: JobResult,
        observer: JobObserver | None,
    ) -> None:
        record_lock = asyncio.Lock()
        transform = doc.pipeline.spec.transform
        writer = OutputWriter(self._repos, ctx.output_commit_id)

        async def report(summaries: list[DatumSummary], committed: Committed | None) -> None:
            if committed is not None:
                await committed.wait()  # a datum reported done has its outputs durable
            if observer is not None:
                await observer.datums_finished(job, summaries)

        async def record(group: list[Finished]) -> None:  # batched: roots already removed
            async with record_lock:
                summaries, committed = await self._record(group, writer, history, job)
            await report(summaries, committed)

        slots = asyncio.Semaphore(settings.parallelism)

        async def one(datum: Datum) -> None:
            async with slots:
                started_at = time.time()
                result = await self._runner.run(datum, transform, settings, ctx)
            try:
                async with record_lock:
                    done = [Finished(datum, result, started_at)]
                    summaries, committed = await self._record(done, writer, history, job)
            finally:
                await self._runner.cleanup(result)
            await report(summaries, committed)

        try:
            try:
                if settings.batching:
                    await run_batched_job(self._runner, datums, transform, settings, ctx, record)
                else:
                    async with asyncio.TaskGroup() as tasks:
                        for datum in datums:
                            tasks.create_task(one(datum), name=f"datum-{datum.id[:12]}")
            except* PipelineError as group:
                raise group.exceptions[0] from None
            await writer.drain()
        finally:
            await writer.close()

    async def _record(
        self,
        group: list[Finished],
        writer: OutputWriter,
        history: DatumHistory,
        job: JobResult,
    ) -> tuple[list[DatumSummary], Committed | None]:
        """Count, check and record ``group`` in ``history`` and queue its outputs; the
        summaries, and when the outputs queued will be committed."""
        summaries: list[DatumSummary] = []
        committed: Committed | None = None
        for datum, result, started_at in ((f.datum, f.result, f.started_at) for f in group):
            summary = _summary(datum, result, started_at)
            job.datums.append(summary)
            summaries.append(summary)
            if result.state == DatumState.FAILED:
                job.failed += 1
            elif result.state == DatumState.RECOVERED:
                job.recovered += 1
            else:
                job.processed += 1
                for output in result.outputs:
                    owner = history.owners.get(output.path)
                    if owner is not None and owner != datum.id:
                        other = describe_identity(history.datums[owner].identity)
                        raise PipelineError(
                            f"datums {other} and {datum.describe()} both wrote {output.path}; "
                            "each output path must come from one datum"
                        )
                committed = await writer.add(result.outputs)
            history.record(
                datum.id,
                DatumRecord(
                    datum.hash, result.state, datum.identity, tuple(o.path for o in result.outputs)
                ),
            )
        return summaries, committed


def _summary(datum: Datum, result: DatumResult, started_at: float) -> DatumSummary:
    return DatumSummary(
        id=datum.id,
        name=datum.describe(),
        state=result.state,
        attempts=result.attempts,
        duration_s=result.duration_s,
        error=result.error,
        log_path=str(result.log_path) if result.logged else "",
        started_at=started_at,
        bytes_in=sum(size for _, _, _, size in datum.files()),
        bytes_out=sum(o.size for o in result.outputs),
        log_tail=result.log_tail,
        items_in=sum(1 for _ in datum.files()),
        filtered=result.filtered,
    )


def _input_commits(doc: PipelineDoc, inputs: dict[TreeKey, str]) -> dict[str, str]:
    return {
        pfs.input_name(): inputs.get((pfs.repo, pfs.branch or "master"), "")
        for pfs in pfs_inputs(doc.input)
    }
