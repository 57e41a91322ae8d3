"""Restart decisions: whether an exited app runs again, and after how long.

Pure functions of the restart policy, the exit code and elapsed times; the caller sleeps.
An exit code of ``None`` (an adopted process, whose code only its old parent saw) counts as
a failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeweave.edge.runtime.spec import RestartPolicy


def should_restart(policy: RestartPolicy, code: int | None) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return code != 0
    return False


@dataclass
class Backoff:
    """Exponential delays ``base * 2**n`` up to ``cap``; :meth:`reset` after a healthy run."""

    base_s: float
    cap_s: float
    attempts: int = 0

    def next_delay_s(self) -> float:
        delay = min(self.cap_s, self.base_s * float(2 ** min(self.attempts, 32)))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
