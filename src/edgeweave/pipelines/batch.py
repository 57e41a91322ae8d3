"""Batched datums (``datum_batching: true``): one process of the user's code serves many datums.

For code that loads a model once. Each parallelism slot of a job holds a :class:`BatchWorker`:
the transform's ``cmd`` started once (again only after it dies) with the job's environment
(``PACH_JOB_ID``, ``PACH_OUTPUT_COMMIT_ID``, ``<input>_COMMIT``, ``PACH_DATUM_BATCHING=1``)
and the job directory as its working directory (unless ``working_dir`` is set). The datums
go to it one at a time over a line protocol:

- stdin, one JSON object per datum: the variables that differ per datum under the ``/pfs``
  contract — ``PFS`` (the datum's root, ``out/`` empty), ``PACH_DATUM_ID`` and ``<input>``
  (the path of the datum's entry of each input);
- stdout, one status line when the datum is done: ``ok``, or ``fail`` and a reason. Every
  other line of stdout and stderr (merged into one pipe, so the order holds) goes to the
  datum's log.

Per datum the contract is the runner's: a private root with its inputs, outputs collected
from its ``out/``, ``datum_tries`` attempts (each resent with an empty ``out/``),
``datum_timeout`` per attempt, then ``err_cmd`` as its own process with the full per-datum
environment. A process that exits or times out during a datum fails that attempt and is
started again for the next one; cancelling kills its process group.

With the runner's mount namespace (:mod:`.mountns`) the process runs in one of its own, with
the node's data directory covered except the job's directory, a minimal ``/dev`` and the
reduced capabilities — but no ``/pfs``: one process serves many datums, so no single root
can be its ``/pfs``; it reads ``PFS`` from each line. ``err_cmd`` is per datum
and gets the datum's root at ``/pfs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from edgeweave.models.pipelines import Transform
from edgeweave.pipelines.datums import Datum
from edgeweave.pipelines.mountns import MountNamespace
from edgeweave.pipelines.plan import DatumState
from edgeweave.pipelines.runner import (
    KILL_GRACE_S,
    DatumContext,
    DatumResult,
    DatumRunner,
    _collect,
    _fresh_dir,
    _link_or_copy,
    _note,
    _recover,
    _seal,
    _tail,
    _working_dir,
)
from edgeweave.pipelines.spec import RunSettings

LINE_LIMIT = 1 << 20  # the longest stdout line read as one
PREFETCH = 2  # datums a job prepares per worker (one runs, one waits with its root built)


class BatchWorker:
    """One long-lived process of a batched pipeline's ``cmd``; one datum at a time."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        namespace: tuple[MountNamespace, Sequence[str]] | None = None,
    ) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._namespace = namespace  # and its steps: where the process runs
        self._proc: asyncio.subprocess.Process | None = None
        self.starts = 0  # how many times the process was started

    async def attempt(
        self, request: Mapping[str, str], log: BinaryIO, timeout_s: float | None
    ) -> tuple[bool, str]:
        """Hand one datum to the process; ``(success, why not)``."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            _note(log, "start " + " ".join(self._argv))
            try:
                proc = await self._spawn()
            except OSError as e:
                return False, f"cannot start {self._argv[0]!r}: {e.strerror or e}"
            self._proc = proc
            self.starts += 1
        assert proc.stdin is not None and proc.stdout is not None
        try:
            async with asyncio.timeout(timeout_s):
                proc.stdin.write(json.dumps(dict(request)).encode() + b"\n")
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    await proc.stdin.drain()
                while True:
                    line = await proc.stdout.readline()
                    if not line:  # the process ended during the datum
                        code = await proc.wait()
                        await self.close()
                        return False, f"the batch process exited with code {code} mid-datum"
                    text = line.decode("utf-8", "replace").rstrip("\r\n")
                    if text == "ok":
                        return True, ""
                    if text == "fail" or text.startswith("fail "):
                        return False, "the code answered: " + (text[5:] or "fail")
                    log.write(line if line.endswith(b"\n") else line + b"\n")
        except TimeoutError:
            await self.close()
            return False, f"timed out after {timeout_s:g}s (datum_timeout)"
        except ValueError:  # a line over LINE_LIMIT
            await self.close()
            return False, f"the batch process wrote a line over {LINE_LIMIT} bytes"
        except BaseException:
            await self.close()
            raise

    async def _spawn(self) -> asyncio.subprocess.Process:
        options: dict[str, Any] = {
            "stdin": asyncio.subprocess.PIPE,
            "stdout": asyncio.subprocess.PIPE,
            "stderr": asyncio.subprocess.STDOUT,
            "cwd": self._cwd,
            "start_new_session": True,
            "limit": LINE_LIMIT,
        }
        if self._namespace is None:
            return await asyncio.create_subprocess_exec(*self._argv, env=self._env, **options)
        namespace, steps = self._namespace
        return await namespace.spawn(steps, self._argv, self._env, **options)

    async def close(self, grace_s: float = 0.0) -> None:
        """End the process: EOF on its stdin, ``grace_s`` to exit, then its group is killed."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        if grace_s > 0 and proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await asyncio.shield(proc.wait())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KILL_GRACE_S):
                await asyncio.shield(proc.wait())


def job_workers(
    runner: DatumRunner, transform: Transform, settings: RunSettings, ctx: DatumContext
) -> list[BatchWorker]:
    """A job's workers, one per parallelism slot (their processes start with a datum)."""
    env = dict(runner.base_env)
    env.update(transform.env or {})
    env["PACH_JOB_ID"] = ctx.job_id
    env["PACH_OUTPUT_COMMIT_ID"] = ctx.output_commit_id
    env["PACH_DATUM_BATCHING"] = "1"
    for name, commit in ctx.input_commits.items():
        env[f"{name}_COMMIT"] = commit
    job_dir = runner.work_dir / ctx.job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    cwd = _working_dir(transform, job_dir)
    ns = runner.namespace  # if any: the data directory hidden but the job's; no /pfs
    where = None if ns is None else (ns, ns.process_steps(job_dir, cwd))
    return [BatchWorker(transform.cmd, env, cwd, where) for _ in range(settings.parallelism)]


async def run_batched(
    runner: DatumRunner,
    workers: asyncio.Queue[BatchWorker],
    datum: Datum,
    transform: Transform,
    settings: RunSettings,
    ctx: DatumContext,
) -> DatumResult:
    """Run one datum through a worker of ``workers`` under the ``/pfs`` contract (see the
    module doc). The datum's root is built before a worker is taken, so a job that builds
    the next roots while the workers run (``PREFETCH`` datums per worker) hides that cost."""
    started = time.monotonic()
    job_dir = runner.work_dir / ctx.job_id
    root = job_dir / datum.id[:32]
    result = DatumResult(datum.id, DatumState.FAILED, 0, root, job_dir / f"{datum.id[:32]}.log")
    log = await _build_root(runner, datum, root, job_dir / ".objects", result.log_path)
    env = runner._env(datum, transform, root, ctx)
    request = {"PFS": env["PFS"], "PACH_DATUM_ID": datum.id}
    request.update({part.input: env[part.input] for part in datum.parts})
    with log:
        worker = await workers.get()
        try:
            await _attempts(worker, request, log, result, settings)
        finally:
            workers.put_nowait(worker)
        if result.state != DatumState.SUCCESS and transform.err_cmd:
            cwd = _working_dir(transform, root)
            if await _recover(transform, root, env, cwd, log, settings, namespace=runner.namespace):
                result.state = DatumState.RECOVERED
    if result.state == DatumState.SUCCESS:
        result.outputs, result.log_tail = await asyncio.to_thread(
            lambda: (_collect(root / "out"), _tail(result.log_path))
        )
    else:
        result.log_tail = await asyncio.to_thread(_tail, result.log_path)
    result.duration_s = time.monotonic() - started
    return result


async def _attempts(
    worker: BatchWorker,
    request: Mapping[str, str],
    log: BinaryIO,
    result: DatumResult,
    settings: RunSettings,
) -> None:
    """Up to ``datum_tries`` attempts of one datum on ``worker``, each with an empty out/."""
    for attempt in range(1, settings.datum_tries + 1):
        result.attempts = attempt
        if attempt > 1:  # the first attempt's out/ is new
            await asyncio.to_thread(_fresh_dir, result.root / "out")
        ok, why = await worker.attempt(request, log, settings.datum_timeout_s)
        if ok:
            result.state = DatumState.SUCCESS
            return
        result.error = f"attempt {attempt}/{settings.datum_tries}: {why}"
        _note(log, result.error)


async def _build_root(
    runner: DatumRunner, datum: Datum, root: Path, objects: Path, log_path: Path
) -> BinaryIO:
    """The datum's root (its inputs linked from the job's object cache, an empty ``out/``)
    and its open log, in two thread calls plus one write per object not cached yet."""
    files = [
        (objects / digest, root / name / path.lstrip("/"))
        for name, path, digest, _ in datum.files()
    ]

    def missing() -> list[Path]:
        objects.mkdir(parents=True, exist_ok=True)
        return [cached for cached, _ in files if not cached.exists()]

    for cached in dict.fromkeys(await asyncio.to_thread(missing)):
        partial = objects / f"{cached.name}.{os.getpid()}.{id(root)}.part"
        await runner.materializer.write_object(cached.name, partial)
        await asyncio.to_thread(_seal, partial, cached)

    def build() -> BinaryIO:
        _fresh_dir(root)
        (root / "out").mkdir()
        for cached, dest in files:
            _link_or_copy(cached, dest)
        return open(log_path, "ab")

    return await asyncio.to_thread(build)
