"""Repos located on a node, as the cloud holds them: commit metadata and file lists, no bytes.

A repo with ``spec.location: {node: NAME}`` lives on that node (DESIGN.md §6): the node's
agent creates it and reports each finished commit (``repo.commit``,
:mod:`edgeweave.pipelines.commitreport`). :func:`record_node_commits` records them in the
cloud's repos without their chunks (``metadata_only``), in the order reported — each a child
of the branch head, as on the node — with ``node:NAME`` added to the provenance, so
``commit list``, ``commit inspect`` and ``file list`` answer in the cloud. A commit whose file
list was too large to report also carries ``files-on-node:COUNT``. Reading a file's bytes, or
writing to the repo, in the cloud is refused with an error naming the node.

Must not talk HTTP or to nodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from edgeweave.errors import Conflict, NotFound
from edgeweave.pipelines.commitreport import NODE_MARK, CommitReport, made_on
from edgeweave.pipelines.commits import CommitInfo
from edgeweave.pipelines.repo import Repos

OMITTED_PREFIX = "files-on-node:"


def repo_object(name: str, description: str, node: str) -> dict[str, Any]:
    """The ``Repo`` object that places a repo on ``node`` (the hub sends it there)."""
    spec: dict[str, Any] = {"location": {"node": node}}
    if description:
        spec["description"] = description
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Repo",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def location_of(obj: Mapping[str, Any]) -> str | None:
    """The node a stored ``Repo`` object places its repo on (None: the cloud)."""
    spec = obj.get("spec")
    where = spec.get("location") if isinstance(spec, dict) else None
    node = where.get("node") if isinstance(where, dict) else None
    return node if isinstance(node, str) and node else None


async def record_node_commits(repos: Repos, node: str, reports: list[CommitReport]) -> int:
    """Record the commits ``node`` reported; how many were new (a replay records none)."""
    new = 0
    for report in reports:
        info = report.manifest.info
        marks = [f"{NODE_MARK}{node}"]
        if report.omitted_files:
            marks.append(f"{OMITTED_PREFIX}{report.omitted_files}")
        info = dataclasses.replace(info, provenance=(*info.provenance, *marks))
        manifest = dataclasses.replace(report.manifest, info=info)
        if await repos.import_manifest(manifest, metadata_only=True):
            new += 1
    return new


def check_files_listed(info: CommitInfo) -> None:
    """NotFound when the commit's file list stayed on its node (too large to report)."""
    for mark in info.provenance:
        if mark.startswith(OMITTED_PREFIX):
            count = mark[len(OMITTED_PREFIX) :]
            raise NotFound(
                f"commit {info.id} of repo {info.repo} holds {count} files on node "
                f"{made_on(info)}; its file list was too large to report to the cloud"
            )


def check_writable(located: Mapping[str, str], repo: str) -> None:
    node = located.get(repo)
    if node is not None:
        raise Conflict(
            f"repo {repo!r} lives on node {node}: put files there with `edgeweave edge file "
            f"put --data DIR {repo}@master:/PATH -f FILE` on the node"
        )


def bytes_elsewhere(located: Mapping[str, str], info: CommitInfo, path: str) -> NotFound:
    node = located.get(info.repo) or made_on(info) or "another node"
    return NotFound(
        f"the content of {info.repo}@{info.id}:{path} lives on node {node} (the cloud holds "
        "the repo's commits and file lists only); a Merger placed on the node brings it to "
        "the cloud"
    )
