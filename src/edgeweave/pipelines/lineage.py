"""File-level lineage: from an output file back to the input files it was made from.

For a file at ``repo@commit:path``: the job whose output commit it is (none: a user's file, a
leaf), the datum that wrote the path in that job (``JobStore.output_owner`` — a skipped datum
is found in the job that ran it), and the datum's input files in the commits the job that ran
the datum read.
Each input file is traced the same way, so when an input repo is another pipeline's output
the chain goes on across pipelines until it reaches files users put.

Bounded: at most ``max_depth`` steps back and ``max_files`` files in all; a node whose inputs
were left out says ``truncated``. Trees are read once per commit per trace.

Must not write anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeweave.errors import NotFound
from edgeweave.pipelines.datums import parse_part_identity, split_identity
from edgeweave.pipelines.jobinfo import LineageNode
from edgeweave.pipelines.jobstore import JobStore
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.trees import FileTree, normalize_path

DEFAULT_MAX_DEPTH = 16
DEFAULT_MAX_FILES = 1000


@dataclass
class _Trace:
    repos: Repos
    jobs: JobStore
    max_files: int
    trees: dict[str, FileTree] = field(default_factory=dict)
    files: int = 0

    async def tree(self, commit: str) -> FileTree:
        if commit not in self.trees:
            self.trees[commit] = await self.repos.tree(commit)
        return self.trees[commit]


async def trace_lineage(
    repos: Repos,
    jobs: JobStore,
    repo: str,
    commit: str,
    path: str,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_files: int = DEFAULT_MAX_FILES,
) -> LineageNode:
    """The lineage of the file ``path`` in ``commit`` of ``repo`` (NotFound: no such file)."""
    trace = _Trace(repos, jobs, max_files)
    path = normalize_path(path)
    tree = await trace.tree(commit)
    i = tree.index(path)
    if i is None:
        raise NotFound(f"no file {path} in {repo}@{commit}")
    node = LineageNode(repo, commit, path, tree.digests[i], tree.sizes[i])
    trace.files = 1
    await _expand(trace, node, max_depth)
    return node


async def _expand(trace: _Trace, node: LineageNode, depth: int) -> None:
    job = await trace.jobs.job_for_output(node.commit)
    if job is None:
        return  # put by a user (or copied in): the end of the chain
    node.pipeline, node.job = job.pipeline, job.id
    owner = await trace.jobs.output_owner(job, node.path)
    if owner is None:
        return
    node.datum, node.datum_job = owner.datum_id, owner.job
    if depth <= 0:
        node.truncated = True
        return
    # a skipped datum was run by an earlier job: its inputs are the commits that job read
    ran = job if owner.job == job.id else await trace.jobs.job(owner.job)
    for part in split_identity(owner.identity):
        name, repo, matched = parse_part_identity(part)
        commit = ran.input_commits.get(name)
        if not commit:
            continue
        try:
            tree = await trace.tree(commit)
        except NotFound:
            node.truncated = True  # the input commit was deleted since
            continue
        i = tree.index(matched)
        lo, hi = (i, i + 1) if i is not None else tree.dir_range(matched)
        if matched == "/":
            lo, hi = 0, len(tree)
        for j in range(lo, hi):
            if trace.files >= trace.max_files:
                node.truncated = True
                return
            trace.files += 1
            child = LineageNode(repo, commit, tree.paths[j], tree.digests[j], tree.sizes[j])
            node.inputs.append(child)
            await _expand(trace, child, depth - 1)
