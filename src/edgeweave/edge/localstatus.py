"""The agent's state as a local file, so `edgeweave edge status` works with no cloud and no
connection to the agent: `DATA/status.json`, replaced atomically, at most a few times a second.

The agent writes; the CLI reads. Nothing here talks to the network.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from edgeweave.errors import ConfigError

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
MIN_INTERVAL_S = 0.25


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_local_status(data_dir: Path) -> dict[str, Any]:
    path = data_dir / STATUS_FILE
    try:
        status: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(
            f"no agent state in {data_dir}: has `edgeweave edge run --data {data_dir}` run yet?"
        ) from e
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    pid = int(status.get("agent_pid") or 0)
    if not pid or not _pid_alive(pid):
        age = time.time() - float(status.get("updated_at") or 0)
        status["link"] = {"state": "agent not running", "detail": f"state from {age:.0f} s ago"}
    return status


class StatusFile:
    """Coalesces updates: ``mark_dirty()`` is cheap; a writer task saves at most every 0.25 s."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATUS_FILE
        self.state: dict[str, Any] = {"agent_pid": os.getpid()}
        self._dirty = asyncio.Event()

    def update(self, **fields: Any) -> None:
        self.state.update(fields)
        self._dirty.set()

    def write_now(self) -> None:
        self.state["updated_at"] = time.time()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, default=str))
        os.replace(tmp, self.path)

    async def run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                self.write_now()
            except OSError as e:  # a full disk: keep going, the next update writes again
                log.warning("cannot write %s: %s", self.path, e)
            await asyncio.sleep(MIN_INTERVAL_S)  # rate limit, not synchronisation
