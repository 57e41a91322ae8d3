"""Cron inputs tick: each tick is a commit to the input's repo, which triggers a job.

As in Pachyderm, a pipeline's ``cron`` input reads a repo of its own, ``<pipeline>_<name>``
(``spec.cron_repo``), with glob ``/*``: a tick commits to its ``master`` an empty file named
after the tick time in RFC 3339, UTC (``2024-05-01T12:00:00Z``; fractions of a second only
when the schedule has them). With ``overwrite: true`` the same commit deletes the previous
ticks' files, so the repo holds only the newest and each job has one new datum; otherwise files
accumulate (each job still runs only the new tick's datum: the old ones are unchanged).

:func:`run_cron` is the tick task a host's scheduler runs for each cron input of a pipeline it
runs (cloud worker or edge node: the host's own clock drives it, so ticks go on offline). It
creates the repo when missing and deletes a tick commit a stopped host left open. The first
tick on a repo without ticks is one period after the task starts. Then each tick comes at
``Schedule.next_after`` the previous one. When more than one tick has come due at once (the
host was down or asleep, the clock jumped), **one** tick stands for all of them, named after
the moment it is made, and the schedule goes on from there: missed ticks are not replayed. A
tick that cannot be committed (a user's commit open on the branch, a full disk) is logged and
the next one is tried on schedule.

Must not: run jobs (``committed(repo)`` tells the scheduler), or read the wall clock except
through the injected :class:`~edgeweave.aio.clock.Clock`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from edgeweave.aio.clock import Clock
from edgeweave.errors import AlreadyExists, EdgeweaveError, NotFound
from edgeweave.models.pipelines import CronInput
from edgeweave.pipelines.cron import Schedule, parse_schedule
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.spec import cron_repo

log = logging.getLogger(__name__)

TICK_DESCRIPTION = "cron tick"


def tick_name(t: datetime) -> str:
    """RFC 3339 in UTC, whole seconds unless ``t`` has a fraction: ``2024-05-01T12:00:00Z``."""
    t = t.astimezone(UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_tick_name(path: str) -> datetime | None:
    """The time a tick file is named after (None: not a tick file)."""
    name = path.rsplit("/", 1)[-1]
    if not name.endswith("Z"):
        return None
    try:
        return datetime.fromisoformat(name[:-1] + "+00:00")
    except ValueError:
        return None


class CronTicker:
    """The ticks of one cron input of one pipeline into one host's repos."""

    def __init__(
        self,
        repos: Repos,
        pipeline: str,
        cron: CronInput,
        clock: Clock,
        committed: Callable[[str], None],
    ) -> None:
        self.repo = cron_repo(pipeline, cron.name)
        self.schedule: Schedule = parse_schedule(cron.spec, field="input.cron.spec")
        self._repos = repos
        self._overwrite = bool(cron.overwrite)
        self._clock = clock
        self._committed = committed

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.time(), UTC)

    async def prepare(self) -> datetime | None:
        """Create the repo if missing, delete a tick commit left open; the latest tick."""
        with contextlib.suppress(AlreadyExists):
            await self._repos.create_repo(self.repo, "ticks of a cron input")
        for info in await self._repos.list_commits(self.repo, "master"):
            if not info.finished and info.description == TICK_DESCRIPTION:
                await self._repos.delete_commit(info.id)
        head = await self._repos.latest(self.repo)
        if head is None:
            return None
        times = [t for t in map(parse_tick_name, (await self._repos.tree(head.id)).paths) if t]
        return max(times, default=None)

    async def run(self, latest: datetime | None) -> None:
        """Tick until cancelled (see the module doc); ``latest`` is what :meth:`prepare`
        returned."""
        due = self.schedule.next_after(latest or self.now().replace(microsecond=0))
        while True:
            now = self.now()
            if due > now:
                await self._clock.sleep((due - now).total_seconds())
                continue
            # more than this one tick due: the host was away; one tick stands for them all
            at = now.replace(microsecond=0) if self.schedule.next_after(due) <= now else due
            try:
                await self.tick(at)
            except EdgeweaveError as e:
                log.warning("cron input repo %s: tick %s not made: %s", self.repo, at, e.message)
            due = self.schedule.next_after(at)

    async def tick(self, at: datetime) -> str:
        """Commit the tick ``at`` (the previous ticks' files deleted under ``overwrite``);
        the commit id."""
        info = await self._repos.start_commit(
            self.repo, origin="auto", description=TICK_DESCRIPTION
        )
        try:
            if self._overwrite:
                with contextlib.suppress(NotFound):  # the first tick: nothing to delete
                    await self._repos.delete_file(info.id, "/")
            await self._repos.put_file(info.id, "/" + tick_name(at), b"")
            await self._repos.finish_commit(info.id)
        except BaseException:
            with contextlib.suppress(EdgeweaveError):
                await self._repos.delete_commit(info.id)
            raise
        self._committed(self.repo)
        return info.id
