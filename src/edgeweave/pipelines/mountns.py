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

Starting Python per datum costs ~16 ms, so a datum's process normally goes another way, the
*fast path* (:class:`FastPath`): a chain of util-linux and coreutils programs, each
``exec``\\ ing the next, all started with an empty environment and argument lists only —
``unshare --mount --propagation private`` runs ``sh -c`` :data:`FAST_SCRIPT` (a constant; the
paths and the user's ``cmd`` are its positional arguments), which mounts everything with one
``mount --all --fstab`` (a per-datum fstab, paths octal-escaped, in a memfd of the
runner's that the child reads through ``/proc``), changes directory
and ``exec``\\ s ``setpriv`` (the same capability sets as :mod:`.nsexec`), which ``exec``\\ s
``env -i -- NAME=VALUE... CMD...``. The minimal ``/dev`` is a directory of device nodes made
once, at probe time (:func:`_dev_template`), bound read-only (device nodes stay writable) with a
tmpfs ``shm`` of the datum's own; the template's directory is covered like a hidden one.
:mod:`.nsexec` stays for what the chain cannot express (a batched process's ``hide-keep``,
a ``cmd`` whose program name holds ``=`` or is ``-``, an environment name ``env`` would not
take) and when the programs are missing.

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
import dataclasses
import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PFS = Path("/pfs")
MODES = ("auto", "off")
PROBE_TIMEOUT_S = 10.0
NSEXEC = Path(__file__).with_name("nsexec.py")
# Where the fast path looks for its programs: never the caller's PATH.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Where the /dev template may live: the first on a filesystem that allows device nodes.
DEV_BASES = (Path("/run/edgeweave"), Path("/var/lib/edgeweave-ns"))
# The capabilities nsexec.KEPT keeps, by name, for setpriv.
KEPT_CAPS = (
    "chown,dac_override,fowner,fsetid,kill,setgid,setuid,setpcap,net_bind_service,net_raw,"
    "sys_chroot,audit_write,setfcap"
)
DEV_NODES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8)}
DEV_NODES |= {"urandom": (1, 9), "tty": (5, 0)}
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0"}
DEV_LINKS |= {"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
# $1 mount, $2 setpriv, $3 env, $4 the fstab (a path), $5 the working directory; then the
# datum's NAME=VALUE words and its cmd, for `env -i --`. Constant: no input is ever parsed
# as shell code.
FAST_SCRIPT = (
    '"$1" --all --fstab "$4" || exit 125; '
    'cd -P -- "$5" || exit 125; '
    "p=$2 e=$3; shift 5; "
    f'exec "$p" --bounding-set -all,+{KEPT_CAPS.replace(",", ",+")} --inh-caps -all '
    '--ambient-caps -all -- "$e" -i -- "$@"'
)
_OPEN_FSTABS: set[asyncio.Task[None]] = set()  # memfds held until their process ends
SHM = "/dev/shm"  # noqa: S108 - a tmpfs of the datum's namespace's own
_FSTAB_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@,=")


@dataclasses.dataclass(frozen=True)
class FastPath:
    """The programs of the fast path (absolute paths) and the ``/dev`` template."""

    unshare: str
    sh: str
    mount: str
    setpriv: str
    env: str
    dev: Path  # a directory of device nodes and links, made at probe time

    def fstab(self, steps: Sequence[str]) -> tuple[str, str] | None:
        """The fstab for datum ``steps`` and the working directory; None when a step has
        no fstab line (the caller uses nsexec)."""
        lines: list[tuple[str, str, str, str]] = []
        cwd, i = None, 0
        while i < len(steps):
            step = steps[i]
            if step == "bind" and i + 2 < len(steps):
                lines.append((steps[i + 1], steps[i + 2], "none", "bind"))
                i += 3
            elif step == "hide" and i + 1 < len(steps):
                lines.append(("edgeweave-hidden", steps[i + 1], "tmpfs", _HIDE))
                i += 2
            elif step == "dev":
                lines.append((str(self.dev), "/dev", "none", "bind,ro,nosuid,noexec"))
                lines.append(("edgeweave-shm", SHM, "tmpfs", "nosuid,nodev,mode=1777"))
                lines.append(("edgeweave-hidden", str(self.dev.parent), "tmpfs", _HIDE))
                i += 1
            elif step == "cd" and i + 1 < len(steps) and cwd is None:
                cwd = steps[i + 1]
                i += 2
            else:
                return None
        if cwd is None:
            return None
        text = b"".join(b" ".join(map(_fstab_field, line)) + b" 0 0\n" for line in lines)
        return text.decode("ascii"), cwd


_HIDE = "ro,nosuid,nodev,noexec,size=4k"


def _fstab_field(value: str) -> bytes:
    """``value`` as an fstab field: every byte but a few safe ones as an octal escape."""
    raw = os.fsencode(value)
    return b"".join(bytes([c]) if c in _FSTAB_SAFE else b"\\%03o" % c for c in raw)


def _env_words(env: Mapping[str, str]) -> list[str] | None:
    """``NAME=VALUE`` words for ``env -i --``; None when a name would not survive it."""
    words = []
    for key, value in env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            return None
        words.append(f"{key}={value}")
    return words


@dataclasses.dataclass(frozen=True)
class MountNamespace:
    """How to start a process in a private mount namespace (see the module doc)."""

    python: str  # the interpreter that runs nsexec.py
    hidden: tuple[Path, ...] = ()  # absolute, existing directories, none of them "/"
    fast: FastPath | None = None  # None: every process through nsexec

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
        if self.fast is not None and argv and "=" not in argv[0] and argv[0] != "-":
            fstab, words = self.fast.fstab(steps), _env_words(env)
            if fstab is not None and words is not None:
                return await self._spawn_fast(self.fast, *fstab, words, argv, kwargs)
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

    @staticmethod
    async def _spawn_fast(
        fast: FastPath,
        fstab: str,
        cwd: str,
        words: list[str],
        argv: Sequence[str],
        kwargs: dict[str, Any],
    ) -> asyncio.subprocess.Process:
        # libmount reads an fstab only from a regular file: a memfd of this process, read by
        # the child through /proc while it still holds every capability; never inherited
        # (close-on-exec), closed here once the process has ended.
        fd = os.memfd_create("edgeweave-datum-fstab")
        try:
            data = os.fsencode(fstab)
            while data:
                data = data[os.write(fd, data) :]
            proc = await asyncio.create_subprocess_exec(
                fast.unshare,
                "--mount",
                "--propagation",
                "private",
                "--",
                fast.sh,
                "-c",
                FAST_SCRIPT,
                "sh",
                fast.mount,
                fast.setpriv,
                fast.env,
                f"/proc/{os.getpid()}/fd/{fd}",
                cwd,
                *words,
                *argv,
                env={},
                **kwargs,
            )
        except BaseException:
            os.close(fd)
            raise
        task = asyncio.create_task(_close_when_done(proc, fd))
        _OPEN_FSTABS.add(task)
        task.add_done_callback(_OPEN_FSTABS.discard)
        return proc


async def _close_when_done(proc: asyncio.subprocess.Process, fd: int) -> None:
    try:
        await proc.wait()
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
    launcher = "nsexec.py"
    fast, why = await _probe_fast(ns)
    if fast is not None:
        ns, launcher = dataclasses.replace(ns, fast=fast), "unshare, mount, setpriv, env"
    else:
        launcher += f" ({why})"
    shown = ", ".join(str(p) for p in ns.hidden) or "nothing"
    return ns, (
        f"mount namespace on: each datum sees its root at /pfs; hidden: {shown}; "
        f"started through {launcher}"
    )


async def _probe_fast(ns: MountNamespace) -> tuple[FastPath | None, str]:
    """The fast path when its programs are here and a trial run through it passes."""
    found = {name: shutil.which(name, path=SYSTEM_PATH) for name in _FAST_PROGRAMS}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        return None, "no " + ", ".join(missing)
    try:
        dev = await asyncio.to_thread(_dev_template)
        fast = FastPath(**{k: str(v) for k, v in found.items()}, dev=dev)
        why = await _trial(dataclasses.replace(ns, fast=fast))
    except TimeoutError:
        why = f"trial run took over {PROBE_TIMEOUT_S:g}s"
    except (OSError, ValueError) as e:
        why = str(e)
    return (None, why) if why else (fast, "")


_FAST_PROGRAMS = ("unshare", "sh", "mount", "setpriv", "env")


def _dev_template() -> Path:
    """``BASE/dev``: the minimal ``/dev`` (device nodes, links, an empty ``shm``), made once
    in the first of :data:`DEV_BASES` that allows device nodes, or checked when there."""
    for base in DEV_BASES:
        existing = base if base.exists() else base.parent
        if existing.is_dir() and not os.statvfs(existing).f_flag & os.ST_NODEV:
            break
    else:
        raise OSError("no directory for a /dev template on a filesystem with device nodes")
    base.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = base / "dev"
    if _is_dev_template(target):
        return target
    tmp = Path(tempfile.mkdtemp(prefix="dev.", dir=base))
    try:
        for name, (major, minor) in DEV_NODES.items():
            os.mknod(tmp / name, stat.S_IFCHR | 0o666, os.makedev(major, minor))
            os.chmod(tmp / name, 0o666)  # noqa: S103 - whatever the umask
        for name, link in DEV_LINKS.items():
            os.symlink(link, tmp / name)
        (tmp / "shm").mkdir(mode=0o755)
        os.chmod(tmp, 0o755)  # noqa: S103 - root's; readable like /dev, writable by root only
        if target.exists() or target.is_symlink():
            if _is_dev_template(target):  # another process made it meanwhile
                return target
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        os.rename(tmp, target)
    except OSError:
        if _is_dev_template(target):
            return target
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not _is_dev_template(target):
        raise OSError(f"{target}: not the expected /dev template")
    return target


def _is_dev_template(path: Path) -> bool:
    """Whether ``path`` is a root-owned directory holding exactly the template's entries."""
    try:
        st = path.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            return False
        names = set(os.listdir(path))
        if names != set(DEV_NODES) | set(DEV_LINKS) | {"shm"}:
            return False
        for name, (major, minor) in DEV_NODES.items():
            st = (path / name).lstat()
            if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(major, minor):
                return False
            if st.st_uid != 0 or stat.S_IMODE(st.st_mode) != 0o666:
                return False
        for name, link in DEV_LINKS.items():
            if not (path / name).is_symlink() or os.readlink(path / name) != link:
                return False
        st = (path / "shm").lstat()
        return stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022
    except OSError:
        return False


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
