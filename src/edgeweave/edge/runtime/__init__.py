"""The process runtime: turns the desired Apps of this node into supervised processes.

It fetches and verifies artifacts, lays out each app's directory (artifacts, config and
secret files, logs), runs ``install`` once per spec, starts ``run`` in its own session with
its output going straight to a log file, restarts it per the restart policy, probes its
health, applies resource limits, and adopts still-running processes after an agent restart
(docs/design/edge-link.md §8).

The runtime reports every status change through a callback; it must not talk to the cloud,
open the agent's store, or import ``edgeweave.cloud``. Dependencies: the standard library and
``edgeweave.errors`` / ``edgeweave.models`` only.
"""

from __future__ import annotations

from edgeweave.config.edge import RuntimeSettings
from edgeweave.edge.runtime.artifacts import ArtifactCache, ArtifactMismatch, Fetcher, materialize
from edgeweave.edge.runtime.status import AppStatus
from edgeweave.edge.runtime.supervisor import Runtime

__all__ = [
    "AppStatus",
    "ArtifactCache",
    "ArtifactMismatch",
    "Fetcher",
    "Runtime",
    "RuntimeSettings",
    "materialize",
]
