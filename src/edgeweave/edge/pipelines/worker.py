"""This node as a cloud worker: fetch a cloud pipeline's inputs, push its outputs back.

A node labelled ``edgeweave.io/worker=cloud`` may be handed cloud-placed pipelines by the
cloud's controller (``edgeweave.cloud.pipelines.workers``); it receives each as desired state,
with two annotations: ``edgeweave.io/cloud-worker`` (this node) and
``edgeweave.io/worker-inputs`` (the newest cloud commit of each input branch). The pipeline
host runs the pipeline with the engine's scheduler on the node's repos like any pipeline placed
here; :class:`EdgeWorkers` adds the two transfers around it:

- **inputs**: every commit the annotation names that the node's repos lack is fetched the
  Copier's way (:func:`~.copier.fetch_commit`: a URL the hub signs only for those commits,
  the manifest, then only the missing chunks), onto the same repo and branch with the same
  commit id; then the scheduler is woken for the repo and runs a job on it.
- **outputs**: when a commit is finished on the pipeline's output repo (a job of it ran to
  success), its newest commit is pushed to the cloud with the Merger's transport
  (:func:`~.merger.push_commit` to an ``output_url``): the chunks the cloud lacks, then the
  commit, which the cloud imports onto ``master`` of its output repo with the job's
  provenance. Also once after start, so a push cut off by a restart completes (the cloud
  answers ``imported: false`` for a commit it has).

Failures (the cloud away, a URL expired, the pipeline handed elsewhere meanwhile) are logged
and retried with capped backoff. Must not know the link or HTTP beyond the callables given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from edgeweave.aio.backoff import Backoff
from edgeweave.aio.rounds import run_rounds
from edgeweave.edge.pipelines.copier import Fetch, Sign, fetch_commit
from edgeweave.edge.pipelines.merger import Send, SignMerge, push_commit
from edgeweave.errors import EdgeweaveError, NotFound
from edgeweave.pipelines.repo import Repos

log = logging.getLogger(__name__)

OnFetched = Callable[[str], None]  # repo


@dataclass(frozen=True)
class WorkerWanted:
    namespace: str
    inputs: frozenset[str]  # the cloud commits the pipeline's inputs are at


class EdgeWorkers:
    def __init__(
        self,
        repos: Repos,
        sign_commit: Sign,
        fetch: Fetch,
        sign_output: SignMerge,
        send: Send,
        on_fetched: OnFetched,
        backoff: Backoff | None = None,
    ) -> None:
        self._repos = repos
        self._sign_commit = sign_commit
        self._fetch = fetch
        self._sign_output = sign_output
        self._send = send
        self._on_fetched = on_fetched
        self._backoff = backoff or Backoff(1.0, 30.0)
        self._wanted: dict[str, WorkerWanted] = {}
        self._pushed: dict[str, str] = {}  # pipeline -> output commit the cloud has
        self._wake = asyncio.Event()
        self.pushes = 0  # output commits the cloud imported (statistics)

    def update(self, wanted: dict[str, WorkerWanted]) -> None:
        """The pipelines this node runs as a cloud worker now (name → what they read)."""
        self._wanted = dict(wanted)
        for name in [n for n in self._pushed if n not in wanted]:
            del self._pushed[name]  # handed back: push again if it comes back
        self._wake.set()

    def commit_finished(self, repo: str) -> None:
        if repo in self._wanted:  # an output repo: the pipeline's job made a commit
            self._wake.set()

    async def run(self) -> None:
        """Until cancelled."""
        await run_rounds(self._wake, self._backoff, self._round)

    async def _round(self) -> bool:
        ok = True
        for name, want in list(self._wanted.items()):
            try:
                await self._fetch_inputs(want)
                await self._push_output(name, want)
            except EdgeweaveError as e:
                ok = False
                log.warning("cloud worker: pipeline %s: %s; retrying", name, e.message)
        return ok

    async def _fetch_inputs(self, want: WorkerWanted) -> None:
        for commit in sorted(want.inputs):
            try:
                await self._repos.inspect_commit(commit)
                continue  # here already
            except NotFound:
                pass
            manifest, report = await fetch_commit(
                self._repos, self._sign_commit, self._fetch, commit
            )
            log.info(
                "cloud worker: input %s@%s fetched (%d bytes moved)",
                manifest.info.repo,
                commit,
                report.bytes_moved,
            )
            self._on_fetched(manifest.info.repo)

    async def _push_output(self, name: str, want: WorkerWanted) -> None:
        try:
            head = await self._repos.latest(name)
        except NotFound:
            return  # no job has run yet
        if head is None or self._pushed.get(name) == head.id:
            return
        url = await self._sign_output(want.namespace, name)
        answer, _, moved = await push_commit(self._repos, self._send, url, head.id)
        self._pushed[name] = head.id
        if answer.get("imported"):
            self.pushes += 1
            log.info("cloud worker: output %s@%s pushed (%d bytes moved)", name, head.id, moved)
