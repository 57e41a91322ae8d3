"""What every pipeline host does on start: open its repos and job store, and recover.

A host (the cloud's pipeline worker, an edge node's pipeline host) keeps under its ``root``:
``repos.db`` and ``chunks/`` (its repos), ``jobs.db`` (jobs, datum records, history) and
``work/`` (datum logs). :func:`recover` runs before any job: jobs a stopped host left
``running`` are marked ``killed`` and their output commits deleted, and every commit left
open (by them, or by an interrupted upload) is deleted — a host is the only writer of its
repos, so an open commit at start belongs to nobody.

Must not know where it runs (cloud or edge), or start the scheduler (the host does).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from edgeweave.errors import NotFound
from edgeweave.pipelines.jobstore import JobStore
from edgeweave.pipelines.repo import Repos


async def recover(repos: Repos, jobs: JobStore) -> None:
    for job in await jobs.interrupt_running(time.time()):
        with contextlib.suppress(NotFound):
            if job.output_commit is not None:
                await repos.delete_commit(job.output_commit)
    for repo in await repos.repo_infos():
        for head in repo.branches.values():
            if head is None:
                continue
            info = await repos.inspect_commit(head)
            if not info.finished:
                await repos.delete_commit(head)


@contextlib.asynccontextmanager
async def open_host_stores(root: Path) -> AsyncIterator[tuple[Repos, JobStore]]:
    """The repos and job store under ``root``, recovered; closed on leaving."""
    repos = Repos(root)
    jobs = JobStore(root / "jobs.db")
    await repos.open()
    try:
        await jobs.open()
        try:
            await recover(repos, jobs)
            yield repos, jobs
        finally:
            await jobs.aclose()
    finally:
        await repos.aclose()
