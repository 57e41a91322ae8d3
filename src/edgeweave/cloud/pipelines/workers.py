"""Cloud workers: cloud-placed pipelines handed to Ready nodes labelled as cloud workers.

DESIGN.md §6: a pipeline without ``placement`` runs on the cloud's built-in worker, or on
agents labelled as cloud workers when any are joined — that is how cloud-side work scales
out. :class:`CloudWorkers` is the controller that decides which, per pipeline:

- It hears of ``Node`` objects (the store feed follows them): a node is a **worker** while it
  carries the label and its ``status.phase`` is ``Ready`` (the hub's lifecycle writes
  ``NotReady`` after ``hub.node_grace_s`` without a heartbeat).
- Each cloud-placed pipeline (no Copier or Merger, no ``cron`` input) goes to the worker
  :func:`~edgeweave.pipelines.cloudworkers.choose_worker` picks (rendezvous hashing: adding
  or losing a worker moves few pipelines), or to nobody — the built-in worker — when no
  worker is Ready.
- The decision is written into the Pipeline's metadata, where the hub reads it: the
  annotation ``edgeweave.io/cloud-worker: NODE`` places the pipeline on that node as desired
  state (persisted, then acked, like an edge pipeline), and ``edgeweave.io/worker-inputs``
  names the newest cloud commit of each input branch, rewritten whenever one of them gets a
  new commit (as the Copier's annotation is): the worker fetches those commits — only their
  missing chunks — with URLs the hub signs for exactly them.
- :meth:`runs_on` is what the cloud's scheduler asks (its ``elsewhere``): a pipeline handed
  to a worker is not run here; when the decision changes, ``on_moved(name)`` makes the
  scheduler look again (a running job of the old host is cancelled).

Nothing is decided before the feed listed Pipelines and Nodes (:meth:`start`): until then
the assignments stored in the annotations stand, so a cloud restart moves nothing. The
worker pushes its output commits back (``/api/v1/pfs/output``): :meth:`accept_output`
imports one onto ``master`` of the pipeline's output repo — only from the node the pipeline
is handed to now — and wakes the pipelines reading it.

Must not run jobs, talk HTTP, or send anything to nodes (the hub's desired state does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from edgeweave.cloud.store.base import JSONObject, Store
from edgeweave.errors import BadRequest, Conflict, EdgeweaveError, NotFound
from edgeweave.models.pipelines import (
    CLOUD_WORKER_ANNOTATION,
    WORKER_INPUTS_ANNOTATION,
    WORKER_LABEL_KEY,
    WORKER_LABEL_VALUE,
    Input,
)
from edgeweave.pipelines.cloudworkers import choose_worker, encode_inputs
from edgeweave.pipelines.datums import TreeKey, members_of, tree_keys
from edgeweave.pipelines.jobstore import JobStore
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.scheduler import is_cloud_placed, upstream_of
from edgeweave.pipelines.spec import PipelineDoc
from edgeweave.pipelines.transfer import CommitManifest

log = logging.getLogger(__name__)

PIPELINE = "Pipeline"
OUTPUT_BRANCH = "master"
CAS_ATTEMPTS = 8
RETRY_DELAY_S = 1.0
OnMoved = Callable[[str], Awaitable[None]]  # pipeline name


@dataclass
class _Pipeline:
    namespace: str
    eligible: bool  # cloud-placed, no pattern that needs nodes, no cron input
    inputs: tuple[TreeKey, ...]
    version: str


def _has_cron(spec_input: Input) -> bool:
    return spec_input.cron is not None or any(_has_cron(m) for m in members_of(spec_input))


def runs_on_workers(doc: PipelineDoc | None) -> bool:
    """True when cloud workers may run this pipeline (else the built-in worker always does)."""
    if doc is None or not is_cloud_placed(doc):
        return False
    spec = doc.pipeline.spec
    if spec.pattern is not None and (spec.pattern.copier or spec.pattern.merger):
        return False
    return not _has_cron(spec.input)


def is_worker(obj: JSONObject) -> bool:
    """A Node that takes cloud work now: labelled as a worker and Ready."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    status = obj.get("status") or {}
    return labels.get(WORKER_LABEL_KEY) == WORKER_LABEL_VALUE and status.get("phase") == "Ready"


class CloudWorkers:
    def __init__(self, store: Store, repos: Repos, on_moved: OnMoved) -> None:
        self._store = store
        self._repos = repos
        self._on_moved = on_moved
        self._workers: set[str] = set()
        self._pipelines: dict[str, _Pipeline] = {}
        self._assigned: dict[str, str] = {}  # pipeline -> worker (what was written)
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._started = False
        self._progress = asyncio.Condition()
        self.progress = 0  # counts moves, imported outputs and reported jobs

    # ---- fed by the store feed and the scheduler ---------------------------------------------

    def runs_on(self, name: str) -> str | None:
        """The worker pipeline ``name`` is handed to (None: the cloud runs it)."""
        return self._assigned.get(name)

    def workers(self) -> list[str]:
        return sorted(self._workers)

    def node_event(self, event_type: str, obj: JSONObject) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        ready = event_type != "DELETED" and is_worker(obj)
        if ready == (name in self._workers):
            return
        if ready:
            self._workers.add(name)
        else:
            self._workers.discard(name)
        self._mark(self._pipelines)

    def pipeline_event(self, event_type: str, obj: JSONObject, doc: PipelineDoc | None) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        if event_type == "DELETED":
            self._pipelines.pop(name, None)
            self._assigned.pop(name, None)
            return
        eligible = runs_on_workers(doc)
        inputs = tuple(tree_keys(doc.pipeline.spec.input)) if doc is not None else ()
        version = doc.version if doc is not None else ""
        namespace = str(meta.get("namespace") or "")
        self._pipelines[name] = _Pipeline(namespace, eligible, inputs, version)
        stored = (meta.get("annotations") or {}).get(CLOUD_WORKER_ANNOTATION)
        if self._started:  # decided now, before the scheduler looks; written by reconcile
            want = choose_worker(name, self._workers) if eligible else None
        elif eligible:  # as stored until the feed listed everything
            want = stored if isinstance(stored, str) and stored else self._assigned.get(name)
        else:
            want = None
        if want is None:
            self._assigned.pop(name, None)
        else:
            self._assigned[name] = want
        self._mark([name])

    def commit_finished(self, repo: str) -> None:
        """A commit was finished on ``repo``: workers reading it are told the new head."""
        self._mark(
            n for n, p in self._pipelines.items() if n in self._assigned and repo in dict(p.inputs)
        )

    def start(self) -> None:
        """Pipelines and Nodes are listed: decide from now on."""
        self._started = True
        self._mark(self._pipelines)

    def _mark(self, names: Iterable[str]) -> None:
        self._dirty.update(names)
        if self._dirty and self._started:
            self._wake.set()

    # ---- the controller ------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: on each wake, :meth:`reconcile`; failures are retried."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not await self.reconcile():
                await asyncio.sleep(RETRY_DELAY_S)  # a retry timer: the store was unavailable
                self._wake.set()

    async def reconcile(self) -> bool:
        """Bring every marked pipeline's assignment up to date now; False when some could
        not be written (they stay marked)."""
        if not self._started:
            return True
        ok = True
        for name in sorted(self._dirty):
            self._dirty.discard(name)
            try:
                await self._reconcile(name)
            except EdgeweaveError as e:
                log.warning("pipeline %s: cannot hand it to a worker: %s", name, e.message)
                self._dirty.add(name)
                ok = False
        return ok

    async def _reconcile(self, name: str) -> None:
        p = self._pipelines.get(name)
        if p is None:
            return
        want = choose_worker(name, self._workers) if p.eligible else None
        inputs = encode_inputs(await self._heads(p.inputs)) if want is not None else None
        if not await self._write(p.namespace, name, want, inputs):
            return  # deleted meanwhile
        before = self._assigned.pop(name, None)
        if want is not None:
            self._assigned[name] = want
        if before != want:
            log.info("pipeline %s: now run by %s", name, want or "the cloud's built-in worker")
            await self._on_moved(name)
            await self.made_progress()

    async def _heads(self, keys: Iterable[TreeKey]) -> dict[TreeKey, str]:
        heads: dict[TreeKey, str] = {}
        for repo, branch in keys:
            try:
                info = await self._repos.latest(repo, branch)
            except NotFound:
                continue  # no such repo yet: nothing to fetch
            if info is not None:
                heads[(repo, branch)] = info.id
        return heads

    async def _write(
        self, namespace: str, name: str, worker: str | None, inputs: str | None
    ) -> bool:
        """Set (or remove) both annotations; False when the Pipeline is gone."""
        for _ in range(CAS_ATTEMPTS):
            try:
                obj = await self._store.get(PIPELINE, namespace, name)
            except NotFound:
                return False
            notes: dict[str, Any] = dict(obj["metadata"].get("annotations") or {})
            wanted = dict(notes)
            for key, value in (
                (CLOUD_WORKER_ANNOTATION, worker),
                (WORKER_INPUTS_ANNOTATION, inputs),
            ):
                if value is None:
                    wanted.pop(key, None)
                else:
                    wanted[key] = value
            if wanted == notes:
                return True
            obj["metadata"]["annotations"] = wanted
            try:
                await self._store.update(obj)
                return True
            except Conflict:
                continue
        raise Conflict(f"pipeline {namespace}/{name} kept changing; its worker is not written")

    # ---- output pushed by a worker -------------------------------------------------------

    async def accept_output(
        self, namespace: str, name: str, node: str, manifest: CommitManifest
    ) -> bool:
        """Import a worker's output commit onto ``master`` of repo ``name``; False when it is
        here already (a retried push). Conflict unless ``name`` is handed to ``node`` now."""
        p = self._pipelines.get(name)
        if p is None or p.namespace != namespace or self._assigned.get(name) != node:
            raise Conflict(f"pipeline {namespace}/{name} is not run by cloud worker {node} now")
        if manifest.info.repo != name:
            raise BadRequest(
                f"commit {manifest.info.id} is of repo {manifest.info.repo!r}, not {name!r}"
            )
        imported = await self._repos.import_manifest(manifest, branch=OUTPUT_BRANCH, repo=name)
        await self.made_progress()
        return imported

    # ---- `pipeline wait` -----------------------------------------------------------------

    async def made_progress(self) -> None:
        """Something a waiter may be waiting for happened (also: a worker's job reported)."""
        async with self._progress:
            self.progress += 1
            self._progress.notify_all()

    async def wait_progress(self, seen: int, timeout_s: float) -> None:
        """Until :attr:`progress` differs from ``seen``, at most ``timeout_s``."""
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._progress.wait_for(lambda: self.progress != seen)

    async def caught_up(self, names: list[str] | None, jobs: JobStore) -> bool:
        """True when every pipeline handed to a worker among ``names`` (all when None) and
        upstream of them has dealt with the newest commits of its inputs: its output repo's
        head was made from them (provenance) or the worker reported a failed job on them."""
        for name in self._upstream(names):
            worker, p = self._assigned.get(name), self._pipelines.get(name)
            if worker is None or p is None:
                continue
            heads = await self._heads(p.inputs)
            if not heads:
                continue  # waiting for input commits
            made = {f"{repo}@{commit}" for (repo, _), commit in heads.items()}
            made.add(f"pipeline:{name}@{p.version}")
            try:
                out = await self._repos.latest(name)
            except NotFound:
                out = None
            if out is not None and made <= set(out.provenance):
                continue
            if not any(
                j.node == worker
                and j.version == p.version
                and j.state in ("failure", "killed")
                and {(r, b): c for r, b, c in j.inputs if c} == heads
                for j in await jobs.list_jobs(name, limit=10)
            ):
                return False
        return True

    def _upstream(self, names: list[str] | None) -> set[str]:
        if names is None:
            return set(self._pipelines)
        pipelines = self._pipelines

        def reads(name: str) -> list[str] | None:
            p = pipelines.get(name)
            return None if p is None else [repo for repo, _ in p.inputs]

        return upstream_of(names, reads)
