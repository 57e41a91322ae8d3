"""What the runtime reports about one app instance: the ``app.status`` outbox payload.

Plain data (docs/design/edge-link.md §5); the agent appends ``to_payload()`` to the outbox
under the topic ``app.status``. This module must not do I/O.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Phase = Literal["Pending", "Installing", "Running", "Failed", "Completed"]
TOPIC = "app.status"


@dataclass(frozen=True)
class AppStatus:
    namespace: str
    name: str
    generation: int | None = None
    phase: Phase = "Pending"
    ready: bool = False
    pid: int | None = None
    restarts: int = 0
    message: str = ""
    # Unix seconds (as the link's ``sent_at``) of the current process's start
    started_at: float | None = None
    spec_hash: str = ""

    def replace(self, **changes: Any) -> AppStatus:
        return dataclasses.replace(self, **changes)

    def to_payload(self) -> dict[str, Any]:
        return {
            "app": {"namespace": self.namespace, "name": self.name},
            "generation": self.generation,
            "phase": self.phase,
            "ready": self.ready,
            "pid": self.pid,
            "restarts": self.restarts,
            "message": self.message,
            "started_at": self.started_at,
            "spec_hash": self.spec_hash,
        }
