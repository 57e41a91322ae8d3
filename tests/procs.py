"""The live processes of this machine from ``/proc``, for the tests' leak checks and the
pipeline tests' process-group probes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple


class Proc(NamedTuple):
    pid: int
    ppid: int
    pgid: int


def live_processes() -> Iterator[Proc]:
    """Every process that has not exited (zombies are left out)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields[0] = state, fields[1] = ppid, fields[2] = process group
        if fields[0] != b"Z":
            yield Proc(int(entry), int(fields[1]), int(fields[2]))
