"""The incremental plan: which datums of a job run, which are skipped, which went away.

A job compares its datums with the records of the previous job of the same pipeline. A datum
is *skipped* when the previous job holds a record with the same id and the same hash (same
pipeline version, same files, same content) that ended in ``success`` or ``skipped``; its
output is carried over from the previous output commit. Every other datum *runs*: new ones,
changed ones, and — under ``reprocess_spec: until_success``, the default — ones that failed or
were only recovered by ``err_cmd``. Under ``every_job`` every datum runs. Previous datums that
no longer exist are *removed*: their output leaves the output commit.

The cost of a skip is one dict lookup and a string comparison per datum, after the datums were
enumerated and hashed (see ``bench/pipelines.py`` for the measured figure).

Pure: no I/O. This module must not run anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from edgeweave.pipelines.datums import Datum


class DatumState(StrEnum):
    SUCCESS = "success"
    SKIPPED = "skipped"  # unchanged since an earlier job: output carried over
    FAILED = "failed"
    RECOVERED = "recovered"  # failed, then err_cmd exited 0: no output, job not failed


DONE_STATES = frozenset({DatumState.SUCCESS, DatumState.SKIPPED})


@dataclass(frozen=True, slots=True)
class DatumRecord:
    """What a job remembers of one datum for the next job: its hash, how it ended, its
    identity (the part identities joined, as hashed into its id) and the output paths it
    wrote (file-level lineage)."""

    hash: str
    state: DatumState
    identity: str
    outputs: tuple[str, ...] = ()


class DatumHistory:
    """The datums of the previous job of a pipeline: the pipeline version it ran and, per
    datum id, its record. Keeps, up to date with every change, the ids of datums not done
    (failed, recovered) and which datum wrote each output path, so neither question costs a
    scan."""

    def __init__(self, version: str, records: Mapping[str, DatumRecord] | None = None) -> None:
        self.version = version
        self.datums: dict[str, DatumRecord] = {}
        self.pending: set[str] = set()
        self.owners: dict[str, str] = {}  # output path → datum id
        for datum_id, record in (records or {}).items():
            self.record(datum_id, record)

    def record(self, datum_id: str, record: DatumRecord) -> None:
        self.drop(datum_id)
        self.datums[datum_id] = record
        if record.state not in DONE_STATES:
            self.pending.add(datum_id)
        for path in record.outputs:
            self.owners[path] = datum_id

    def drop(self, datum_id: str) -> DatumRecord | None:
        record = self.datums.pop(datum_id, None)
        self.pending.discard(datum_id)
        for path in record.outputs if record is not None else ():
            if self.owners.get(path) == datum_id:
                del self.owners[path]
        return record

    def copy(self, version: str | None = None) -> DatumHistory:
        out = DatumHistory(self.version if version is None else version)
        out.datums = dict(self.datums)
        out.pending = set(self.pending)
        out.owners = dict(self.owners)
        return out


@dataclass
class DatumPlan:
    run: list[Datum] = field(default_factory=list)
    skipped: int = 0  # unchanged datums: their records and outputs carry over
    removed: list[str] = field(default_factory=list)  # ids of previous datums now gone
    incremental: bool = False  # True when planned from the changed paths only

    @property
    def total(self) -> int:
        return len(self.run) + self.skipped


def is_done(record: DatumRecord | None, datum: Datum) -> bool:
    return record is not None and record.hash == datum.hash and record.state in DONE_STATES


def plan_datums(
    datums: Sequence[Datum],
    previous: DatumHistory | None,
    *,
    every_job: bool = False,
) -> DatumPlan:
    """Split all of a job's ``datums`` into run and skip against ``previous``."""
    plan = DatumPlan()
    records = previous.datums if previous is not None else {}
    if every_job or not records:
        plan.run = list(datums)
    else:
        run_append = plan.run.append
        get = records.get
        for datum in datums:
            if not is_done(get(datum.id), datum):
                run_append(datum)
        plan.skipped = len(datums) - len(plan.run)
    if records:
        current = {d.id for d in datums}
        plan.removed = [i for i in records if i not in current]
    return plan
