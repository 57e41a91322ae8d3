"""The program that puts one datum's process into a private mount namespace, then becomes it.

Run by :mod:`edgeweave.pipelines.mountns` as ``python -I -S nsexec.py FD STEPS... -- CMD...``
with an **empty environment**: the user's environment is read from the file descriptor
``FD`` (a memfd the runner wrote: ``NAME=VALUE`` entries, each ended by a NUL byte) and
given only to ``CMD``, so nothing the user controls (``LD_PRELOAD``, ``PYTHON*``) acts while
this program still holds every capability. In order:

1. ``unshare(CLONE_NEWNS)`` and every mount made private (nothing propagates to the host);
2. the steps, each a word and its paths: ``bind SRC DST``; ``hide DIR`` (an empty read-only
   tmpfs over it); ``hide-keep DIR KEEP`` (the same, with ``KEEP`` under it still visible);
   ``dev`` (a minimal ``/dev``: null, zero, full, random, urandom, tty, fd links, a tmpfs
   ``shm``); ``cd DIR``;
3. the capability bounding, inheritable and ambient sets reduced to :data:`KEPT` (what a
   container runtime grants by default, without ``CAP_MKNOD``), so the code cannot unmount
   the covers, ptrace the agent, open files by handle or make device nodes;
4. ``execvpe(CMD)``: the same pid and process group as the runner started.

Standard library only (it runs with ``-S``); it must not import edgeweave. A failure before
the exec prints one line naming the step and exits 125 (a step) or 127 (no such program).
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
CAPSET_VERSION_3 = 0x20080522
SECURE = MS_NOSUID | MS_NODEV | MS_NOEXEC
# chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw
# sys_chroot audit_write setfcap
KEPT = frozenset({0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 29, 31})
DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9)]
DEVICES += [("tty", 5, 0)]
DEV_LINKS = [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")]
DEV_LINKS += [("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")]
SHM = "/dev/shm"  # noqa: S108 - a tmpfs of this namespace's own


class StepFailed(Exception):
    pass


class _Libc:
    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)

    def call(self, what: str, name: str, *args: object) -> int:
        result: int = getattr(self._libc, name)(*args)
        if result == -1:
            errno = ctypes.get_errno()
            raise StepFailed(f"{what}: {os.strerror(errno)}")
        return result

    def prctl(self, what: str, option: int, arg: int) -> None:
        zero = ctypes.c_ulong(0)
        self.call(what, "prctl", option, ctypes.c_ulong(arg), zero, zero, zero)

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
        self.call(
            f"mount {fstype or source} on {target}",
            "mount",
            source.encode() or None,
            target.encode(),
            fstype.encode() or None,
            ctypes.c_ulong(flags),
            data.encode() or None,
        )


def run_steps(libc: _Libc, steps: list[str]) -> None:
    libc.call("unshare the mount namespace", "unshare", CLONE_NEWNS)
    libc.mount("", "/", "", MS_REC | MS_PRIVATE)
    i = 0
    while i < len(steps):
        step = steps[i]
        if step == "bind":
            libc.mount(steps[i + 1], steps[i + 2], "", MS_BIND)
            i += 3
        elif step == "hide":
            libc.mount("edgeweave-hidden", steps[i + 1], "tmpfs", SECURE | MS_RDONLY, "size=4k")
            i += 2
        elif step == "hide-keep":
            hidden, keep = steps[i + 1], steps[i + 2]
            libc.mount(keep, "/pfs", "", MS_BIND)  # held aside while the cover goes on
            libc.mount("edgeweave-hidden", hidden, "tmpfs", SECURE, "size=64k")
            os.makedirs(keep, exist_ok=True)
            libc.mount("/pfs", keep, "", MS_MOVE)
            libc.mount("", hidden, "", MS_REMOUNT | SECURE | MS_RDONLY)
            i += 3
        elif step == "dev":
            make_dev(libc)
            i += 1
        elif step == "cd":
            os.chdir(steps[i + 1])
            i += 2
        else:
            raise StepFailed(f"unknown step {step!r}")


def make_dev(libc: _Libc) -> None:
    libc.mount("edgeweave-dev", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name, major, minor in DEVICES:
        os.mknod(f"/dev/{name}", 0o020666, os.makedev(major, minor))  # S_IFCHR | rw-rw-rw-
        os.chmod(f"/dev/{name}", 0o666)  # noqa: S103 - whatever the umask
    for name, target in DEV_LINKS:
        os.symlink(target, f"/dev/{name}")
    os.mkdir(SHM)
    libc.mount("edgeweave-shm", SHM, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")


def drop_capabilities(libc: _Libc) -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if cap not in KEPT:
            libc.prctl(f"drop capability {cap}", PR_CAPBSET_DROP, cap)
    libc.prctl("clear ambient capabilities", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = (ctypes.c_uint32 * 2)(CAPSET_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable; twice (64 bits)
    libc.call("read capabilities", "capget", header, data)
    data[2] = data[5] = 0  # no inheritable capabilities
    libc.call("clear inheritable capabilities", "capset", header, data)


def main(argv: list[str]) -> int:
    try:
        sep = argv.index("--", 2)
    except ValueError:
        print("edgeweave: usage: nsexec.py FD STEPS... -- CMD...", file=sys.stderr)
        return 125
    steps, cmd = argv[2:sep], argv[sep + 1 :]
    try:
        with os.fdopen(int(argv[1]), "rb") as f:
            pairs = [item.partition(b"=") for item in f.read().split(b"\0") if item]
        env = {key: value for key, _, value in pairs}
        libc = _Libc()
        run_steps(libc, steps)
        drop_capabilities(libc)
    except (StepFailed, OSError, ValueError, IndexError) as e:
        print(f"edgeweave: cannot set up the datum's mount namespace: {e}", file=sys.stderr)
        return 125
    try:
        os.execvpe(cmd[0], cmd, env)  # noqa: S606 - an argv, as the runner was given it
    except (OSError, IndexError) as e:
        print(f"edgeweave: cannot start {cmd[:1]}: {e}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
