"""Restart decisions: whether an exited app runs again, and after how long.

Pure functions of the restart policy, the exit code and elapsed times; the caller sleeps.
An exit code of ``None`` (an adopted process, whose code only its old parent saw) counts as
a failure.
"""

from __future__ import annotations

from edgeweave.edge.runtime.spec import RestartPolicy


def should_restart(policy: RestartPolicy, code: int | None) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return code != 0
    return False
