"""A private mount namespace per datum: the real ``/pfs`` path, and the node's secrets out of sight.

Pachyderm code hard-codes ``/pfs/<input>/...`` and ``/pfs/out`` (COMPAT.md §3). Run as root
on Linux, the runner starts each datum's ``cmd`` through :meth:`MountNamespace.datum_argv`:

    unshare --mount --propagation private -- sh -c SCRIPT edgeweave OPS... -- setpriv ... CMD

``unshare`` gives the process a mount namespace of its own whose mounts never propagate back
to the host; the constant shell ``SCRIPT`` (the datum's paths reach it as positional
arguments, never inside a shell string) then, inside that namespace only:

- bind-mounts the datum's root at ``/pfs``;
- mounts an empty read-only tmpfs over every *hidden* directory — the agent's or the cloud's
  data directory, where the node key, certificates, tokens and databases are — so user code
  running as the same uid finds them empty;
- mounts a minimal ``/dev`` (null, zero, full, random, urandom, tty, shm; no disks);
- changes to the working directory and ``exec``\\ s ``setpriv``, which keeps only the
  capabilities a container runtime grants by default (no ``CAP_SYS_ADMIN`` to unmount the
  covers, no ``CAP_SYS_PTRACE`` or ``CAP_DAC_READ_SEARCH`` to reach files around them, no
  ``CAP_MKNOD``), then ``exec``\\ s the user's ``cmd``.

Every step is an ``exec``, so the user's process is the process the runner started: same
pid, same process group, and killing the group (cancel, ``datum_timeout``) reaches it. When
the last process of the namespace ends, its mounts go with it.

A batched pipeline's long-lived process serves many datums, so no single root can be its
``/pfs``: :meth:`MountNamespace.process_argv` gives it the hiding, ``/dev`` and capability
steps, with the job's directory kept visible at its own path (it reads ``PFS`` per datum).

:func:`probe_mount_namespace` decides once per process whether this works here (setting
``mount_namespace: auto|off``): root, Linux, the util-linux tools, a ``/pfs`` directory
(created when missing) and a trial run of the whole wrapper. Must not: build a shell string
from any input, or change a mount outside the namespaces it creates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PFS = Path("/pfs")
MODES = ("auto", "off")
PROBE_TIMEOUT_S = 10.0

DEVICES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)

# What Docker and containerd grant a container by default, without CAP_MKNOD.
KEPT_CAPABILITIES = (
    "chown",
    "dac_override",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "setfcap",
    "net_bind_service",
    "net_raw",
    "sys_chroot",
    "audit_write",
)

# The operations, each a word followed by its paths, up to "--"; then the command.
_SCRIPT = r"""set -e
while [ "$1" != -- ]; do
  case "$1" in
  bind) mount --bind "$2" "$3"; shift 3 ;;
  hide) mount -t tmpfs -o ro,size=4k,mode=0755,nosuid,nodev,noexec edgeweave-hidden "$2"; shift 2 ;;
  hide-keep)
    mount --bind "$3" /pfs
    mount -t tmpfs -o size=4k,mode=0755,nosuid,nodev,noexec edgeweave-hidden "$2"
    mkdir -p "$3"
    mount --move /pfs "$3"
    mount -o remount,ro "$2"
    shift 3 ;;
  dev-bind)
    mount --bind "$2" /dev
    mount -t tmpfs -o mode=1777,nosuid,nodev edgeweave-shm /dev/shm
    shift 2 ;;
  dev)
    mount -t tmpfs -o size=64k,mode=0755,nosuid,noexec edgeweave-dev /dev
    mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
    mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0
    ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/0 /dev/stdin
    ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
    mkdir /dev/shm; mount -t tmpfs -o mode=1777,nosuid,nodev edgeweave-shm /dev/shm
    shift ;;
  cd) cd "$2"; unset OLDPWD; shift 2 ;;
  *) echo "edgeweave: unknown namespace step $1" >&2; exit 125 ;;
  esac
done
shift
exec "$@"
"""


@dataclass(frozen=True)
class MountNamespace:
    """How to start a process in a private mount namespace (see the module doc)."""

    unshare: str
    sh: str
    setpriv: str
    hidden: tuple[Path, ...] = ()  # absolute, existing directories, none of them "/"
    dev_template: Path | None = None  # a prepared /dev to bind; None: made per process

    def datum_argv(self, argv: Sequence[str], root: Path, cwd: str) -> list[str]:
        """``argv`` with ``root`` at ``/pfs`` and the working directory ``cwd`` (a path as
        the process sees it: under ``/pfs``, or absolute elsewhere)."""
        ops = ["bind", str(root.resolve()), str(PFS), *self._dev()]
        for path in self.hidden:
            ops += ["hide", str(path)]
        return self._wrap([*ops, "cd", cwd], argv)

    def process_argv(self, argv: Sequence[str], keep: Path, cwd: Path) -> list[str]:
        """``argv`` with the hidden directories covered but ``keep`` visible at its path
        (a batched pipeline's job directory); no ``/pfs``."""
        ops, keep = self._dev(), keep.resolve()
        for path in self.hidden:
            if keep.is_relative_to(path):
                ops += ["hide-keep", str(path), str(keep)]
            else:
                ops += ["hide", str(path)]
        return self._wrap([*ops, "cd", str(cwd.resolve())], argv)

    def _dev(self) -> list[str]:
        return ["dev"] if self.dev_template is None else ["dev-bind", str(self.dev_template)]

    def _wrap(self, ops: Sequence[str], argv: Sequence[str]) -> list[str]:
        caps = ",".join(["-all", *(f"+{c}" for c in KEPT_CAPABILITIES)])
        return [
            self.unshare,
            "--mount",
            "--propagation",
            "private",
            "--",
            self.sh,
            "-c",
            _SCRIPT,
            "edgeweave-datum",
            *ops,
            "--",
            self.setpriv,
            f"--bounding-set={caps}",
            "--inh-caps=-all",
            "--",
            *argv,
        ]


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
    mode: str, hidden: Sequence[Path], state_dir: Path
) -> tuple[MountNamespace | None, str]:
    """A :class:`MountNamespace` when ``mode`` allows it and it works here, else None; and a
    sentence saying which mode is used and why (for the log). ``state_dir`` (the runner's
    work directory) holds the ``/dev`` template, bound per process; on a filesystem mounted
    ``nodev`` each process makes its own ``/dev`` instead (a dozen more small processes)."""
    if mode not in MODES:
        raise ValueError(f"mount_namespace: {mode!r} is not one of {', '.join(MODES)}")
    fallback = "user code finds its datum under $PFS (hard-coded /pfs only in cmd and stdin)"
    if mode == "off":
        return None, f"mount namespace off (setting); {fallback}"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return None, f"mount namespace off (needs root on Linux); {fallback}"
    tools = {name: shutil.which(name) for name in ("unshare", "mount", "mknod", "setpriv", "sh")}
    if missing := [name for name, found in tools.items() if found is None]:
        return None, f"mount namespace off (not found: {', '.join(missing)}); {fallback}"
    try:
        await asyncio.to_thread(PFS.mkdir, exist_ok=True)
        template = state_dir.resolve() / ".dev"
        await asyncio.to_thread(_make_dev_template, template)
        base = MountNamespace(
            str(tools["unshare"]), str(tools["sh"]), str(tools["setpriv"]), hidden_dirs(hidden)
        )
        ns = dataclasses.replace(base, dev_template=template)
        if await _trial(ns):  # nodev, most likely: /dev made in each namespace
            ns = base
        why = await _trial(ns)
    except TimeoutError:
        why = f"trial run took over {PROBE_TIMEOUT_S:g}s"
    except (OSError, ValueError) as e:
        why = str(e)
    if why:
        return None, f"mount namespace off ({why}); {fallback}"
    shown = ", ".join(str(p) for p in ns.hidden) or "nothing"
    return ns, f"mount namespace on: each datum sees its root at /pfs; hidden: {shown}"


def _make_dev_template(path: Path) -> None:
    """A fresh directory with the device nodes and links of a minimal ``/dev``."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    for name, major, minor in DEVICES:
        os.mknod(path / name, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(path / name, 0o666)  # noqa: S103 - the device nodes everyone may use
    for name, target in DEV_LINKS:
        os.symlink(target, path / name)
    (path / "shm").mkdir()


async def _trial(ns: MountNamespace) -> str:
    """Run a check through the whole wrapper: "" when it passed, else what went wrong."""
    with tempfile.TemporaryDirectory(prefix="edgeweave-nsprobe-") as tmp:
        root = Path(tmp)
        (root / "probe").write_bytes(b"")
        check = "test -f /pfs/probe && head -c 1 /dev/urandom > /dev/null && test -d /dev/shm"
        argv = ns.datum_argv(["/bin/sh", "-c", check], root, "/pfs")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
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
