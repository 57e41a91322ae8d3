"""The SQL of the job store: its schema and the functions that run on its worker thread.

Tables (``DATA/jobs.db``, beside the repo store's ``repos.db``):

- ``jobs``: one row per job, from the moment it is planned (``running``) to its end
  (``success``, ``failure``, or ``killed`` when the host stopped in the middle). ``seq``
  orders jobs; ``inputs`` holds the commits the job read (JSON), also for a failed job.
- ``datums``: one row per datum that *ran* in a job: state, attempts, timings, bytes, the
  error and the end of its log. Skipped datums are not copied into every job (a job over
  100,000 unchanged files would write 100,000 rows): they are read from ``history``.
- ``history``: the datum records each pipeline plans against, as versions. A successful job
  with seq S adds a version (``from_seq`` = S) for each datum it ran and closes
  (``until_seq`` = S) the versions it replaced or removed. The history a job saw is the
  versions valid at its seq; the current one is those not closed. A datum skipped in job S
  is one valid at S with ``from_seq`` < S.
- ``outputs``: the output paths of each history version — file-level lineage: which datum
  (and so which input files) wrote a path in the output commit of job S.
- ``reported_outputs``: the same for jobs edge nodes (and cloud workers) reported: the paths
  each reported datum wrote, with its identity (the reporting node keeps the history; a path
  in a reported job's commit was written by the newest reported job of that pipeline on that
  node, up to it, that wrote it).

Every function takes the worker's connection (inside a transaction when it writes). Must not
be called from the event loop or import :mod:`sqlite3`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any

from edgeweave.aio.sqlite import Connection
from edgeweave.errors import BadRequest, NotFound
from edgeweave.pipelines.datums import describe_identity
from edgeweave.pipelines.jobinfo import DatumInfo, FilterCounts, JobInfo, OutputOwner, TaskRef
from edgeweave.pipelines.jobreport import DatumLineage, JobReport
from edgeweave.pipelines.plan import DatumRecord, DatumState

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, pipeline TEXT NOT NULL,
    version TEXT NOT NULL, state TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
    output_commit TEXT, inputs TEXT NOT NULL, input_commits TEXT NOT NULL,
    total INTEGER NOT NULL DEFAULT 0, processed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    recovered INTEGER NOT NULL DEFAULT 0, bytes_in INTEGER NOT NULL DEFAULT 0,
    bytes_out INTEGER NOT NULL DEFAULT 0, incremental INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '', node TEXT NOT NULL DEFAULT '',
    filter TEXT NOT NULL DEFAULT '', task TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_pipeline ON jobs (pipeline, seq);
CREATE INDEX IF NOT EXISTS jobs_output ON jobs (output_commit);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE TABLE IF NOT EXISTS datums (
    job_seq INTEGER NOT NULL, datum_id TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL, started_at REAL, duration_s REAL NOT NULL,
    bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, error TEXT NOT NULL,
    log_tail TEXT NOT NULL, log_path TEXT NOT NULL, filter TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_seq, datum_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY, pipeline TEXT NOT NULL, datum_id TEXT NOT NULL, hash TEXT NOT NULL,
    state TEXT NOT NULL, identity TEXT NOT NULL, from_seq INTEGER NOT NULL, until_seq INTEGER
);
CREATE INDEX IF NOT EXISTS history_datum ON history (pipeline, datum_id, until_seq);
CREATE INDEX IF NOT EXISTS history_open ON history (pipeline, until_seq);
CREATE TABLE IF NOT EXISTS outputs (
    pipeline TEXT NOT NULL, path TEXT NOT NULL, history_id INTEGER NOT NULL,
    PRIMARY KEY (pipeline, path, history_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outputs_history ON outputs (history_id);
CREATE TABLE IF NOT EXISTS reported_outputs (
    job_seq INTEGER NOT NULL, path TEXT NOT NULL, datum_id TEXT NOT NULL, identity TEXT NOT NULL,
    PRIMARY KEY (path, job_seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reported_outputs_job ON reported_outputs (job_seq);
"""

JOB_COLUMNS = (
    "seq, id, pipeline, version, state, started_at, finished_at, output_commit, inputs, "
    "input_commits, total, processed, skipped, failed, recovered, bytes_in, bytes_out, "
    "incremental, error, node, filter, task"
)
JOB_SELECT = f"SELECT {JOB_COLUMNS} FROM jobs"  # noqa: S608
DATUM_COLUMNS = (
    "datum_id, name, state, attempts, started_at, duration_s, bytes_in, bytes_out, error, "
    "log_tail, log_path, filter"
)
MIN_ID_PREFIX = 4


def migrate(db: Connection) -> None:
    """Bring a job store written by an older release up to :data:`SCHEMA`."""
    added = (("jobs", "node"), ("jobs", "filter"), ("datums", "filter"), ("jobs", "task"))
    for table, column in added:
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in columns:  # added after the first release of the job store
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")


def job_info(row: Sequence[Any]) -> JobInfo:
    inputs = tuple((str(r), str(b), str(c)) for r, b, c in json.loads(row[8]))
    return JobInfo(
        seq=int(row[0]),
        id=str(row[1]),
        pipeline=str(row[2]),
        version=str(row[3]),
        state=row[4],
        started_at=float(row[5]),
        finished_at=None if row[6] is None else float(row[6]),
        output_commit=None if row[7] is None else str(row[7]),
        inputs=inputs,
        input_commits=dict(json.loads(row[9])),
        total=int(row[10]),
        processed=int(row[11]),
        skipped=int(row[12]),
        failed=int(row[13]),
        recovered=int(row[14]),
        bytes_in=int(row[15]),
        bytes_out=int(row[16]),
        incremental=bool(row[17]),
        error=str(row[18]),
        node=str(row[19]),
        filter=FilterCounts(**json.loads(row[20])) if row[20] else None,
        task=TaskRef.from_json(json.loads(row[21])) if row[21] else None,
    )


def find_job(db: Connection, job_id: str) -> JobInfo:
    """A job by id, or by an unambiguous prefix of at least :data:`MIN_ID_PREFIX` characters."""
    row = db.execute(f"{JOB_SELECT} WHERE id = ?", (job_id,)).fetchone()
    if row is not None:
        return job_info(row)
    if len(job_id) < MIN_ID_PREFIX or not job_id.isalnum():
        raise NotFound(f"no job {job_id!r}")
    rows = db.execute(
        f"{JOB_SELECT} WHERE id >= ? AND id < ? LIMIT 2", (job_id, job_id + "~")
    ).fetchall()
    if not rows:
        raise NotFound(f"no job {job_id!r}")
    if len(rows) > 1:
        raise BadRequest(f"job id {job_id!r} is ambiguous; give more characters")
    return job_info(rows[0])


def datum_rows(db: Connection, job: JobInfo, limit: int) -> list[DatumInfo]:
    """The datums that ran in ``job``, then (once it ended) those it skipped."""
    rows = db.execute(
        f"SELECT {DATUM_COLUMNS} FROM datums WHERE job_seq = ? "  # noqa: S608
        "ORDER BY started_at, datum_id LIMIT ?",
        (job.seq, limit),
    )
    out = [_datum_info(job.id, r) for r in rows]
    if job.state == "running" or len(out) >= limit:
        return out
    ran = {d.id for d in out}
    rows = db.execute(
        "SELECT id, datum_id, identity FROM history WHERE pipeline = ? AND from_seq < ? "
        "AND (until_seq IS NULL OR until_seq > ?) AND state IN ('success', 'skipped') "
        "ORDER BY datum_id",
        (job.pipeline, job.seq, job.seq),
    )
    for history_id, datum_id, identity in rows:
        if datum_id in ran:
            continue
        paths = db.execute("SELECT path FROM outputs WHERE history_id = ?", (history_id,))
        name = describe_identity(str(identity))
        outputs = tuple(str(p) for (p,) in paths)
        out.append(DatumInfo(job.id, str(datum_id), name, "skipped", outputs=outputs))
        if len(out) >= limit:
            break
    return out


def _datum_info(job_id: str, r: Sequence[Any]) -> DatumInfo:
    return DatumInfo(
        job=job_id,
        id=str(r[0]),
        name=str(r[1]),
        state=str(r[2]),
        attempts=int(r[3]),
        started_at=r[4],
        duration_s=float(r[5]),
        bytes_in=int(r[6]),
        bytes_out=int(r[7]),
        error=str(r[8]),
        log_tail=str(r[9]),
        log_path=str(r[10]),
        filter=str(r[11]),
    )


def current_history(db: Connection, pipeline: str) -> dict[str, DatumRecord]:
    records: dict[str, DatumRecord] = {}
    outputs: dict[int, list[str]] = {}
    rows = db.execute(
        "SELECT o.history_id, o.path FROM outputs o JOIN history h ON h.id = o.history_id "
        "WHERE h.pipeline = ? AND h.until_seq IS NULL ORDER BY o.path",
        (pipeline,),
    )
    for history_id, path in rows:
        outputs.setdefault(int(history_id), []).append(str(path))
    rows = db.execute(
        "SELECT id, datum_id, hash, state, identity FROM history "
        "WHERE pipeline = ? AND until_seq IS NULL",
        (pipeline,),
    )
    for history_id, datum_id, digest, state, identity in rows:
        paths = tuple(outputs.get(int(history_id), ()))
        records[str(datum_id)] = DatumRecord(str(digest), DatumState(state), str(identity), paths)
    return records


def write_history(
    db: Connection,
    pipeline: str,
    seq: int,
    ran: Iterable[tuple[str, DatumRecord]],
    closed: Iterable[str] | None,
) -> None:
    """New versions for the datums a successful job ran; close the versions they replace
    and those of ``closed`` (removed datums). ``closed`` None closes every open version."""
    ran = list(ran)
    if closed is None:
        db.execute(
            "UPDATE history SET until_seq = ? WHERE pipeline = ? AND until_seq IS NULL",
            (seq, pipeline),
        )
    else:
        doomed = [*closed, *(datum_id for datum_id, _ in ran)]
        db.executemany(
            "UPDATE history SET until_seq = ? WHERE pipeline = ? AND datum_id = ? "
            "AND until_seq IS NULL",
            [(seq, pipeline, d) for d in doomed],
        )
    for datum_id, record in ran:
        cur = db.execute(
            "INSERT INTO history (pipeline, datum_id, hash, state, identity, from_seq) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (pipeline, datum_id, record.hash, str(record.state), record.identity, seq),
        )
        db.executemany(
            "INSERT OR IGNORE INTO outputs VALUES (?, ?, ?)",
            [(pipeline, path, cur.lastrowid) for path in record.outputs],
        )


def owner_at(db: Connection, pipeline: str, seq: int, path: str) -> OutputOwner | None:
    """The history version valid at job ``seq`` that wrote ``path``."""
    row = db.execute(
        "SELECT h.datum_id, h.identity, h.state, j.id FROM outputs o "
        "JOIN history h ON h.id = o.history_id JOIN jobs j ON j.seq = h.from_seq "
        "WHERE o.pipeline = ? AND o.path = ? AND h.from_seq <= ? "
        "AND (h.until_seq IS NULL OR h.until_seq > ?) LIMIT 1",
        (pipeline, path, seq, seq),
    ).fetchone()
    if row is None:
        return None
    return OutputOwner(str(row[0]), str(row[1]), str(row[2]), str(row[3]))


def reported_owner_at(db: Connection, job: JobInfo, path: str) -> OutputOwner | None:
    """The reported datum that wrote ``path`` into reported ``job``'s output commit: in that
    job, or in the newest successful earlier job of the pipeline on the same node (skipped)."""
    row = db.execute(
        "SELECT r.datum_id, r.identity, j.id FROM reported_outputs r "
        "JOIN jobs j ON j.seq = r.job_seq WHERE r.path = ? AND r.job_seq <= ? "
        "AND j.pipeline = ? AND j.node = ? AND j.state = 'success' "
        "ORDER BY r.job_seq DESC LIMIT 1",
        (path, job.seq, job.pipeline, job.node),
    ).fetchone()
    if row is None:
        return None
    return OutputOwner(str(row[0]), str(row[1]), "success", str(row[2]))


def datum_lineage(db: Connection, job: JobInfo) -> dict[str, DatumLineage]:
    """Identity and output paths of each datum a successful job ran (from its history
    versions), as a job report carries them."""
    out: dict[str, DatumLineage] = {}
    rows = db.execute(
        "SELECT h.datum_id, h.identity, o.path FROM history h "
        "LEFT JOIN outputs o ON o.history_id = h.id WHERE h.pipeline = ? AND h.from_seq = ? "
        "ORDER BY h.datum_id, o.path",
        (job.pipeline, job.seq),
    )
    for datum_id, identity, path in rows:
        _, paths = out.get(str(datum_id), (str(identity), ()))
        out[str(datum_id)] = (str(identity), (*paths, str(path)) if path is not None else paths)
    return out


def upsert_reported(db: Connection, node: str, report: JobReport) -> None:
    """One job an edge node reported (see ``JobStore.record_reported``)."""
    job = report.job
    row = db.execute("SELECT seq, node FROM jobs WHERE id = ?", (job.id,)).fetchone()
    if row is not None and row[1] != node:
        return  # not this node's job: never overwrite another host's record
    values = (
        job.pipeline,
        job.version,
        job.state,
        job.started_at,
        job.finished_at,
        job.output_commit,
        json.dumps([list(i) for i in job.inputs]),
        job.total,
        job.processed,
        job.skipped,
        job.failed,
        job.recovered,
        job.bytes_in,
        job.bytes_out,
        int(job.incremental),
        job.error,
        filter_json(job.filter),
        json.dumps(job.input_commits),
    )
    if row is None:
        seq = db.execute(
            "INSERT INTO jobs (pipeline, version, state, started_at, finished_at, output_commit, "
            "inputs, total, processed, skipped, failed, recovered, bytes_in, bytes_out, "
            "incremental, error, filter, input_commits, id, node) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, job.id, node),
        ).lastrowid
    else:
        seq = row[0]
        db.execute(
            "UPDATE jobs SET pipeline = ?, version = ?, state = ?, started_at = ?, "
            "finished_at = ?, output_commit = ?, inputs = ?, total = ?, processed = ?, "
            "skipped = ?, failed = ?, recovered = ?, bytes_in = ?, bytes_out = ?, "
            "incremental = ?, error = ?, filter = ?, input_commits = ? WHERE seq = ?",
            (*values, seq),
        )
    db.execute("DELETE FROM datums WHERE job_seq = ?", (seq,))
    db.execute("DELETE FROM reported_outputs WHERE job_seq = ?", (seq,))
    db.executemany(
        "INSERT OR IGNORE INTO reported_outputs VALUES (?, ?, ?, ?)",
        [
            (seq, path, datum_id, identity)
            for datum_id, (identity, outputs) in report.lineage.items()
            for path in outputs
        ],
    )
    db.executemany(
        "INSERT INTO datums VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?)",
        [
            (
                seq,
                d.id,
                d.name,
                d.state,
                d.attempts,
                d.started_at,
                d.duration_s,
                d.bytes_in,
                d.bytes_out,
                d.error,
                d.log_tail,
                d.filter,
            )
            for d in report.datums
        ],
    )


def filter_json(counts: FilterCounts | None) -> str:
    return "" if counts is None else json.dumps(dataclasses.asdict(counts))
