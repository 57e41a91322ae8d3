"""Starting, watching, stopping and recognising app processes.

Processes are started from an argv list (never a shell) in a new session, so each app is one
process group that can be signalled as a whole and that survives an agent restart. Their
output goes straight to a log file opened here, not through a pipe the agent would have to
drain. A :class:`Watched` process is observed through a pidfd, which works the same for our
own children (reaped for their exit code) and for processes adopted from an earlier agent
(exit code unknown). ``run.json`` (:class:`RunRecord`) is how a later agent recognises them:
pid plus the kernel's start time, so a recycled pid is never mistaken for the app.

This module knows nothing of Apps, restart policies or status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeweave.edge.runtime.spec import Limits


@dataclass(frozen=True)
class RunRecord:
    """The content of ``run.json``."""

    pid: int
    start_time: int  # field 22 of /proc/<pid>/stat: clock ticks after boot
    spec_hash: str
    started_at: float = 0.0
    restarts: int = 0


def read_start_time(pid: int) -> int | None:
    """The kernel start time of a live (not zombie) process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def write_run_record(path: Path, record: RunRecord) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    os.replace(tmp, path)


def read_run_record(path: Path) -> RunRecord | None:
    try:
        data = json.loads(path.read_text())
        return RunRecord(
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            spec_hash=str(data["spec_hash"]),
            started_at=float(data.get("started_at", 0.0)),
            restarts=int(data.get("restarts", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_running(record: RunRecord) -> bool:
    """True when ``record`` still names the same live process (not a recycled pid)."""
    return read_start_time(record.pid) == record.start_time


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path | None,
    truncate_log: bool = False,
) -> int:
    """Start ``argv`` in a new session with stdout+stderr appended to ``log_path``."""
    if log_path is None:
        out_fd = os.open(os.devnull, os.O_WRONLY)
    else:
        mode = os.O_TRUNC if truncate_log else os.O_APPEND
        out_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | mode, 0o640)
    try:
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out_fd,
            stderr=out_fd,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(out_fd)
    # From here the pid is ours to reap (see Watched). Marking the Popen as finished keeps it
    # from reaping behind our back or warning when it is collected while the app still runs.
    popen.returncode = 0
    return popen.pid


def _reap(pid: int) -> int | None:
    """The exit code of our exited child (negative: killed by that signal); None otherwise."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None  # adopted from an earlier agent: only its parent learns the code
    return os.waitstatus_to_exitcode(status) if got == pid else None


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Watched:
    """A running process observed through a pidfd; ``exit`` resolves when it ends."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._loop = asyncio.get_running_loop()
        self.exit: asyncio.Future[int | None] = self._loop.create_future()
        self._fd: int | None = os.pidfd_open(pid)
        self._loop.add_reader(self._fd, self._on_exit)

    def _on_exit(self) -> None:
        self._detach()
        if not self.exit.done():
            self.exit.set_result(_reap(self.pid))

    def _detach(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the exit (without cancelling ``exit``); True when it has happened."""
        done, _ = await asyncio.wait([self.exit], timeout=timeout_s)
        return bool(done)

    def close(self) -> None:
        """Stop watching; the process itself is left alone."""
        self._detach()
        if not self.exit.done():
            self.exit.cancel()


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def stop_group(watched: Watched, grace_s: float) -> int | None:
    """SIGTERM the process group, SIGKILL it after ``grace_s``; the leader's exit code."""
    signal_group(watched.pid, signal.SIGTERM)
    if not await watched.wait(grace_s):
        signal_group(watched.pid, signal.SIGKILL)
        await watched.wait()
    signal_group(watched.pid, signal.SIGKILL)  # members that outlived the leader
    return watched.exit.result() if not watched.exit.cancelled() else None


def apply_rlimits(pid: int, limits: Limits | None) -> list[str]:
    """Set RLIMIT_AS / NOFILE / NPROC on a started process; problems as messages."""
    if limits is None:
        return []
    wanted: list[tuple[str, int, int | None]] = [
        ("memory", resource.RLIMIT_AS, limits.memory_limit_bytes()),
        ("openFiles", resource.RLIMIT_NOFILE, limits.openFiles),
        ("processes", resource.RLIMIT_NPROC, limits.processes),
    ]
    problems: list[str] = []
    for what, which, value in wanted:
        if value is None:
            continue
        try:
            resource.prlimit(pid, which, (value, value))
        except (OSError, ValueError) as e:
            problems.append(f"limit {what}={value} not applied: {e}")
    return problems
