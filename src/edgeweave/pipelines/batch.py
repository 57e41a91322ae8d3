"""Batched datums (``datum_batching: true``): one process of the user's code serves many datums.

For code that loads a model once. Each parallelism slot of a job holds a :class:`BatchWorker`:
the transform's ``cmd`` started once (again only after it dies) with the job's environment
(``PACH_JOB_ID``, ``PACH_OUTPUT_COMMIT_ID``, ``<input>_COMMIT``, ``PACH_DATUM_BATCHING=1``)
and the job directory as its working directory (unless ``working_dir`` is set). The datums
go to it over a line protocol:

- stdin, one JSON object per datum: the variables that differ per datum under the ``/pfs``
  contract — ``PFS`` (the datum's root, ``out/`` empty), ``PACH_DATUM_ID`` and ``<input>``
  (the path of the datum's entry of each input);
- stdout, one status line per datum, in the order the datums came: ``ok``, or ``fail`` and a
  reason. Every other line of stdout and stderr (merged into one pipe, so the order holds)
  goes to the log of the datum the code is on: the oldest one not answered yet.

The code handles one datum at a time, in order; :func:`serve` keeps up to
:data:`PIPELINE_DEPTH` datums sent ahead of its answers, so the code reads the next one the
moment it answers instead of waiting for a round trip through the job. A datum's attempt —
and its ``datum_timeout`` — starts when the code turns to it (the previous one answered).

Per datum the contract is the runner's: a private root with its inputs, outputs collected
from its ``out/``, ``datum_tries`` attempts (each resent with an empty ``out/``),
``datum_timeout`` per attempt, then ``err_cmd`` as its own process with the full per-datum
environment. A process that exits or times out during a datum fails that attempt and is
started again; the datums sent after it, which it never began, are sent again to the new
process without counting an attempt. Cancelling kills the process group. How a job streams
its datums to its workers is ``batchjob.py``.

With the runner's mount namespace (:mod:`.mountns`) the process runs in one of its own, with
the node's data directory covered except the job's directory, a minimal ``/dev`` and the
reduced capabilities — but no ``/pfs``: one process serves many datums, several sent ahead of
its answers, so no single root can be its ``/pfs``; it reads ``PFS`` from each line.
``err_cmd`` is a process per datum and gets the datum's root at ``/pfs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from edgeweave.models.pipelines import Transform
from edgeweave.pipelines.mountns import MountNamespace
from edgeweave.pipelines.plan import DatumState
from edgeweave.pipelines.runner import (
    KILL_GRACE_S,
    DatumContext,
    DatumResult,
    DatumRunner,
    LogSink,
    _fresh_dir,
    _note,
    _recover,
    _working_dir,
)
from edgeweave.pipelines.spec import RunSettings

LINE_LIMIT = 1 << 20  # the longest stdout line read as one
PIPELINE_DEPTH = 4  # datums sent to the code ahead of its answers (the one it is on included)

D = TypeVar("D", bound="BatchDatum")


class BatchWorker:
    """One long-lived process of a batched pipeline's ``cmd``: datums in, answers out."""

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

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, log: LogSink) -> str:
        """Start the process unless it runs (noted in ``log``); why it cannot start, or ""."""
        if self.running:
            return ""
        await self.close()
        _note(log, "start " + " ".join(self._argv))
        try:
            self._proc = await self._spawn()
        except OSError as e:
            return f"cannot start {self._argv[0]!r}: {e.strerror or e}"
        self.starts += 1
        return ""

    @property
    def namespace(self) -> MountNamespace | None:
        return None if self._namespace is None else self._namespace[0]

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

    def send(self, request: Mapping[str, str]) -> None:
        """Queue one datum's line on the process's stdin (:meth:`answer` flushes it)."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(dict(request)).encode() + b"\n")

    async def answer(self, log: LogSink, timeout_s: float | None, since: float) -> tuple[bool, str]:
        """The status line of the datum the code is on (its ``timeout_s`` counted from
        ``since``, a monotonic time): ``(success, why not)``; the lines before it go to
        ``log``. The process is ended when it exits, times out or writes a line over
        :data:`LINE_LIMIT`."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = (
            None if timeout_s is None else loop.time() + timeout_s - (time.monotonic() - since)
        )
        try:
            async with asyncio.timeout_at(deadline):
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


class DatumLog:
    """A datum's log (``WORK/<job>/<datum>.log``), created on its first write: a datum whose
    code says nothing leaves no file (one less file made per datum)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None

    @property
    def written(self) -> bool:
        return self._file is not None

    def file(self) -> BinaryIO:
        """The open file, created now if need be (e.g. as ``err_cmd``'s stdout)."""
        if self._file is None:
            self._file = open(self.path, "a+b")  # noqa: SIM115 - closed by close()
        return self._file

    def write(self, data: bytes, /) -> int:
        return self.file().write(data)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def tail(self, limit: int) -> str:
        """The last ``limit`` bytes written, starting at a line."""
        if self._file is None:
            return ""
        self._file.flush()
        size = self._file.seek(0, os.SEEK_END)
        self._file.seek(max(0, size - limit))
        data = self._file.read()
        if size > limit:
            data = data.partition(b"\n")[2]
        return data.decode("utf-8", "replace")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@dataclass
class BatchDatum:
    """A datum on its way through a worker: its line, its log, its result."""

    request: dict[str, str]
    log: DatumLog
    result: DatumResult
    env: dict[str, str]  # the full per-datum environment (for err_cmd)
    started_at: float  # Unix seconds when the code first turned to it (0: not yet)


async def serve(
    worker: BatchWorker,
    ready: asyncio.Queue[D | None],
    done: Callable[[D], None],
    transform: Transform,
    settings: RunSettings,
) -> None:
    """Feed ``worker`` the datums of ``ready`` (None: no more for this worker), up to
    :data:`PIPELINE_DEPTH` ahead of its answers, and hand each datum that ended — answered
    ``ok``, or failed every try (then ``err_cmd``) — to ``done``. Should it fail or be
    cancelled, the logs of the datums it holds are closed."""
    held: list[D] = []  # taken from ready, not done yet
    sent: deque[D] = deque()  # on the process's stdin, unanswered, in order
    again: deque[D] = deque()  # to send first: retries, and those a dead process never began
    head: D | None = None
    head_since = 0.0  # when the wait for the head's answer began

    def finish(d: D) -> None:
        held.remove(d)
        done(d)

    try:
        exhausted = False
        while True:
            while len(sent) < PIPELINE_DEPTH and (worker.running or not sent):
                if again:
                    d = again.popleft()
                elif exhausted or (sent and ready.empty()):
                    break  # nothing more, or work in hand: do not wait for more
                elif (item := await ready.get()) is None:
                    exhausted = True
                    break
                else:
                    d = item
                    held.append(d)
                why = await worker.start(d.log)
                if why:
                    d.result.attempts += 1
                    await _failed(d, why, again, finish, transform, settings, worker.namespace)
                    continue
                if d.result.attempts:  # a retry: its out/ empty again
                    await asyncio.to_thread(_fresh_dir, d.result.root / "out")
                worker.send(d.request)
                sent.append(d)
            if not sent:
                if exhausted and not again:
                    return
                continue
            if sent[0] is not head:
                head, head_since = sent[0], time.monotonic()
                head.started_at = head.started_at or time.time()
            ok, why = await worker.answer(head.log, settings.datum_timeout_s, head_since)
            d, head = sent.popleft(), None  # sent again after a failure, it is waited for afresh
            d.result.attempts += 1
            if ok:
                d.result.state = DatumState.SUCCESS
                finish(d)
                continue
            if not worker.running:  # the datums after it never began: send them again
                again.extendleft(reversed(sent))
                sent.clear()
            await _failed(d, why, again, finish, transform, settings, worker.namespace)
    except BaseException:
        for d in held:
            d.log.close()
        raise


async def _failed(
    d: D,
    why: str,
    again: deque[D],
    finish: Callable[[D], None],
    transform: Transform,
    settings: RunSettings,
    namespace: MountNamespace | None,
) -> None:
    """An attempt of ``d`` failed: try it again first, or after its last try ``err_cmd``
    (in ``namespace`` when there is one)."""
    result = d.result
    result.error = f"attempt {result.attempts}/{settings.datum_tries}: {why}"
    _note(d.log, result.error)
    if result.attempts < settings.datum_tries:
        again.appendleft(d)
        return
    if transform.err_cmd:
        cwd = _working_dir(transform, result.root)
        log = d.log.file()
        if await _recover(transform, result.root, d.env, cwd, log, settings, namespace=namespace):
            result.state = DatumState.RECOVERED
    finish(d)


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
