"""Persistence of jobs, datum records and file-level lineage: ``DATA/jobs.db`` (SQLite).

A host runs each job with a :class:`JobRecorder` as the job's observer: the job is stored
``running`` once planned, the datums' records as they end (so progress is visible while the job
runs), and :meth:`JobStore.finish_job` stores the outcome and — for a successful job — the new
datum history versions (tables in ``jobsql.py``). After a restart :meth:`JobStore.previous`
gives the :class:`~edgeweave.pipelines.jobs.JobResult` the next job plans against, so
incremental processing survives restarts; :meth:`JobStore.interrupt_running` marks the jobs a
stopped host left ``running`` as ``killed``.

The cloud also keeps the jobs edge nodes report (:meth:`JobStore.record_reported`, from
``jobreport.py``): stored with the node's name, listed with the cloud's own jobs, never
planned against or interrupted here. Their datums' output paths are kept for lineage (a
Merger's node-branch commit, a cloud worker's pushed output, is a reported job's output
commit); :meth:`JobStore.datum_lineage` gives the node what to report.

Lineage (``lineage.py``) asks :meth:`JobStore.job_for_output` which job (of this host, or
reported) made a commit and :meth:`JobStore.output_owner` which datum wrote a path in it.

Must not: read or write repos (the caller deletes the output commits of killed jobs), run
anything, or import :mod:`sqlite3` (the SQLite kit does).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from edgeweave.aio.sqlite import SQLiteThread
from edgeweave.pipelines.datums import TreeKey
from edgeweave.pipelines.jobinfo import DatumInfo, FilterCounts, JobInfo, OutputOwner, TaskRef
from edgeweave.pipelines.jobreport import DatumLineage, JobReport
from edgeweave.pipelines.jobs import DatumSummary, JobResult, JobRunner
from edgeweave.pipelines.jobsql import (
    JOB_SELECT,
    SCHEMA,
    current_history,
    datum_lineage,
    datum_rows,
    filter_json,
    find_job,
    job_info,
    migrate,
    owner_at,
    reported_owner_at,
    upsert_reported,
    write_history,
)
from edgeweave.pipelines.plan import DatumHistory, DatumState
from edgeweave.pipelines.spec import PipelineDoc

_COUNTER = {
    DatumState.SUCCESS: "processed",
    DatumState.FAILED: "failed",
    DatumState.RECOVERED: "recovered",
}


class JobStore:
    def __init__(self, path: Path) -> None:
        self._sql = SQLiteThread(
            path,
            name="job store",
            thread_name="edgeweave-jobs",
            pragmas={"journal_mode": "WAL", "synchronous": "NORMAL"},
            schema=SCHEMA,
        )

    async def open(self) -> None:
        await self._sql.open()

        def run() -> None:
            with self._sql.transaction() as db:
                migrate(db)

        await self._sql.run(run)

    async def aclose(self) -> None:
        await self._sql.aclose()

    # ---- writing, as a job runs ------------------------------------------------------------

    async def start_job(self, job: JobResult, task: TaskRef | None = None) -> None:
        """Store ``job`` as ``running`` (``task``: the workflow step try it is)."""
        inputs = json.dumps([[r, b, c] for (r, b), c in job.inputs.items()])
        task_json = json.dumps(task.as_json()) if task is not None else ""

        def run() -> None:
            with self._sql.transaction() as db:
                db.execute(
                    "INSERT INTO jobs (id, pipeline, version, state, started_at, output_commit, "
                    "inputs, input_commits, total, skipped, incremental, task) "
                    "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job.id,
                        job.pipeline,
                        job.version,
                        job.started_at,
                        job.output_commit,
                        inputs,
                        json.dumps(job.input_commits),
                        job.total,
                        job.skipped,
                        int(job.incremental),
                        task_json,
                    ),
                )

        await self._sql.run(run)

    async def record_datum(self, job_id: str, datum: DatumSummary) -> None:
        await self.record_datums(job_id, [datum])

    async def record_datums(self, job_id: str, datums: Sequence[DatumSummary]) -> None:
        """Store datums that ended and count them into their job, in one transaction."""

        def run() -> None:
            with self._sql.transaction() as db:
                seq = find_job(db, job_id).seq
                db.executemany(
                    "INSERT OR REPLACE INTO datums VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            seq,
                            d.id,
                            d.name,
                            str(d.state),
                            d.attempts,
                            d.started_at,
                            d.duration_s,
                            d.bytes_in,
                            d.bytes_out,
                            d.error,
                            d.log_tail,
                            d.log_path,
                            d.filtered,
                        )
                        for d in datums
                    ],
                )
                for d in datums:
                    counter = _COUNTER[d.state]
                    db.execute(
                        f"UPDATE jobs SET {counter} = {counter} + 1, bytes_in = bytes_in + ?, "  # noqa: S608
                        "bytes_out = bytes_out + ? WHERE seq = ?",
                        (d.bytes_in, d.bytes_out, seq),
                    )

        await self._sql.run(run)

    async def finish_job(self, job: JobResult, planned_against: DatumHistory | None) -> JobInfo:
        """Store how ``job`` ended; for a success also its datum history versions.
        ``planned_against`` is the history the job was planned on (None: it planned in full
        with nothing before, so every open version closes)."""
        ran = [(d.id, job.history.datums[d.id]) for d in job.datums if d.id in job.history.datums]
        removed = None
        if planned_against is not None:
            removed = [i for i in planned_against.datums if i not in job.history.datums]
        bytes_in = sum(d.bytes_in for d in job.datums)
        bytes_out = sum(d.bytes_out for d in job.datums)
        counts = filter_counts(job.datums)

        def run() -> JobInfo:
            with self._sql.transaction() as db:
                seq = find_job(db, job.id).seq
                db.execute(
                    "UPDATE jobs SET state = ?, finished_at = ?, output_commit = ?, error = ?, "
                    "total = ?, processed = ?, skipped = ?, failed = ?, recovered = ?, "
                    "bytes_in = ?, bytes_out = ?, filter = ? WHERE seq = ?",
                    (
                        job.state,
                        job.finished_at,
                        job.output_commit,
                        job.error,
                        job.total,
                        job.processed,
                        job.skipped,
                        job.failed,
                        job.recovered,
                        bytes_in,
                        bytes_out,
                        filter_json(counts),
                        seq,
                    ),
                )
                if job.state == "success":
                    write_history(db, job.pipeline, seq, ran, removed)
                return find_job(db, job.id)

        return await self._sql.run(run)

    async def end_job(self, job_id: str, state: str, error: str, now: float) -> None:
        """End a job that did not finish normally (``killed``): nothing is published."""

        def run() -> None:
            with self._sql.transaction() as db:
                db.execute(
                    "UPDATE jobs SET state = ?, error = ?, finished_at = ?, output_commit = NULL "
                    "WHERE id = ? AND state = 'running'",
                    (state, error, now, job_id),
                )

        await self._sql.run(run)

    async def interrupt_running(self, now: float) -> list[JobInfo]:
        """Mark every ``running`` job ``killed`` (after a restart); returns them as they were
        (with their output commits, which the caller deletes)."""

        def run() -> list[JobInfo]:
            with self._sql.transaction() as db:
                jobs = [
                    job_info(r)
                    for r in db.execute(f"{JOB_SELECT} WHERE state = 'running' AND node = ''")
                ]
                db.execute(
                    "UPDATE jobs SET state = 'killed', finished_at = ?, output_commit = NULL, "
                    "error = 'the host stopped while the job ran' "
                    "WHERE state = 'running' AND node = ''",
                    (now,),
                )
                return jobs

        return await self._sql.run(run)

    async def record_reported(self, node: str, reports: list[JobReport]) -> None:
        """Store jobs ``node`` ran (idempotent: a report replayed or superseded replaces the
        job's row and datum records; a job id of another host is refused)."""

        def run() -> None:
            with self._sql.transaction() as db:
                for r in reports:
                    upsert_reported(db, node, r)

        await self._sql.run(run)

    # ---- reading ---------------------------------------------------------------------------

    async def job(self, job_id: str) -> JobInfo:
        """By id or unambiguous prefix; NotFound / BadRequest (ambiguous)."""
        return await self._sql.run(lambda: find_job(self._sql.connection, job_id))

    async def list_jobs(self, pipeline: str | None = None, limit: int = 100) -> list[JobInfo]:
        """Newest first."""

        def run() -> list[JobInfo]:
            db = self._sql.connection
            if pipeline is None:
                rows = db.execute(f"{JOB_SELECT} ORDER BY seq DESC LIMIT ?", (limit,))
            else:
                rows = db.execute(
                    f"{JOB_SELECT} WHERE pipeline = ? ORDER BY seq DESC LIMIT ?", (pipeline, limit)
                )
            return [job_info(r) for r in rows]

        return await self._sql.run(run)

    async def datums(self, job_id: str, limit: int = 1000) -> list[DatumInfo]:
        """The datums that ran in a job (in start order), then those it skipped."""

        def run() -> list[DatumInfo]:
            db = self._sql.connection
            return datum_rows(db, find_job(db, job_id), limit)

        return await self._sql.run(run)

    async def last_job(self, pipeline: str) -> JobInfo | None:
        """The newest job of a pipeline that ran to an end (success or failure)."""

        def run() -> JobInfo | None:
            row = self._sql.connection.execute(
                f"{JOB_SELECT} WHERE pipeline = ? AND state IN ('success', 'failure') "
                "AND node = '' ORDER BY seq DESC LIMIT 1",
                (pipeline,),
            ).fetchone()
            return None if row is None else job_info(row)

        return await self._sql.run(run)

    async def previous(self, pipeline: str) -> JobResult | None:
        """The last successful job as the next job's ``previous``: its inputs, output commit
        and the pipeline's current datum history. None when no job succeeded yet."""

        def run() -> JobResult | None:
            db = self._sql.connection
            row = db.execute(
                f"{JOB_SELECT} WHERE pipeline = ? AND state = 'success' AND node = '' "
                "ORDER BY seq DESC LIMIT 1",
                (pipeline,),
            ).fetchone()
            if row is None:
                return None
            info = job_info(row)
            history = DatumHistory(info.version, current_history(db, pipeline))
            inputs: dict[TreeKey, str] = {(r, b): c for r, b, c in info.inputs}
            return JobResult(
                info.id,
                pipeline,
                "success",
                inputs,
                history,
                info.output_commit,
                version=info.version,
                input_commits=info.input_commits,
            )

        return await self._sql.run(run)

    async def job_for_output(self, commit_id: str) -> JobInfo | None:
        """The job whose output commit is ``commit_id``, this host's before a reported one
        (None: a commit no job made)."""

        def run() -> JobInfo | None:
            row = self._sql.connection.execute(
                f"{JOB_SELECT} WHERE output_commit = ? AND state = 'success' "
                "ORDER BY node != '', seq DESC LIMIT 1",
                (commit_id,),
            ).fetchone()
            return None if row is None else job_info(row)

        return await self._sql.run(run)

    async def output_owner(self, job: JobInfo, path: str) -> OutputOwner | None:
        """The datum that wrote ``path`` into ``job``'s output commit (ran there or earlier)."""

        def run() -> OutputOwner | None:
            db = self._sql.connection
            if job.node:  # reported: the node keeps the history, the cloud its outputs
                return reported_owner_at(db, job, path)
            return owner_at(db, job.pipeline, job.seq, path)

        return await self._sql.run(run)

    async def datum_lineage(self, job_id: str) -> dict[str, DatumLineage]:
        """Identity and output paths of each datum a successful job ran (for its report)."""

        def run() -> dict[str, DatumLineage]:
            db = self._sql.connection
            job = find_job(db, job_id)
            return datum_lineage(db, job) if job.state == "success" else {}

        return await self._sql.run(run)


def filter_counts(datums: list[DatumSummary]) -> FilterCounts | None:
    """A Filter job's counters (None when no datum of the job was filtered)."""
    verdicts = [d for d in datums if d.filtered]
    if not verdicts:
        return None
    passed = [d for d in verdicts if d.filtered == "passed"]
    dropped = [d for d in verdicts if d.filtered == "dropped"]
    return FilterCounts(
        items_in=sum(d.items_in for d in verdicts),
        bytes_in=sum(d.bytes_in for d in verdicts),
        items_passed=sum(d.items_in for d in passed),
        bytes_passed=sum(d.bytes_in for d in passed),
        items_dropped=sum(d.items_in for d in dropped),
        bytes_dropped=sum(d.bytes_in for d in dropped),
    )


class JobRecorder:
    """A :class:`~edgeweave.pipelines.jobs.JobObserver` that stores the job as it runs."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self.job: JobResult | None = None  # set once planned

    async def job_planned(self, job: JobResult) -> None:
        await self._store.start_job(job)
        self.job = job

    async def datums_finished(self, job: JobResult, datums: Sequence[DatumSummary]) -> None:
        await self._store.record_datums(job.id, datums)


async def run_recorded(
    runner: JobRunner, store: JobStore, doc: PipelineDoc, previous: JobResult | None
) -> JobResult:
    """Run one job with ``store`` recording it; a job that is cancelled or crashes after it
    was planned is stored ``killed`` (its output commit is deleted by the job runner)."""
    recorder = JobRecorder(store)
    try:
        job = await runner.run_job(doc, previous, observer=recorder)
    except BaseException as e:
        if recorder.job is not None:
            why = "cancelled" if not isinstance(e, Exception) else f"internal error: {e!r}"
            await store.end_job(recorder.job.id, "killed", why, time.time())
        raise
    await store.finish_job(job, previous.history if previous is not None else None)
    return job
