"""What the job store hands out: jobs, datum records and lineage steps (plain data).

``as_json`` gives the shape the API serves (camelCase keys, like the rest of the API). This
module must not do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

JobState = Literal["running", "success", "failure", "killed"]  # killed: the host stopped


@dataclass(frozen=True)
class FilterCounts:
    """A Filter job's counters over the datums it ran: the uplink saving made visible."""

    items_in: int = 0
    bytes_in: int = 0
    items_passed: int = 0
    bytes_passed: int = 0
    items_dropped: int = 0
    bytes_dropped: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "itemsIn": self.items_in,
            "bytesIn": self.bytes_in,
            "itemsPassed": self.items_passed,
            "bytesPassed": self.bytes_passed,
            "itemsDropped": self.items_dropped,
            "bytesDropped": self.bytes_dropped,
        }


@dataclass(frozen=True)
class TaskRef:
    """What a workflow step's job is a try of (``dagstep.py``): shown with the job."""

    workflow: str
    namespace: str
    run: str
    step: str
    attempt: int  # this try, from 1
    tries: int  # tries the step may make

    def as_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "namespace": self.namespace,
            "run": self.run,
            "step": self.step,
            "try": self.attempt,
            "tries": self.tries,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TaskRef:
        return cls(
            str(raw["workflow"]),
            str(raw["namespace"]),
            str(raw["run"]),
            str(raw["step"]),
            int(raw["try"]),
            int(raw["tries"]),
        )


@dataclass(frozen=True)
class JobInfo:
    id: str
    pipeline: str
    version: str
    state: JobState
    seq: int  # order of the jobs in the store (the history's clock)
    started_at: float
    finished_at: float | None
    output_commit: str | None
    inputs: tuple[tuple[str, str, str], ...]  # (repo, branch, commit) of every input branch read
    input_commits: dict[str, str]  # input name → commit
    total: int = 0
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    recovered: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    incremental: bool = False
    error: str = ""
    node: str = ""  # the edge node that ran the job ("" : this host)
    filter: FilterCounts | None = None  # a Filter's job: what its datums passed and dropped
    task: TaskRef | None = None  # a workflow step's try

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "pipeline": self.pipeline,
            "version": self.version,
            "state": self.state,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "outputCommit": self.output_commit,
            "inputs": [{"repo": r, "branch": b, "commit": c} for r, b, c in self.inputs],
            "datums": {
                "total": self.total,
                "processed": self.processed,
                "skipped": self.skipped,
                "failed": self.failed,
                "recovered": self.recovered,
            },
            "bytesIn": self.bytes_in,
            "bytesOut": self.bytes_out,
            "incremental": self.incremental,
            "error": self.error,
            **({"filter": self.filter.as_json()} if self.filter is not None else {}),
            **({"task": self.task.as_json()} if self.task is not None else {}),
        }


@dataclass(frozen=True)
class DatumInfo:
    job: str
    id: str
    name: str  # input:path of each part
    state: str  # success | skipped | failed | recovered
    attempts: int = 0
    started_at: float | None = None
    duration_s: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    error: str = ""
    log_tail: str = ""
    log_path: str = ""
    outputs: tuple[str, ...] = ()  # for skipped datums: the outputs carried over
    filter: str = ""  # a Filter's verdict: "passed" or "dropped"

    def as_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "attempts": self.attempts,
            "startedAt": self.started_at,
            "durationSeconds": round(self.duration_s, 6),
            "bytesIn": self.bytes_in,
            "bytesOut": self.bytes_out,
            "error": self.error,
            "logTail": self.log_tail,
            **({"filter": self.filter} if self.filter else {}),
        }


@dataclass(frozen=True)
class OutputOwner:
    """The datum (as recorded in the history) that wrote one output path in one job."""

    datum_id: str
    identity: str  # part identities joined (datums.split_identity)
    state: str
    job: str  # the job that ran the datum (earlier than the asking job when it was skipped)


@dataclass
class LineageNode:
    """One file and, when a pipeline wrote it, the datum and the input files it came from.

    ``node`` is set on a file whose bytes live on that edge node: a commit the asking host
    does not hold at all (its ``digest`` is "" and its ``size`` None: unknown here), or one
    of a repo located on the node (file list here, bytes there). ``merged_from``
    is set on a file a Merger placed in its merged view: its one input is the file in the
    commit of that node branch it was placed from.
    """

    repo: str
    commit: str
    path: str
    digest: str
    size: int | None
    pipeline: str | None = None
    job: str | None = None  # the job that made the commit holding the file
    datum: str | None = None  # the datum that wrote it
    datum_job: str | None = None  # the job that ran that datum (an earlier one if skipped)
    job_node: str = ""  # the edge node (or cloud worker) that ran the job ("": this host)
    node: str | None = None  # the node the file's bytes live on
    merged_from: str | None = None  # the node branch a Merger placed the file from
    inputs: list[LineageNode] = field(default_factory=list)
    truncated: bool = False  # inputs were left out (depth or file limit)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "repo": self.repo,
            "commit": self.commit,
            "path": self.path,
            "digest": self.digest,
            "size": self.size,
        }
        if self.node is not None:
            out["node"] = self.node
        if self.pipeline is not None:
            out.update(pipeline=self.pipeline, job=self.job, datum=self.datum)
            out["datumJob"] = self.datum_job
            if self.job_node:
                out["jobNode"] = self.job_node
        if self.merged_from is not None:
            out["mergedFrom"] = self.merged_from
        out["inputs"] = [n.as_json() for n in self.inputs]
        if self.truncated:
            out["truncated"] = True
        return out
