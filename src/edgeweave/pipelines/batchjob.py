"""A batched job's datums (``datum_batching``) run through its workers as a stream.

Per datum, what is not the user's work is file-system work — before: its root (directories,
input files); after: its outputs found and read, its log's tail, its root emptied — and
bookkeeping (its log file is made only if the code prints for it: ``batch.DatumLog``). Done
for one datum at a time each step is a hop to a worker thread, and on a busy host a hop costs
as much as the step; and directories made and removed per datum cost more than the files in
them. So:

- a **builder** prepares the roots of the next datums several at a time (groups of 1, 2, 4 …
  up to :data:`BUILD_GROUP`, so the first datum starts at once): one database read for the
  input objects not written yet, one thread call for the files;
- each **worker** (:class:`~edgeweave.pipelines.batch.BatchWorker`) keeps its process a few
  prepared datums ahead, with their attempts, retries and ``err_cmd`` (``batch.serve``);
- a **finisher** takes the datums that ended since its last round (waiting up to
  :data:`FINISH_WAIT_S` for :data:`FINISH_GROUP` of them, unless the roots ran out) and, in
  one thread call,
  collects their outputs (reading the small ones), takes their log tails and empties their
  roots, then hands them to the job (``record``), which queues their outputs for the group
  commit and reports them done once those are durable (``jobs.py``, ``outputs.py``).

**Roots are reused.** A root (``WORK/<job>/root-<n>/``) keeps its ``out/`` and its input
directories between datums: emptied — everything under ``out/`` and the input directories,
and anything else written in the root, removed — it serves the next datum, so each datum
still starts with its own inputs and an empty ``out/``. A root that cannot be emptied is not
reused. An input object only one datum of the job reads is written straight into that
datum's root (by rename); one read by several datums is written once into the job's cache,
read-only, and hard-linked (``runner.py``).

At most :data:`MAX_ROOTS` datums hold a root at a time (built, running, or ended and not yet
collected), and a finisher's round reads at most :data:`READ_BUDGET_BYTES` of outputs (the
rest is read when it is put). Failing or cancelling tears the whole stream down; what is left
under the job directory goes with the job (``DatumRunner.cleanup_job``). This module must not
know about output commits or plans.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgeweave.models.pipelines import Transform
from edgeweave.pipelines.batch import BatchDatum, BatchWorker, DatumLog, job_workers, serve
from edgeweave.pipelines.datums import Datum
from edgeweave.pipelines.plan import DatumState
from edgeweave.pipelines.runner import (
    KILL_GRACE_S,
    LOG_TAIL_BYTES,
    SMALL_OUTPUT_BYTES,
    DatumContext,
    DatumResult,
    DatumRunner,
    _collect,
    _seal,
)
from edgeweave.pipelines.spec import RunSettings

BUILD_GROUP = 32  # most datums whose roots are built in one thread call
MAX_ROOTS = 128  # most datums holding a root at a time
READ_BUDGET_BYTES = 16 * 1024 * 1024  # most output bytes a finisher's round reads
FINISH_GROUP = 32  # a finisher's round waits for this many datums to end ...
FINISH_WAIT_S = 0.02  # ... or this long, whichever comes first (or for none: no root left)


@dataclass
class Finished:
    """A datum that ended: its result (outputs collected) and when it started (Unix s)."""

    datum: Datum
    result: DatumResult
    started_at: float


Record = Callable[[list[Finished]], Awaitable[None]]


@dataclass
class _Root:
    path: Path
    dirs: set[Path] = field(default_factory=set)  # directories under it known to exist
    built: bool = False  # its out/ exists


@dataclass
class _Prepared(BatchDatum):
    datum: Datum
    root: _Root


class _Roots:
    """The job's roots: at most :data:`MAX_ROOTS` held, emptied ones reused."""

    def __init__(self, job_dir: Path) -> None:
        self._job_dir = job_dir
        self._free: list[_Root] = []
        self._made = 0
        self.limit = MAX_ROOTS
        self._held = asyncio.Semaphore(self.limit)

    async def take(self) -> _Root:
        await self._held.acquire()
        if self._free:
            return self._free.pop()
        self._made += 1
        return _Root(self._job_dir / f"root-{self._made}")

    @property
    def exhausted(self) -> bool:
        """Every root is held: the builder waits for the finisher."""
        return self._held.locked()

    def give_back(self, root: _Root, reusable: bool) -> None:
        if reusable:
            self._free.append(root)
        self._held.release()


async def run_batched_job(
    runner: DatumRunner,
    datums: Sequence[Datum],
    transform: Transform,
    settings: RunSettings,
    ctx: DatumContext,
    record: Record,
) -> None:
    """Run ``datums`` through the job's workers; ``record`` gets each datum that ended
    (groups of them, in the order they ended) and may raise to stop the job."""
    workers = job_workers(runner, transform, settings, ctx)
    roots = _Roots(runner.work_dir / ctx.job_id)
    ready: asyncio.Queue[_Prepared | None] = asyncio.Queue(MAX_ROOTS + len(workers))
    ended: list[_Prepared] = []
    wake = asyncio.Event()
    serving = len(workers)

    def done(p: _Prepared) -> None:
        ended.append(p)
        wake.set()

    async def work(worker: BatchWorker) -> None:
        nonlocal serving
        try:
            await serve(worker, ready, done, transform, settings)
        finally:
            serving -= 1
            wake.set()

    def more_to_come() -> bool:
        return bool(serving) and len(ended) < FINISH_GROUP and not roots.exhausted

    async def finish() -> None:
        while serving or ended:
            await wake.wait()
            wake.clear()
            if ended and more_to_come():  # fewer rounds: each is a thread call and a commit
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FINISH_WAIT_S):
                        while more_to_come():
                            await wake.wait()
                            wake.clear()
            group, ended[:] = list(ended), []
            if group:
                await _finish(group, record, roots)

    try:
        async with asyncio.TaskGroup() as tasks:
            build = _build(runner, datums, transform, ctx, ready, roots, len(workers))
            tasks.create_task(build, name="batch-builder")
            for i, worker in enumerate(workers):
                tasks.create_task(work(worker), name=f"batch-worker-{i}")
            tasks.create_task(finish(), name="batch-finisher")
    finally:
        for worker in workers:
            await worker.close(grace_s=KILL_GRACE_S)
        for p in [*ended, *_drain(ready)]:
            p.log.close()


async def _build(
    runner: DatumRunner,
    datums: Sequence[Datum],
    transform: Transform,
    ctx: DatumContext,
    ready: asyncio.Queue[_Prepared | None],
    roots: _Roots,
    workers: int,
) -> None:
    """Build roots group by group and queue them for the workers, then one end per worker."""
    objects = runner.work_dir / ctx.job_id / ".objects"
    await asyncio.to_thread(objects.mkdir, parents=True, exist_ok=True)
    uses = Counter(digest for d in datums for _, _, digest, _ in d.files())
    cached: set[str] = set()  # objects in the job's cache (only the builder writes there)
    start, size = 0, 1
    while start < len(datums):
        group = datums[start : start + size]
        # a group takes its roots before any is queued: never more than there are
        start, size = start + size, min(size * 2, BUILD_GROUP, roots.limit)
        taken = [await roots.take() for _ in group]
        try:
            prepared = await _prepare(runner, group, taken, transform, ctx, objects, uses, cached)
        except BaseException:
            for root in taken:
                roots.give_back(root, reusable=False)
            raise
        for p in prepared:
            await ready.put(p)
    for _ in range(workers):
        await ready.put(None)


async def _prepare(
    runner: DatumRunner,
    group: Sequence[Datum],
    taken: list[_Root],
    transform: Transform,
    ctx: DatumContext,
    objects: Path,
    uses: Counter[str],
    cached: set[str],
) -> list[_Prepared]:
    """The roots of ``group`` in ``taken``: the objects not written yet written (one database
    read, one thread), then every root's files and log in one thread call."""
    partials: dict[Path, str] = {}  # partial file -> digest
    # (root, source, its place, moved): an object only one datum reads is moved there from
    # its partial file, one of the cache is linked
    places: list[tuple[_Root, Path, Path, bool]] = []
    empty: list[tuple[_Root, Path]] = []  # an input part with no files: its directory only
    for datum, root in zip(group, taken, strict=True):
        empty.extend(
            (root, root.path / p.input) for p in datum.parts if p.match.start == p.match.end
        )
        for name, path, digest, _ in datum.files():
            dest = root.path / name / path.lstrip("/")
            if uses[digest] == 1:  # unique in the job: no other file has this content
                partial = objects / f"{digest}.{os.getpid()}.once.part"
                partials[partial] = digest
                places.append((root, partial, dest, True))
            else:
                if digest not in cached:
                    partials[objects / f"{digest}.{os.getpid()}.part"] = digest
                    cached.add(digest)
                places.append((root, objects / digest, dest, False))
    if partials:
        await runner.materializer.write_objects([(d, p) for p, d in partials.items()])
    job_dir = runner.work_dir / ctx.job_id
    results = [
        DatumResult(d.id, DatumState.FAILED, 0, r.path, job_dir / f"{d.id[:32]}.log")
        for d, r in zip(group, taken, strict=True)
    ]

    def build() -> None:
        for partial, digest in partials.items():
            if uses[digest] > 1:
                _seal(partial, objects / digest)
        for root in taken:
            if not root.built:
                (root.path / "out").mkdir(parents=True, exist_ok=True)
                root.built = True
        for root, directory in empty:
            if directory not in root.dirs:
                directory.mkdir(exist_ok=True)
                root.dirs.add(directory)
        for root, source, dest, moved in places:
            if dest.parent not in root.dirs:
                dest.parent.mkdir(parents=True, exist_ok=True)
                root.dirs.add(dest.parent)
            if moved:
                os.replace(source, dest)
            else:
                try:
                    os.link(source, dest)
                except OSError:
                    shutil.copyfile(source, dest)

    await asyncio.to_thread(build)
    prepared: list[_Prepared] = []
    for datum, root, result in zip(group, taken, results, strict=True):
        env = runner._env(datum, transform, root.path, ctx)
        request = {"PFS": env["PFS"], "PACH_DATUM_ID": datum.id}
        request.update({part.input: env[part.input] for part in datum.parts})
        log = DatumLog(result.log_path)
        prepared.append(_Prepared(request, log, result, env, 0.0, datum, root))
    return prepared


async def _finish(group: list[_Prepared], record: Record, roots: _Roots) -> None:
    """Collect what ``group`` wrote and empty its roots (one thread call), then record it.
    A root with an output not read (large, or over the round's budget) is emptied after
    the job has put its files."""

    def collect() -> tuple[list[tuple[_Prepared, bool]], list[_Prepared]]:
        emptied: list[tuple[_Prepared, bool]] = []
        later: list[_Prepared] = []
        budget = READ_BUDGET_BYTES
        for p in group:
            result = p.result
            if result.state == DatumState.SUCCESS:
                read_up_to = SMALL_OUTPUT_BYTES if budget > 0 else -1
                result.outputs = _collect(result.root / "out", read_up_to)
                budget -= sum(len(o.data or b"") for o in result.outputs)
            result.log_tail = p.log.tail(LOG_TAIL_BYTES)
            result.logged = p.log.written
            p.log.close()
            if all(o.data is not None for o in result.outputs):
                emptied.append((p, _empty(p)))
            else:
                later.append(p)
        return emptied, later

    emptied, later = await asyncio.to_thread(collect)
    for p, ok in emptied:
        roots.give_back(p.root, ok)
    try:
        await record([Finished(p.datum, p.result, p.started_at) for p in group])
    finally:
        if later:
            results = await asyncio.to_thread(lambda: [_empty(p) for p in later])
            for p, ok in zip(later, results, strict=True):
                roots.give_back(p.root, ok)


def _empty(p: _Prepared) -> bool:
    """Empty a datum's root for the next one: ``out/`` and the input directories kept, empty;
    everything else removed. False when that failed (the root is not reused)."""
    root = p.root
    keep = {"out", *(part.input for part in p.datum.parts)}
    kept: set[Path] = set()
    try:
        with os.scandir(root.path) as entries:
            for entry in entries:
                if entry.name in keep and entry.is_dir(follow_symlinks=False):
                    _empty_dir(entry.path)
                    kept.add(root.path / entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        if root.path / "out" not in kept:
            (root.path / "out").mkdir()
    except OSError:
        return False
    root.dirs = kept
    return True


def _empty_dir(path: str) -> None:
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def _drain(ready: asyncio.Queue[_Prepared | None]) -> list[_Prepared]:
    items: list[_Prepared] = []
    while not ready.empty():
        item = ready.get_nowait()
        if item is not None:
            items.append(item)
    return items
