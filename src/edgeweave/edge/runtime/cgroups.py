"""cgroup v2 limits (memory.max, cpu.max) for app processes, when the node allows it.

Used only when the configured root (normally ``/sys/fs/cgroup``) is itself a cgroup2 mount,
writable, and offers the needed controllers; each app gets ``<slice>/<ns>_<name>``. Anything
else — cgroup v1, a read-only mount, a missing controller — makes :meth:`Cgroups.place` return
a message for the app's status instead of failing: rlimits still apply.

This module must not kill or start processes; it only writes cgroup files.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CPU_PERIOD_US = 100_000


def _is_cgroup2_mount(path: Path) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) > 4 and fields[4] == str(path) and right.split()[:1] == ["cgroup2"]:
                    return True
    except OSError:
        return False
    return False


class Cgroups:
    """``check_mount=False`` lets tests point ``root`` at a plain directory."""

    def __init__(self, root: Path, slice_name: str, *, check_mount: bool = True) -> None:
        self.root = root
        self.slice = root / slice_name
        self._check_mount = check_mount

    def _unavailable(self, controllers: set[str]) -> str:
        if self._check_mount and not _is_cgroup2_mount(self.root):
            return f"{self.root} is not a cgroup v2 mount"
        if not os.access(self.root, os.W_OK):
            return f"{self.root} is not writable"
        try:
            offered = set((self.root / "cgroup.controllers").read_text().split())
        except OSError as e:
            return f"cannot read {self.root}/cgroup.controllers: {e.strerror}"
        missing = controllers - offered
        return f"controllers {sorted(missing)} not available" if missing else ""

    def place(self, pid: int, group: str, memory_bytes: int | None, cpu_millis: int | None) -> str:
        """Put ``pid`` into ``<slice>/<group>`` with the limits; "" or why it was not done."""
        wanted = {"memory": memory_bytes, "cpu": cpu_millis}
        controllers = {name for name, value in wanted.items() if value is not None}
        if not controllers:
            return ""
        problem = self._unavailable(controllers)
        if problem:
            return f"cgroup limits not applied ({problem}); rlimits only"
        enable = " ".join(f"+{c}" for c in sorted(controllers))
        path = self.slice / group
        try:
            (self.root / "cgroup.subtree_control").write_text(enable)
            self.slice.mkdir(exist_ok=True)
            (self.slice / "cgroup.subtree_control").write_text(enable)
            path.mkdir(exist_ok=True)
            if memory_bytes is not None:
                (path / "memory.max").write_text(str(memory_bytes))
            if cpu_millis is not None:
                (path / "cpu.max").write_text(
                    f"{cpu_millis * CPU_PERIOD_US // 1000} {CPU_PERIOD_US}"
                )
            (path / "cgroup.procs").write_text(str(pid))
        except OSError as e:
            return f"cgroup limits not applied ({path}: {e.strerror or e}); rlimits only"
        return ""

    def remove(self, group: str) -> None:
        """Remove an app's (empty) cgroup; best effort."""
        with contextlib.suppress(OSError):
            (self.slice / group).rmdir()
