"""A commit made in a repo located on a node, as the node reports it: the ``repo.commit`` payload.

DESIGN.md §6: the cloud holds every repo's commit metadata (small); the bytes live where the
repo lives. A node reports each finished commit of a repo located on it, in order, through its
outbox: the commit's manifest (:class:`~edgeweave.pipelines.transfer.CommitManifest`: its
metadata, file list and objects, no chunk bytes). The cloud records it without the chunks, so
``commit list`` and ``file list`` answer there and ``file get`` says which node holds the
bytes (:func:`made_on` reads the node back from the commit's provenance). A manifest over
:data:`MAX_REPORT_BYTES` (about 1,500 files) is reported without its files, with their count
and size, so the outbox entry stays small.

:func:`decode_commit_report` checks everything (the payload comes from a node) and raises
:class:`BadRequest` naming the field. Pure data: must not do I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edgeweave.errors import BadRequest
from edgeweave.pipelines.commits import CommitInfo
from edgeweave.pipelines.transfer import CommitManifest, manifest_from_json

COMMIT_TOPIC = "repo.commit"
NODE_MARK = "node:"  # in the provenance of a reported commit recorded in the cloud: its node
MAX_REPORT_BYTES = 192 * 1024  # under the outbox's payload limit (256 KiB)


@dataclass(frozen=True)
class CommitReport:
    repo: str
    manifest: CommitManifest  # its files empty when they were omitted
    omitted_files: int
    omitted_bytes: int


def encode_commit_report(manifest: CommitManifest) -> dict[str, Any]:
    doc = manifest.as_json()
    payload: dict[str, Any] = {"repo": manifest.info.repo, "manifest": doc}
    if len(json.dumps(doc)) <= MAX_REPORT_BYTES:
        return payload
    count, size = len(manifest.files), manifest.size_bytes()
    return {
        **payload,
        "manifest": {**doc, "files": [], "objects": []},
        "omittedFiles": count,
        "omittedBytes": size,
    }


def decode_commit_report(payload: Any) -> CommitReport:
    if not isinstance(payload, dict):
        raise BadRequest("repo.commit: must be an object")
    repo = payload.get("repo")
    if not isinstance(repo, str) or not repo:
        raise BadRequest("repo.commit.repo: missing or not a string")
    manifest = manifest_from_json(payload.get("manifest"))
    if manifest.info.repo != repo:
        raise BadRequest(f"repo.commit.manifest: a commit of {manifest.info.repo!r}, not {repo!r}")
    counts = []
    for key in ("omittedFiles", "omittedBytes"):
        value = payload.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadRequest(f"repo.commit.{key}: must be a non-negative integer")
        counts.append(value)
    return CommitReport(repo, manifest, counts[0], counts[1])


def made_on(info: CommitInfo) -> str | None:
    """The node a commit recorded from a node's report lives on (None: not such a commit)."""
    for mark in info.provenance:
        if mark.startswith(NODE_MARK):
            return mark[len(NODE_MARK) :]
    return None
