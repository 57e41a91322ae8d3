"""Running one datum's code as a process under Pachyderm's ``/pfs`` contract (COMPAT.md §3).

For each datum the runner builds a private root (the datum's "``/pfs``")::

    WORK/<job>/<datum>/           $PFS — also the working directory unless working_dir is set
        <input name>/<path>       the datum's input files, as in the input repo
        out/                      whatever the code writes here becomes output
    WORK/<job>/<datum>.log        the code's stdout and stderr, with the runner's own notes

Inputs are materialised once per job in ``WORK/<job>/.objects/<sha256>`` (read-only) and hard
linked into each datum's root, so a model crossed with a thousand images is written once.

Running: ``cmd`` is an argv list started without a shell in its own process group, ``stdin``
lines are fed to it, and an exit code of 0 or one in ``accept_return_code`` is success. For
a **Filter** (``RunSettings.drop_codes``) ``cmd`` is the predicate: a drop code drops the
datum (no output), any other success passes its input files unchanged, at their paths. A
failed attempt (exit code, signal, or ``datum_timeout``) is retried up to ``datum_tries``
attempts in all, each with an empty ``out/``. After the last failure ``err_cmd`` (with
``err_stdin``) runs in the same root; exit 0 marks the datum *recovered*: the job goes on and
the datum contributes no output. Cancelling :meth:`DatumRunner.run` kills the process group.

Environment: the transform's ``env`` over a small base (``PATH``, ``HOME``, ``LANG``), then
``PFS`` (the datum root), ``PACH_JOB_ID``, ``PACH_DATUM_ID``, ``PACH_OUTPUT_COMMIT_ID``,
``<input>_COMMIT`` for each input, and ``<input>`` = the path of the datum's entry (file or
directory) of that input.

Hard-coded ``/pfs`` paths. Given a :class:`~edgeweave.pipelines.mountns.MountNamespace`
(root on Linux; the composition root probes for it), each process — ``cmd`` and ``err_cmd`` —
runs in a private mount namespace of its own where the datum root *is* ``/pfs``: ``PFS`` is
``/pfs``, ``<input>`` is ``/pfs/<input>/...``, the working directory is ``/pfs`` (or
``working_dir`` under it), so a program that builds ``/pfs/...`` paths itself works
unchanged; the namespace also covers the node's data directory with an empty tmpfs, gives a
minimal ``/dev`` and drops the capabilities that would undo that (:mod:`.mountns`). Without
one, ``PFS`` is the real datum root and arguments and stdin lines that name ``/pfs`` or start
with ``/pfs/`` are rewritten to it, which covers ``cmd: [sh]`` scripts given in ``stdin``; a
program that builds ``/pfs/...`` paths itself must read ``$PFS`` (docs/pipelines.md).

This module must not know about repos beyond :class:`Materializer`, nor about jobs, plans or
output commits: it returns what the datum wrote and the job decides what to do with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from edgeweave.models.pipelines import Transform
from edgeweave.pipelines.datums import Datum
from edgeweave.pipelines.mountns import PFS, MountNamespace
from edgeweave.pipelines.plan import DatumState
from edgeweave.pipelines.spec import RunSettings

BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
_PFS_RE = re.compile(r"""(^|[\s=:"'(])/pfs(?=/|$|[\s"')])""")
KILL_GRACE_S = 2.0
LOG_TAIL_BYTES = 2048  # of a datum's log, kept with its record after the work dir is gone
SMALL_OUTPUT_BYTES = 1024 * 1024  # outputs up to this size are read as they are collected


class LogSink(Protocol):
    """Where the runner's notes go: an open log file, or a log opened on its first write."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class Materializer(Protocol):
    async def write_object(self, digest: str, dest: Path) -> None:
        """Write the content whose sha256 is ``digest`` to the new file ``dest``."""
        ...

    async def write_objects(self, items: Sequence[tuple[str, Path]]) -> None:
        """:meth:`write_object` for many ``(digest, dest)`` at once."""
        ...


@dataclass(frozen=True)
class DatumContext:
    job_id: str
    output_commit_id: str
    input_commits: Mapping[str, str]  # input name → commit id


@dataclass(frozen=True)
class OutputFile:
    path: str  # in the output repo: /a/b.txt
    local: Path
    size: int
    data: bytes | None = None  # the content, when read as it was collected


@dataclass
class DatumResult:
    datum_id: str
    state: DatumState
    attempts: int
    root: Path
    log_path: Path
    outputs: list[OutputFile] = field(default_factory=list)
    error: str = ""
    duration_s: float = 0.0
    log_tail: str = ""  # the last LOG_TAIL_BYTES of the log, whole lines
    logged: bool = True  # the log file exists (a quiet batched datum leaves none)
    filtered: str = ""  # a Filter's verdict: "passed" or "dropped"


class DatumRunner:
    """Runs datums under ``work_dir``; one runner serves any number of jobs."""

    def __init__(
        self,
        work_dir: Path,
        materializer: Materializer,
        *,
        base_env: Mapping[str, str] | None = None,
        namespace: MountNamespace | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self._materializer = materializer
        if base_env is None:
            base_env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
        self._base_env = dict(base_env)
        self._namespace = namespace

    @property
    def namespace(self) -> MountNamespace | None:
        """The private mount namespace each datum's process runs in; None: ``$PFS`` only."""
        return self._namespace

    @property
    def base_env(self) -> dict[str, str]:
        return dict(self._base_env)

    @property
    def materializer(self) -> Materializer:
        return self._materializer

    async def run(
        self, datum: Datum, transform: Transform, settings: RunSettings, ctx: DatumContext
    ) -> DatumResult:
        started = time.monotonic()
        job_dir = self.work_dir / ctx.job_id
        root = job_dir / datum.id[:32]
        result = DatumResult(datum.id, DatumState.FAILED, 0, root, job_dir / f"{datum.id[:32]}.log")
        await asyncio.to_thread(_fresh_dir, root)
        await self._materialize(datum, root, job_dir / ".objects")
        env = self._env(datum, transform, root, ctx)
        cwd = _working_dir(transform, root)
        with open(result.log_path, "ab") as log:  # append-only, small writes
            for attempt in range(1, settings.datum_tries + 1):
                result.attempts = attempt
                await asyncio.to_thread(_fresh_dir, root / "out")
                ok, why, code = await _run_process(
                    _prepare(transform.cmd, transform.stdin, root, env, cwd, self._namespace),
                    log=log,
                    timeout_s=settings.datum_timeout_s,
                    accept=[*(transform.accept_return_code or []), *(settings.drop_codes or [])],
                )
                if ok:
                    result.state = DatumState.SUCCESS
                    if settings.drop_codes is None:
                        result.outputs = await asyncio.to_thread(
                            _collect, root / "out", SMALL_OUTPUT_BYTES
                        )
                    elif code in settings.drop_codes:
                        result.filtered = "dropped"
                        _note(log, f"filter: exit code {code} drops the datum")
                    else:  # passed: the datum's files, unchanged, at their paths
                        result.filtered = "passed"
                        result.outputs = await asyncio.to_thread(_passed, datum, root)
                    break
                result.error = f"attempt {attempt}/{settings.datum_tries}: {why}"
                _note(log, result.error)
            else:
                if transform.err_cmd and await _recover(
                    transform, root, env, cwd, log, settings, namespace=self._namespace
                ):
                    result.state = DatumState.RECOVERED
        result.duration_s = time.monotonic() - started
        result.log_tail = await asyncio.to_thread(_tail, result.log_path)
        return result

    async def cleanup(self, result: DatumResult) -> None:
        """Remove a datum's root (after its outputs were uploaded); the log stays."""
        await asyncio.to_thread(shutil.rmtree, result.root, True)

    async def cleanup_job(self, job_id: str) -> None:
        """Remove what a job left under the work directory except the datums' logs."""

        def clean() -> None:
            job_dir = self.work_dir / job_id
            for entry in job_dir.iterdir() if job_dir.exists() else ():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)

        await asyncio.to_thread(clean)

    async def _materialize(self, datum: Datum, root: Path, objects: Path) -> None:
        for part in datum.parts:  # a workflow step's upstream that wrote nothing: still there
            if part.match.start == part.match.end:
                await asyncio.to_thread((root / part.input).mkdir, exist_ok=True)
        for name, path, digest, _ in datum.files():
            dest = root / name / path.lstrip("/")
            cached = objects / digest
            if not await asyncio.to_thread(cached.exists):
                await asyncio.to_thread(objects.mkdir, parents=True, exist_ok=True)
                partial = objects / f"{digest}.{os.getpid()}.{id(dest)}.part"
                await self._materializer.write_object(digest, partial)
                await asyncio.to_thread(_seal, partial, cached)
            await asyncio.to_thread(_link_or_copy, cached, dest)

    def _env(
        self, datum: Datum, transform: Transform, root: Path, ctx: DatumContext
    ) -> dict[str, str]:
        env = dict(self._base_env)
        env.update(transform.env or {})
        env["PFS"] = str(root)
        env["PACH_JOB_ID"] = ctx.job_id
        env["PACH_DATUM_ID"] = datum.id
        env["PACH_OUTPUT_COMMIT_ID"] = ctx.output_commit_id
        for name, commit in ctx.input_commits.items():
            env[f"{name}_COMMIT"] = commit
        for part in datum.parts:
            env[part.input] = str(root / part.input / part.match.path.lstrip("/"))
        return env


def _rewrite(args: Sequence[str], root: Path) -> list[str]:
    """``/pfs`` and ``/pfs/...`` in arguments and stdin lines point at the datum root (where
    ``/pfs`` starts a word: after a space, ``=``, ``:``, a quote or a parenthesis)."""
    target = str(root)
    return [_PFS_RE.sub(lambda m: m.group(1) + target, arg) for arg in args]


@dataclass(frozen=True)
class _Launch:
    """A process to run: ``argv`` (none: ``shown[0]`` cannot start), its stdin lines,
    environment and working directory, the command named in the log, and the namespace
    ``steps`` when it runs in one."""

    argv: list[str]
    stdin: list[str]
    env: dict[str, str]
    cwd: Path
    shown: list[str]
    namespace: MountNamespace | None = None
    steps: list[str] = field(default_factory=list)


def _prepare(
    cmd: Sequence[str],
    stdin: Sequence[str] | None,
    root: Path,
    env: Mapping[str, str],
    cwd: Path,
    namespace: MountNamespace | None,
) -> _Launch:
    """A datum's process, given its real root, environment and working directory: ``/pfs``
    rewritten to the root, or, in ``namespace``, the root bound at ``/pfs`` and the paths
    under it seen from there."""
    if namespace is None:
        return _Launch(_rewrite(cmd, root), _rewrite(stdin or [], root), dict(env), cwd, list(cmd))
    inside = {k: _seen_in(v, root) for k, v in env.items()}
    seen_cwd = _seen_in(str(cwd), root)
    if not cmd or not _findable(cmd[0], env.get("PATH", ""), root, seen_cwd):
        return _Launch([], [], inside, root, list(cmd))  # no program to start: said so
    steps = namespace.datum_steps(root, seen_cwd)
    return _Launch(list(cmd), list(stdin or []), inside, root, list(cmd), namespace, steps)


def _seen_in(path: str, root: Path) -> str:
    """``path`` as a process with ``root`` bound at ``/pfs`` sees it."""
    prefix = str(root)
    if path == prefix or path.startswith(prefix + "/"):
        return str(PFS) + path[len(prefix) :]
    return path


def _findable(program: str, search_path: str, root: Path, cwd: str) -> bool:
    """Whether ``program`` (found as ``execvp`` would, inside the namespace) exists."""
    if "/" not in program:
        return shutil.which(program, path=search_path) is not None
    path = Path(cwd, program)
    if path.is_relative_to(PFS):
        path = root / path.relative_to(PFS)
    return path.exists()


def _working_dir(transform: Transform, root: Path) -> Path:
    if not transform.working_dir:
        return root
    given = Path(transform.working_dir)
    return given if given.is_absolute() and given.is_dir() else root / given


async def _run_process(
    launch: _Launch,
    *,
    log: BinaryIO,
    timeout_s: float | None,
    accept: Sequence[int],
) -> tuple[bool, str, int | None]:
    """Run ``launch`` to the end; ``(success, why not, exit code)``. Kills the group on
    timeout/cancel."""
    shown, stdin_lines = launch.shown, launch.stdin
    _note(log, "run " + " ".join(shown))
    if not launch.argv:
        return False, f"cannot start {shown[0] if shown else ''!r}: No such file or directory", None
    options: dict[str, Any] = {
        "stdin": asyncio.subprocess.PIPE if stdin_lines else asyncio.subprocess.DEVNULL,
        "stdout": log,
        "stderr": asyncio.subprocess.STDOUT,
        "cwd": launch.cwd,
        "start_new_session": True,
    }
    try:
        if launch.namespace is None:
            proc = await asyncio.create_subprocess_exec(*launch.argv, env=launch.env, **options)
        else:
            proc = await launch.namespace.spawn(launch.steps, launch.argv, launch.env, **options)
    except OSError as e:
        return False, f"cannot start {shown[0]!r}: {e.strerror or e}", None
    try:
        async with asyncio.timeout(timeout_s):
            if stdin_lines and proc.stdin is not None:
                proc.stdin.write("".join(line + "\n" for line in stdin_lines).encode())
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    await proc.stdin.drain()
                proc.stdin.close()
            code = await proc.wait()
    except TimeoutError:
        await _kill_group(proc)
        return False, f"timed out after {timeout_s:g}s (datum_timeout)", None
    except BaseException:
        await _kill_group(proc)
        raise
    await _kill_group(proc)  # whatever the code left running in its group ends with it
    if code == 0 or code in accept:
        return True, "", code
    if code < 0:
        return False, f"killed by signal {signal.Signals(-code).name}", code
    return False, f"exited with code {code}", code


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(KILL_GRACE_S):
            await asyncio.shield(proc.wait())


async def _recover(
    transform: Transform,
    root: Path,
    env: dict[str, str],
    cwd: Path,
    log: BinaryIO,
    settings: RunSettings,
    *,
    namespace: MountNamespace | None = None,
) -> bool:
    """Run ``err_cmd`` for a failed datum; True when it exits 0 (the datum is recovered).
    ``env`` and ``cwd`` are the real ones; in ``namespace`` they are seen from ``/pfs``."""
    assert transform.err_cmd is not None
    recovered, why, _ = await _run_process(
        _prepare(transform.err_cmd, transform.err_stdin, root, env, cwd, namespace),
        log=log,
        timeout_s=settings.datum_timeout_s,
        accept=[],
    )
    _note(log, "err_cmd recovered the datum" if recovered else f"err_cmd: {why}")
    return recovered


def _note(log: LogSink, message: str) -> None:
    log.write(f"[edgeweave] {message}\n".encode())
    log.flush()


def _tail(path: Path) -> str:
    """The last :data:`LOG_TAIL_BYTES` of a log, starting at a line."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    if size > LOG_TAIL_BYTES:
        data = data.partition(b"\n")[2]
    return data.decode("utf-8", "replace")


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def _seal(partial: Path, final: Path) -> None:
    partial.chmod(0o444)
    os.replace(partial, final)


def _link_or_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _passed(datum: Datum, root: Path) -> list[OutputFile]:
    """A Filter's output for a passing datum: its input files as they are in their repos."""
    files = [
        OutputFile(path, root / name / path.lstrip("/"), size)
        for name, path, _, size in datum.files()
    ]
    return sorted(files, key=lambda f: f.path)


def _collect(out: Path, read_up_to: int = -1) -> list[OutputFile]:
    """Every regular file under ``out`` (symlinks followed), sorted by path; the content of
    those up to ``read_up_to`` bytes is read."""
    files: list[OutputFile] = []
    for dirpath, _, names in os.walk(out, followlinks=False):
        for name in names:
            local = Path(dirpath) / name
            try:
                info = local.stat()
            except OSError:
                continue  # a dangling symlink
            if stat.S_ISREG(info.st_mode):
                rel = "/" + local.relative_to(out).as_posix()
                data = local.read_bytes() if info.st_size <= read_up_to else None
                size = info.st_size if data is None else len(data)
                files.append(OutputFile(rel, local, size, data))
    return sorted(files, key=lambda f: f.path)
