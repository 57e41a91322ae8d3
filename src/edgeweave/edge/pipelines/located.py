"""Repos located on this node (``Repo.spec.location: {node: NAME}``): created here, reported up.

The cloud sends the node every ``Repo`` object located on it (desired state, like its
pipelines). :class:`LocatedRepos` creates each repo in the node's store when missing — so
`edgeweave edge file put` and the node's pipelines can use it — and reports every finished
commit of it upstream, oldest first, through the outbox (``repo.commit``,
:mod:`edgeweave.pipelines.commitreport`): the cloud records the commit's metadata and file
list, the bytes stay here. What was reported is remembered per branch in
``DATA/pipelines/reported.json`` (written after the outbox took the entry: a crash between the
two reports a commit twice, which the cloud ignores), so commits made while the cloud was away,
or while the agent was stopped, are reported later — none is skipped.

Must not know the link: the outbox carries the reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path

from edgeweave.edge.outbox import Outbox
from edgeweave.errors import AlreadyExists, EdgeweaveError, NotFound
from edgeweave.pipelines.commitreport import COMMIT_TOPIC, encode_commit_report
from edgeweave.pipelines.commits import CommitInfo
from edgeweave.pipelines.repo import Repos

log = logging.getLogger(__name__)

REPORTED_FILE = "reported.json"


class LocatedRepos:
    def __init__(self, repos: Repos, outbox: Outbox, root: Path) -> None:
        self._repos = repos
        self._outbox = outbox
        self._path = root / REPORTED_FILE
        self._names: set[str] = set()
        self._reported: dict[str, dict[str, str]] = self._load()  # repo -> branch -> commit
        self._wake = asyncio.Event()

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            doc = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict):
            return {}
        return {
            str(r): {str(b): str(c) for b, c in heads.items()}
            for r, heads in doc.items()
            if isinstance(heads, dict)
        }

    def _save(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._reported, sort_keys=True))
        os.replace(tmp, self._path)

    @property
    def names(self) -> set[str]:
        return set(self._names)

    async def update(self, names: set[str]) -> None:
        """The repos located here now: create the new ones."""
        for name in names - self._names:
            with contextlib.suppress(AlreadyExists):
                await self._repos.create_repo(name)
        self._names = set(names)
        self._wake.set()

    def commit_finished(self, repo: str) -> None:
        if repo in self._names:
            self._wake.set()

    async def run(self) -> None:
        """Until cancelled: report what is new after each finished commit."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            for name in sorted(self._names):
                try:
                    await self._report_new(name)
                except EdgeweaveError as e:
                    log.warning("repo %s: cannot report its commits: %s", name, e.message)

    async def _report_new(self, repo: str) -> None:
        try:
            commits = await self._repos.list_commits(repo)  # newest first
        except NotFound:
            return
        heads = self._reported.setdefault(repo, {})
        by_branch: dict[str, list[CommitInfo]] = {}
        for info in commits:
            by_branch.setdefault(info.branch, []).append(info)
        for branch, infos in sorted(by_branch.items()):
            new: list[CommitInfo] = []
            for info in infos:
                if info.id == heads.get(branch):
                    break
                if info.finished_at is not None:
                    new.append(info)
            for info in reversed(new):
                manifest = await self._repos.manifest(info.id)
                seq = self._outbox.append_nowait(COMMIT_TOPIC, encode_commit_report(manifest))
                await self._outbox.wait_durable(seq)  # on disk before it counts as reported
                heads[branch] = info.id
                await asyncio.to_thread(self._save)
