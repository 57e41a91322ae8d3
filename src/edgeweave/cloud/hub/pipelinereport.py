"""What a node's pipeline reports become in the cloud (the committer's ``pipeline.*`` topics).

An edge node runs the pipelines placed on it and reports through its outbox:

- ``pipeline.status`` ``{pipeline: {namespace, name}, status: {...}}`` → the Pipeline's
  ``status.nodes[<node>]`` (only the newest per pipeline in a batch; the cloud's own status
  fields are left alone);
- ``pipeline.job`` (:mod:`edgeweave.pipelines.jobreport`) → a job record in the cloud's job
  store, with the node's name, so ``job list`` shows it;
- ``repo.commit`` (:mod:`edgeweave.pipelines.commitreport`) → a commit of a repo located on
  the node, recorded (metadata and file list) in the cloud's repos.

Reports about a pipeline not placed on the node (a repo not located on it), and malformed
ones, are refused (the
committer counts them and reports a Warning event). Pure: must not do I/O or await.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeweave.cloud.hub.index import PIPELINE, DesiredIndex
from edgeweave.cloud.store.base import JSONObject, StatusWrite
from edgeweave.errors import BadRequest
from edgeweave.pipelines.commitreport import COMMIT_TOPIC, CommitReport, decode_commit_report
from edgeweave.pipelines.jobreport import JOB_TOPIC, STATUS_TOPIC, JobReport, decode_job_report
from edgeweave.protocol.refs import ResourceRef

PIPELINE_TOPICS = (JOB_TOPIC, STATUS_TOPIC, COMMIT_TOPIC)


@dataclass
class PipelineReports:
    statuses: dict[ResourceRef, JSONObject] = field(default_factory=dict)
    jobs: list[JobReport] = field(default_factory=list)
    commits: list[CommitReport] = field(default_factory=list)

    def status_writes(self, node: str) -> list[StatusWrite]:
        out: list[StatusWrite] = []
        for ref, status in self.statuses.items():  # clear, then set: exactly the payload
            out.append((PIPELINE, ref.namespace, ref.name, {"nodes": {node: None}}))
            out.append((PIPELINE, ref.namespace, ref.name, {"nodes": {node: status}}))
        return out


def _pipeline_ref(payload: Any) -> ResourceRef | None:
    ref = payload.get("pipeline") if isinstance(payload, dict) else None
    if not isinstance(ref, dict):
        return None
    ns, name = ref.get("namespace"), ref.get("name")
    if isinstance(ns, str) and isinstance(name, str) and name:
        return ResourceRef(PIPELINE, ns, name)
    return None


def take_pipeline_entry(
    node: str, topic: str, seq: int, payload: Any, index: DesiredIndex, out: PipelineReports
) -> str | None:
    """File one ``pipeline.*`` (or ``repo.commit``) entry into ``out``; the reason when it
    is refused."""
    if topic == COMMIT_TOPIC:
        try:
            commit = decode_commit_report(payload)
        except BadRequest as e:
            return f"{topic} #{seq} is malformed: {e.message}"
        if not index.repo_on(node, commit.repo):
            return f"{topic} #{seq} about repo {commit.repo!r}, not located on node {node}"
        out.commits.append(commit)
        return None
    ref = _pipeline_ref(payload)
    if ref is None or index.desired(node, ref) is None:
        return f"{topic} #{seq} about {ref or 'no pipeline'}"
    if topic == STATUS_TOPIC:
        status = payload.get("status")
        if not isinstance(status, dict):
            return f"{topic} #{seq}: status is not an object"
        out.statuses.pop(ref, None)  # newest wins, in the order last reported
        out.statuses[ref] = status
        return None
    try:
        report = decode_job_report(payload)
    except BadRequest as e:
        return f"{topic} #{seq} is malformed: {e.message}"
    out.jobs.append(report)
    return None
