"""A private mount namespace per datum: the real ``/pfs`` path, and the node's secrets out of sight.

Pachyderm code hard-codes ``/pfs/<input>/...`` and ``/pfs/out`` (COMPAT.md §3). Run as root
on Linux, the runner starts each datum's ``cmd`` through :meth:`MountNamespace.spawn`, which
runs :mod:`.nsexec` (``python -I -S nsexec.py``, standard library only) with an empty
environment; the datum's environment reaches it through a memfd, so nothing the user
controls acts while it holds every capability. Inside a mount namespace of its own, whose
mounts never propagate back to the host, it:

- bind-mounts the datum's root at ``/pfs`` (:meth:`MountNamespace.datum_steps`);
- mounts an empty read-only tmpfs over every *hidden* directory — the agent's or the cloud's
  data directory, where the node key, certificates, tokens and databases are — so user code
  running as the same uid finds them empty;
- mounts a minimal ``/dev`` (null, zero, full, random, urandom, tty, shm; no disks);
- changes to the working directory, keeps only the capabilities a container runtime grants
  by default (no ``CAP_SYS_ADMIN`` to unmount the covers, no ``CAP_SYS_PTRACE`` or
  ``CAP_DAC_READ_SEARCH`` to reach files around them, no ``CAP_MKNOD``) and ``exec``\\ s the
  user's ``cmd`` with the datum's environment.

The user's process is the process the runner started: same pid, same process group, so
killing the group (cancel, ``datum_timeout``) reaches it. When the last process of the
namespace ends, its mounts go with it.

A batched pipeline's long-lived process serves many datums, so no single root can be its
``/pfs``: :meth:`MountNamespace.process_steps` gives it the covers, ``/dev`` and capability
steps, with the job's directory kept visible at its own path (it reads ``PFS`` per datum).

:func:`probe_mount_namespace` decides once per process whether this works here (setting
``mount_namespace: auto|off``): root, Linux, a ``/pfs`` directory (created when missing)
and a trial run. Must not: pass anything through a shell, or change a mount outside the
namespaces it creates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PFS = Path("/pfs")
MODES = ("auto", "off")
PROBE_TIMEOUT_S = 10.0
NSEXEC = Path(__file__).with_name("nsexec.py")


@dataclass(frozen=True)
class MountNamespace:
    """How to start a process in a private mount namespace (see the module doc)."""

    python: str  # the interpreter that runs nsexec.py
    hidden: tuple[Path, ...] = ()  # absolute, existing directories, none of them "/"

    def datum_steps(self, root: Path, cwd: str) -> list[str]:
        """``root`` at ``/pfs``, the hidden directories covered, the working directory
        ``cwd`` (as the process sees it: under ``/pfs``, or absolute elsewhere)."""
        steps = ["bind", str(root.resolve()), str(PFS), "dev"]
        for path in self.hidden:
            steps += ["hide", str(path)]
        return [*steps, "cd", cwd]

    def process_steps(self, keep: Path, cwd: Path) -> list[str]:
        """The hidden directories covered but ``keep`` visible at its path (a batched
        pipeline's job directory); no ``/pfs``."""
        steps, keep = ["dev"], keep.resolve()
        for path in self.hidden:
            kept = keep.is_relative_to(path)
            steps += ["hide-keep", str(path), str(keep)] if kept else ["hide", str(path)]
        return [*steps, "cd", str(cwd.resolve())]

    async def spawn(
        self, steps: Sequence[str], argv: Sequence[str], env: Mapping[str, str], **kwargs: Any
    ) -> asyncio.subprocess.Process:
        """``asyncio.create_subprocess_exec(*argv, env=env, **kwargs)``, in a namespace set up
        by ``steps``; ``env`` goes to ``argv`` only."""
        fd = os.memfd_create("edgeweave-datum-env")
        try:
            data = b"".join(os.fsencode(f"{k}={v}") + b"\0" for k, v in env.items())
            while data:
                data = data[os.write(fd, data) :]
            os.lseek(fd, 0, os.SEEK_SET)
            return await asyncio.create_subprocess_exec(
                self.python,
                "-I",
                "-S",
                str(NSEXEC),
                str(fd),
                *steps,
                "--",
                *argv,
                env={},
                pass_fds=(fd,),
                **kwargs,
            )
        finally:
            os.close(fd)


def hidden_dirs(paths: Sequence[Path]) -> tuple[Path, ...]:
    """The existing directories of ``paths``, absolute and resolved, without duplicates;
    the root directory is refused (it would hide everything)."""
    found: list[Path] = []
    for path in paths:
        resolved = Path(path).resolve()
        if resolved == Path("/"):
            raise ValueError("the root directory cannot be hidden from user code")
        if resolved.is_dir() and resolved not in found:
            found.append(resolved)
    return tuple(found)


async def probe_mount_namespace(
    mode: str, hidden: Sequence[Path]
) -> tuple[MountNamespace | None, str]:
    """A :class:`MountNamespace` when ``mode`` allows it and it works here, else None; and a
    sentence saying which mode is used and why (for the log)."""
    if mode not in MODES:
        raise ValueError(f"mount_namespace: {mode!r} is not one of {', '.join(MODES)}")
    fallback = "user code finds its datum under $PFS (hard-coded /pfs only in cmd and stdin)"
    if mode == "off":
        return None, f"mount namespace off (setting); {fallback}"
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not sys.executable:
        return None, f"mount namespace off (needs root on Linux); {fallback}"
    try:
        await asyncio.to_thread(PFS.mkdir, exist_ok=True)
        ns = MountNamespace(sys.executable, hidden_dirs(hidden))
        why = await _trial(ns)
    except TimeoutError:
        why = f"trial run took over {PROBE_TIMEOUT_S:g}s"
    except (OSError, ValueError) as e:
        why = str(e)
    if why:
        return None, f"mount namespace off ({why}); {fallback}"
    shown = ", ".join(str(p) for p in ns.hidden) or "nothing"
    return ns, f"mount namespace on: each datum sees its root at /pfs; hidden: {shown}"


async def _trial(ns: MountNamespace) -> str:
    """Run a check through the whole wrapper: "" when it passed, else what went wrong."""
    with tempfile.TemporaryDirectory(prefix="edgeweave-nsprobe-") as tmp:
        (Path(tmp) / "probe").write_bytes(b"")
        check = 'test -f /pfs/probe && head -c 1 /dev/urandom > /dev/null && test "$A" = 1'
        proc = await ns.spawn(
            ns.datum_steps(Path(tmp), "/pfs"),
            ["sh", "-c", check],
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "A": "1"},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                out, _ = await proc.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise
    if proc.returncode != 0:
        detail = out.decode("utf-8", "replace").strip().splitlines()
        return f"trial run exited {proc.returncode}: {detail[-1] if detail else 'no output'}"
    return ""
