"""Tunables of the process runtime, with the defaults of docs/design/edge-link.md §8.

Plain data; the agent's composition root fills it from its settings tree. Nothing here reads
files or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RuntimeSettings:
    # restart backoff: base * 2**n, capped; the count resets after a healthy stretch
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    backoff_reset_after_s: float = 600.0
    # SIGTERM to the process group, then SIGKILL after this long
    stop_grace_s: float = 10.0
    install_timeout_s: float = 1800.0
    # copy-truncate rotation of logs/app.log, checked every log_check_interval_s
    max_log_bytes: int = 10 * 1024 * 1024
    log_keep: int = 3
    log_check_interval_s: float = 2.0
    # lines of install.log quoted in a failed install's status message
    install_log_tail_lines: int = 5
    cgroup_root: Path = Path("/sys/fs/cgroup")
    cgroup_slice: str = "edgeweave.slice"
