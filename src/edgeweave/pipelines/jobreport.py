"""A job as one host reports it to another: the ``pipeline.job`` outbox payload.

An edge node runs the jobs of the pipelines placed on it and reports each one upstream; the
cloud records it beside its own jobs, with the node's name, so ``job list`` shows both.
:func:`encode_job_report` builds the payload from the node's job store records (the job, and
the datums that ran in it, at most :data:`MAX_REPORTED_DATUMS`, log tails cut to
:data:`MAX_LOG_TAIL`); :func:`decode_job_report` reads one back, refusing anything malformed
with :class:`BadRequest` naming the field — the payload comes from a node, so it is checked like
any request. Log files stay on the node (the report carries no paths).

For lineage across nodes the report also carries the job's ``inputCommits`` (input name →
commit) and, per datum that ran, its ``identity`` (the input files it read; checked against
the datum id) and the ``outputs`` it wrote — at most :data:`MAX_DATUM_OUTPUTS` per datum and
:data:`MAX_LINEAGE_CHARS` in all; datums past that are reported without them (lineage stops
at their job). Reports of older nodes, without these fields, are accepted. The whole payload
is kept under :data:`MAX_REPORT_BYTES` (the outbox refuses entries over 256 KiB): log tails
go first, then the last datums.

Pure data: must not do I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeweave.errors import BadRequest
from edgeweave.pipelines.commits import COMMIT_ID_RE
from edgeweave.pipelines.datums import id_of_identity
from edgeweave.pipelines.jobinfo import DatumInfo, FilterCounts, JobInfo

JOB_TOPIC = "pipeline.job"
STATUS_TOPIC = "pipeline.status"
MAX_REPORTED_DATUMS = 1000
MAX_LOG_TAIL = 512
MAX_TEXT = 2048
MAX_IDENTITY = 4096
MAX_PATH = 1024
MAX_DATUM_OUTPUTS = 256
MAX_INPUTS = 64
MAX_LINEAGE_CHARS = 64 * 1024
MAX_REPORT_BYTES = 192 * 1024
_ID = re.compile(r"^[0-9a-zA-Z_.:-]{1,128}$")
_STATES = ("running", "success", "failure", "killed")
_DATUM_STATES = ("success", "skipped", "failed", "recovered")


DatumLineage = tuple[str, tuple[str, ...]]  # a datum's identity, and the paths it wrote


@dataclass(frozen=True)
class JobReport:
    namespace: str
    pipeline: str
    job: JobInfo
    datums: list[DatumInfo]
    lineage: dict[str, DatumLineage] = field(default_factory=dict)  # datum id → its lineage


def encode_job_report(
    namespace: str,
    job: JobInfo,
    datums: list[DatumInfo],
    lineage: Mapping[str, DatumLineage] | None = None,
) -> dict[str, Any]:
    """The payload for ``job`` and the datums that ran in it (``lineage``: what
    ``JobStore.datum_lineage`` gives, datum id → identity and output paths)."""
    ran = [d for d in datums if d.state != "skipped"][:MAX_REPORTED_DATUMS]
    entries = [{**d.as_json(), "logTail": d.log_tail[-MAX_LOG_TAIL:]} for d in ran]
    budget = MAX_LINEAGE_CHARS
    for entry in entries:
        found = (lineage or {}).get(entry["id"])
        if found is None:
            continue
        identity, outputs = found
        outputs = tuple(p for p in outputs if len(p) <= MAX_PATH)[:MAX_DATUM_OUTPUTS]
        cost = len(identity) + sum(len(p) + 4 for p in outputs)
        if len(identity) > MAX_IDENTITY or cost > budget:
            continue
        budget -= cost
        entry["identity"] = identity
        entry["outputs"] = list(outputs)
    raw = {**job.as_json(), "inputCommits": dict(list(job.input_commits.items())[:MAX_INPUTS])}
    payload = {"pipeline": {"namespace": namespace, "name": job.pipeline}, "job": raw}
    return {**payload, "datums": _fit(entries, len(json.dumps(payload)))}


def _fit(entries: list[dict[str, Any]], base: int) -> list[dict[str, Any]]:
    """``entries`` cut so the payload stays under :data:`MAX_REPORT_BYTES`."""
    sizes = [len(json.dumps(e)) + 2 for e in entries]
    if base + sum(sizes) <= MAX_REPORT_BYTES:
        return entries
    entries = [{**e, "logTail": ""} for e in entries]
    kept, total = [], base
    for entry in entries:
        total += len(json.dumps(entry)) + 2
        if total > MAX_REPORT_BYTES:
            break
        kept.append(entry)
    return kept


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise BadRequest(f"{where}: must be an object")
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequest(f"{where}.{key}: missing or of the wrong type")
    return value


def _num(obj: Any, key: str, where: str) -> float:
    return float(_get(obj, key, (int, float), where))


def _count(obj: Any, key: str, where: str) -> int:
    value = int(_get(obj, key, int, where))
    if value < 0:
        raise BadRequest(f"{where}.{key}: must not be negative")
    return value


def _ident(obj: Any, key: str, where: str) -> str:
    value = str(_get(obj, key, str, where))
    if not _ID.match(value):
        raise BadRequest(f"{where}.{key}: not an id")
    return value


def _filter(raw: Any) -> FilterCounts | None:
    if raw is None:
        return None
    keys = ("itemsIn", "bytesIn", "itemsPassed", "bytesPassed", "itemsDropped", "bytesDropped")
    values = [_count(raw, k, "job.filter") for k in keys]
    return FilterCounts(*values)


def decode_job_report(payload: Any) -> JobReport:
    if not isinstance(payload, dict):
        raise BadRequest("payload: must be an object")
    ref: dict[str, Any] = payload
    pipeline = _get(ref, "pipeline", dict, "payload")
    namespace = str(_get(pipeline, "namespace", str, "pipeline"))
    name = str(_get(pipeline, "name", str, "pipeline"))
    raw = _get(ref, "job", dict, "payload")
    if raw.get("pipeline") != name:
        raise BadRequest("job.pipeline: not the pipeline the report is about")
    state = _get(raw, "state", str, "job")
    if state not in _STATES:
        raise BadRequest(f"job.state: one of {', '.join(_STATES)}")
    counts = _get(raw, "datums", dict, "job")
    finished = raw.get("finishedAt")
    output = raw.get("outputCommit")
    inputs = tuple(
        (
            str(_get(i, "repo", str, "job.inputs[]")),
            str(_get(i, "branch", str, "job.inputs[]")),
            str(_get(i, "commit", str, "job.inputs[]")),
        )
        for i in _get(raw, "inputs", list, "job")[:64]
    )
    job = JobInfo(
        id=_ident(raw, "id", "job"),
        pipeline=name,
        version=_ident(raw, "version", "job"),
        state=state,
        seq=0,
        started_at=_num(raw, "startedAt", "job"),
        finished_at=float(finished) if isinstance(finished, (int, float)) else None,
        output_commit=output if isinstance(output, str) and _ID.match(output) else None,
        inputs=inputs,
        input_commits=_input_commits(raw.get("inputCommits")),
        total=_count(counts, "total", "job.datums"),
        processed=_count(counts, "processed", "job.datums"),
        skipped=_count(counts, "skipped", "job.datums"),
        failed=_count(counts, "failed", "job.datums"),
        recovered=_count(counts, "recovered", "job.datums"),
        bytes_in=_count(raw, "bytesIn", "job"),
        bytes_out=_count(raw, "bytesOut", "job"),
        incremental=bool(raw.get("incremental")),
        error=str(raw.get("error") or "")[:MAX_TEXT],
        filter=_filter(raw.get("filter")),
    )
    datums = []
    lineage: dict[str, DatumLineage] = {}
    for d in _get(ref, "datums", list, "payload")[:MAX_REPORTED_DATUMS]:
        dstate = _get(d, "state", str, "datums[]")
        if dstate not in _DATUM_STATES:
            raise BadRequest(f"datums[].state: one of {', '.join(_DATUM_STATES)}")
        started = d.get("startedAt")
        datums.append(
            DatumInfo(
                job=job.id,
                id=_ident(d, "id", "datums[]"),
                name=str(_get(d, "name", str, "datums[]"))[:MAX_TEXT],
                state=dstate,
                attempts=_count(d, "attempts", "datums[]"),
                started_at=float(started) if isinstance(started, (int, float)) else None,
                duration_s=_num(d, "durationSeconds", "datums[]"),
                bytes_in=_count(d, "bytesIn", "datums[]"),
                bytes_out=_count(d, "bytesOut", "datums[]"),
                error=str(d.get("error") or "")[:MAX_TEXT],
                log_tail=str(d.get("logTail") or "")[-MAX_LOG_TAIL:],
                filter=d.get("filter") if d.get("filter") in ("passed", "dropped") else "",
            )
        )
        found = _lineage(d, datums[-1].id)
        if found is not None:
            lineage[datums[-1].id] = found
    return JobReport(namespace, name, job, datums, lineage)


def _input_commits(raw: Any) -> dict[str, str]:
    if raw is None:  # a report of an older node
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_INPUTS:
        raise BadRequest(f"job.inputCommits: must be an object of at most {MAX_INPUTS} entries")
    for name, commit in raw.items():
        if not _ID.match(name) or not isinstance(commit, str):
            raise BadRequest("job.inputCommits: input name to commit id")
        if commit and not COMMIT_ID_RE.match(commit):
            raise BadRequest(f"job.inputCommits.{name}: not a commit id")
    return dict(raw)


def _lineage(d: dict[str, Any], datum_id: str) -> DatumLineage | None:
    identity, outputs = d.get("identity"), d.get("outputs")
    if identity is None and outputs is None:  # a report of an older node, or over budget
        return None
    if not isinstance(identity, str) or len(identity) > MAX_IDENTITY:
        raise BadRequest(f"datums[].identity: a string of at most {MAX_IDENTITY} characters")
    if id_of_identity(identity) != datum_id:
        raise BadRequest("datums[].identity: not the identity of the datum's id")
    if not isinstance(outputs, list) or len(outputs) > MAX_DATUM_OUTPUTS:
        raise BadRequest(f"datums[].outputs: a list of at most {MAX_DATUM_OUTPUTS} paths")
    for path in outputs:
        if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_PATH:
            raise BadRequest(f"datums[].outputs[]: a path from / of at most {MAX_PATH} characters")
    return identity, tuple(outputs)
