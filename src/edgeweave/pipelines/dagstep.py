"""One try of one workflow step, run as a job of the pipeline engine.

A step is a pipeline whose input is the completion of its upstream steps (DESIGN.md §6):
each try is one datum whose parts are the whole output commits of the upstream steps
(glob ``/``), mounted under ``/pfs/<upstream step>`` — present even when the upstream wrote
nothing — run by the same :class:`DatumRunner` as any datum (argv, no shell; ``/pfs/out``;
``timeout``; its log), and recorded in the job store as a job of pipeline
``<workflow>.<step>`` with a :class:`TaskRef` (workflow, namespace, run, step, try), so
``job list``, ``job inspect``, ``datum list`` and ``logs --job`` show it. A step with no
upstream has no input files.

Outputs: the repo named after the workflow holds one branch per step; a successful try
finishes a new commit on its step's branch holding exactly what it wrote to ``/pfs/out``
(nothing is carried over from the previous run), with provenance naming the upstream
commits and the step's version. Its id is what the downstream steps read. Commits to one
branch take turns (one open commit per branch), so concurrent runs of a workflow do not
collide. A failed try publishes nothing. Lineage follows files across steps like across
pipelines.

The step's environment: the runner's base, ``PARAM_<NAME>`` per run parameter, the step's
``env`` (``{{params.NAME}}`` substituted), ``EDGEWEAVE_WORKFLOW``, ``EDGEWEAVE_RUN``,
``EDGEWEAVE_STEP``, ``EDGEWEAVE_TRY``; ``{{params.NAME}}`` is also replaced in each argv
element. Must not decide when a step runs (``dag.py`` does) or know the cloud or the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from edgeweave.errors import AlreadyExists, Conflict, NotFound, PipelineError
from edgeweave.models.pipelines import Transform
from edgeweave.models.workflows import Step
from edgeweave.pipelines.dag import TryOutcome
from edgeweave.pipelines.dagspec import step_argv, step_env
from edgeweave.pipelines.datums import Datum, DatumPart, make_datum
from edgeweave.pipelines.glob import GlobMatch
from edgeweave.pipelines.jobinfo import TaskRef
from edgeweave.pipelines.jobs import JobResult, datum_summary
from edgeweave.pipelines.jobstore import JobStore
from edgeweave.pipelines.outputs import OutputWriter
from edgeweave.pipelines.plan import DatumHistory, DatumRecord, DatumState
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.runner import DatumContext, DatumResult, DatumRunner
from edgeweave.pipelines.spec import RunSettings

REPO_DESCRIPTION = "outputs of workflow {name}: one branch per step"


@dataclass(frozen=True)
class RunRef:
    """The run a try belongs to."""

    workflow: str
    namespace: str
    run: str
    params: Mapping[str, str]


def step_pipeline(workflow: str, step: str) -> str:
    """The pipeline name a step's jobs are recorded under."""
    return f"{workflow}.{step}"


def step_version(step: Step, argv: list[str], env: Mapping[str, str]) -> str:
    doc = {"cmd": argv, "env": dict(env), "timeout": step.timeout}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class StepRunner:
    def __init__(self, repos: Repos, jobs: JobStore, runner: DatumRunner) -> None:
        self._repos = repos
        self._jobs = jobs
        self._runner = runner
        self._branch_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def ensure_repo(self, workflow: str) -> None:
        """The workflow's output repo, created when missing; Conflict when a repo of that
        name exists that is not a workflow's."""
        description = REPO_DESCRIPTION.format(name=workflow)
        try:
            await self._repos.create_repo(workflow, description)
            return
        except AlreadyExists:
            pass
        for info in await self._repos.repo_infos():
            if info.name == workflow and info.description != description:
                raise Conflict(
                    f"repo {workflow!r} exists and does not hold workflow {workflow!r}'s outputs; "
                    "rename the workflow or delete the repo"
                )

    async def run_try(
        self, ref: RunRef, step: Step, attempt: int, upstream: Mapping[str, str]
    ) -> TryOutcome:
        argv = step_argv(step, ref.params)
        env = step_env(step, ref.params)
        env.update(
            EDGEWEAVE_WORKFLOW=ref.workflow,
            EDGEWEAVE_RUN=ref.run,
            EDGEWEAVE_STEP=step.name,
            EDGEWEAVE_TRY=str(attempt),
        )
        version = step_version(step, argv, env)
        datum = await self._datum(ref, step, upstream, version)
        job = JobResult(
            uuid.uuid4().hex,
            step_pipeline(ref.workflow, step.name),
            "success",
            {(ref.workflow, name): commit for name, commit in upstream.items()},
            DatumHistory(version),
            version=version,
            input_commits=dict(upstream),
            started_at=time.time(),
            total=1,
        )
        task = TaskRef(ref.workflow, ref.namespace, ref.run, step.name, attempt, step.tries)
        await self._jobs.start_job(job, task)
        try:
            return await self._run(ref, step, datum, job, argv, env)
        except BaseException as e:
            why = "cancelled" if not isinstance(e, Exception) else f"internal error: {e!r}"
            await self._jobs.end_job(job.id, "killed", why, time.time())
            raise
        finally:
            await self._runner.cleanup_job(job.id)

    async def _run(
        self,
        ref: RunRef,
        step: Step,
        datum: Datum,
        job: JobResult,
        argv: list[str],
        env: dict[str, str],
    ) -> TryOutcome:
        transform = Transform(cmd=argv, env=env)
        settings = RunSettings(
            datum_tries=1,
            datum_timeout_s=step.timeout_s,
            job_timeout_s=None,
            every_job=True,
            parallelism=1,
        )
        ctx = DatumContext(job.id, "", job.input_commits)
        started_at = time.time()
        result = await self._runner.run(datum, transform, settings, ctx)
        try:
            if result.state == DatumState.SUCCESS:
                job.output_commit = await self._publish(ref, step, job, result)
                job.processed = 1
                if datum.parts:  # lineage: the upstream files this output came from
                    paths = tuple(o.path for o in result.outputs)
                    record = DatumRecord(datum.hash, DatumState.SUCCESS, datum.identity, paths)
                    job.history.record(datum.id, record)
            else:
                job.state, job.failed = "failure", 1
                job.error = result.error.split(": ", 1)[-1] if result.error else "failed"
            summary = datum_summary(datum, result, started_at)
            job.datums.append(summary)
            await self._jobs.record_datum(job.id, summary)
        finally:
            await self._runner.cleanup(result)
        job.finished_at = time.time()
        await self._jobs.finish_job(job, None)
        return TryOutcome(
            job.state == "success", job.id, job.finished_at, job.output_commit, job.error
        )

    async def _datum(
        self, ref: RunRef, step: Step, upstream: Mapping[str, str], version: str
    ) -> Datum:
        parts = []
        for name, commit in upstream.items():
            try:
                tree = await self._repos.tree(commit)
            except NotFound:
                raise PipelineError(
                    f"step {step.name!r}: the output commit {commit} of upstream step "
                    f"{name!r} is gone"
                ) from None
            parts.append(DatumPart(name, ref.workflow, tree, GlobMatch("/", 0, len(tree.paths))))
        if parts:
            return make_datum(tuple(parts), version)
        ident = hashlib.sha256(step_pipeline(ref.workflow, step.name).encode()).hexdigest()
        return Datum(ident, hashlib.sha256(f"{version}{ident}".encode()).hexdigest(), "", ())

    async def _publish(self, ref: RunRef, step: Step, job: JobResult, result: DatumResult) -> str:
        """A new commit on the step's branch holding exactly the try's outputs."""
        provenance = [f"{ref.workflow}@{c}" for c in job.input_commits.values() if c]
        provenance.append(f"pipeline:{job.pipeline}@{job.version}")
        async with self._branch_locks.setdefault((ref.workflow, step.name), asyncio.Lock()):
            info = await self._repos.start_commit(
                ref.workflow, step.name, origin="auto", provenance=provenance
            )
            writer = OutputWriter(self._repos, info.id)
            try:
                with contextlib.suppress(NotFound):
                    await self._repos.delete_file(info.id, "/")  # the previous run's outputs
                await writer.add(result.outputs)
                await writer.drain()
                await self._repos.finish_commit(info.id)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._repos.delete_commit(info.id)
                raise
            finally:
                await writer.close()
        return info.id
