"""File-level lineage: from an output file back to the input files it was made from.

For a file at ``repo@commit:path``: the job whose output commit it is (none: a user's file, a
leaf), the datum that wrote the path in that job (``JobStore.output_owner`` — a skipped datum
is found in the job that ran it), and the datum's input files in the commits the job that ran
the datum read.
Each input file is traced the same way, so when an input repo is another pipeline's output
the chain goes on across pipelines until it reaches files users put.

Across nodes: a job an edge node (or a cloud worker) reported counts like this host's own
(its report names the paths each datum wrote). A Merger's merged commit, which no job made,
names the node-branch commits it was made from in its provenance: a merged file leads to the
file it was placed from (:mod:`.mergedview`, same digest), whose commit is the output of the
job the node reported. An input commit this host does not hold (it lives on the node that
ran the job) ends the chain with a file that says so (``node``), its digest and size unknown
— unless a job the same node reported made it, which is followed too. A file of a repo
located on a node (its commits recorded in the cloud from the node's reports) says its node
as well.

Bounded: at most ``max_depth`` steps back and ``max_files`` files in all; a node whose inputs
were left out says ``truncated``. Trees and commits are read once per trace.

Must not write anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeweave.errors import InvalidObject, NotFound
from edgeweave.pipelines.commitreport import made_on
from edgeweave.pipelines.commits import CommitInfo
from edgeweave.pipelines.datums import parse_part_identity, split_identity
from edgeweave.pipelines.jobinfo import JobInfo, LineageNode
from edgeweave.pipelines.jobstore import JobStore
from edgeweave.pipelines.mergedview import parse_provenance, source_paths
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
    infos: dict[str, CommitInfo] = field(default_factory=dict)
    files: int = 0

    async def info(self, commit: str) -> CommitInfo:
        if commit not in self.infos:
            self.infos[commit] = await self.repos.inspect_commit(commit)
        return self.infos[commit]

    async def tree(self, commit: str) -> FileTree:
        if commit not in self.trees:
            self.trees[commit] = await self.repos.tree(commit)
        return self.trees[commit]

    def take(self) -> bool:
        """Count one more file; False when the limit is reached."""
        if self.files >= self.max_files:
            return False
        self.files += 1
        return True


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
        if node.node is None:  # put by a user (or copied in), or merged from node branches
            info = await trace.info(node.commit)
            node.node = made_on(info)  # a located repo's commit: its bytes are on the node
            await _expand_merged(trace, node, info, depth)
        return
    node.pipeline, node.job, node.job_node = job.pipeline, job.id, job.node
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
        commit = ran.input_commits.get(name) or _commit_of(ran, repo)
        if not commit:
            continue
        try:
            tree = await trace.tree(commit)
        except NotFound:
            if not ran.node:
                node.truncated = True  # the input commit was deleted since
                continue
            # the input lives on the node that ran the job: the chain ends there
            if not trace.take():
                node.truncated = True
                return
            child = LineageNode(repo, commit, matched, "", None, node=ran.node)
            node.inputs.append(child)
            await _expand(trace, child, depth - 1)
            continue
        i = tree.index(matched)
        lo, hi = (i, i + 1) if i is not None else tree.dir_range(matched)
        if matched == "/":
            lo, hi = 0, len(tree)
        for j in range(lo, hi):
            if not trace.take():
                node.truncated = True
                return
            child = LineageNode(repo, commit, tree.paths[j], tree.digests[j], tree.sizes[j])
            node.inputs.append(child)
            await _expand(trace, child, depth - 1)


def _commit_of(job: JobInfo, repo: str) -> str:
    """The commit ``job`` read of ``repo`` when it read one branch of it (older reports do
    not name the commit of each input)."""
    commits = {c for r, _, c in job.inputs if r == repo}
    return commits.pop() if len(commits) == 1 else ""


async def _expand_merged(trace: _Trace, node: LineageNode, info: CommitInfo, depth: int) -> None:
    """A file a Merger placed in its merged view: the file of the node-branch commit (named
    in the merged commit's provenance) it was placed from, with the same digest."""
    for entry in info.provenance:
        parsed = parse_provenance(entry)
        if parsed is None or parsed[0] != node.repo or parsed[1] == node.commit:
            continue
        try:
            source = await trace.info(parsed[1])
            tree = await trace.tree(source.id)
        except (NotFound, InvalidObject):  # not a commit (a pipeline@version), or deleted
            continue
        if source.repo != node.repo or source.branch == info.branch:
            continue
        for path in source_paths(node.path, source.branch):
            i = tree.index(path)
            if i is None or tree.digests[i] != node.digest:
                continue
            node.merged_from = source.branch
            if depth <= 0 or not trace.take():
                node.truncated = True
                return
            child = LineageNode(node.repo, source.id, path, tree.digests[i], tree.sizes[i])
            node.inputs.append(child)
            await _expand(trace, child, depth - 1)
            return
