"""Node lifecycle: Ready on connect, NotReady after ``node_grace_s`` without a heartbeat.

Heartbeats are kept **in memory** by the replica holding the connection (docs/design/
edge-link.md §7): :meth:`Lifecycle.heartbeat` is a dict lookup and two assignments, never a
store write. One task sweeps all tracked nodes every ``lifecycle_sweep_s`` (and at once when a
session reports a transition) and writes ``Node.status`` only on a transition — phase change,
new hello, changed heartbeat conditions — plus every ``node_status_refresh_s`` for connected
nodes: ``phase``, ``conditions`` (a ``Ready`` condition merged with the agent's), ``lastHeartbeat``,
``capacity``, ``addresses``, ``agentVersion``, ``connectionOwner``. Writes are compare-and-set
with retries, so an upstream ``node.status`` commit racing a lifecycle write loses nothing. A
disconnected node is forgotten once NotReady is written.

Time is injected (``clock`` for the grace period, ``wall_clock`` for timestamps) so tests move
it instead of sleeping. Not done here: ``Unknown`` for nodes no replica holds (needs replica
liveness, a later issue). This module must not read frames or send anything to nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edgeweave.cloud.hub.index import NODE
from edgeweave.cloud.store.base import JSONObject, Store
from edgeweave.errors import Conflict, EdgeweaveError, NotFound
from edgeweave.protocol.messages import Condition, Heartbeat, Hello

log = logging.getLogger(__name__)

READY, NOT_READY = "Ready", "NotReady"
CAS_ATTEMPTS = 5
WRITES_IN_FLIGHT = 16


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _NodeState:
    owner: object  # the session holding the link (identity only)
    connected: bool
    last_heartbeat: float  # clock()
    last_heartbeat_wall: float
    hello: Hello | None  # None: known from the store only (no link since this hub started)
    conditions: tuple[Condition, ...] = ()
    phase: str | None = None  # as last written
    written_at: float = field(default=float("-inf"))
    dirty: bool = True


class Lifecycle:
    def __init__(
        self,
        store: Store,
        *,
        replica_id: str,
        grace_s: float = 40.0,
        refresh_s: float = 60.0,
        sweep_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._replica_id = replica_id
        self._grace_s = grace_s
        self._refresh_s = refresh_s
        self._sweep_s = sweep_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._nodes: dict[str, _NodeState] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.writes = 0

    # ----------------------------------------------------------- called by sessions

    def connected(self, node: str, owner: object, hello: Hello) -> None:
        self._nodes[node] = _NodeState(
            owner, True, self._clock(), self._wall_clock(), hello, phase=self._phase(node)
        )
        self._wake.set()

    def heartbeat(self, node: str, hb: Heartbeat) -> None:
        state = self._nodes.get(node)
        if state is None:
            return
        state.last_heartbeat = self._clock()
        state.last_heartbeat_wall = self._wall_clock()
        if hb.conditions != state.conditions:
            state.conditions = hb.conditions
            state.dirty = True
            self._wake.set()
        elif state.phase != READY:
            self._wake.set()

    def track_stored(self, nodes: list[JSONObject]) -> None:
        """Nodes the store says are Ready when this hub starts: unless they connect within
        the grace period they become NotReady (a cloud restart must not leave them Ready)."""
        now, wall = self._clock(), self._wall_clock()
        for obj in nodes:
            name = (obj.get("metadata") or {}).get("name")
            phase = (obj.get("status") or {}).get("phase")
            if isinstance(name, str) and phase == READY and name not in self._nodes:
                self._nodes[name] = _NodeState(
                    None, False, now, wall, None, phase=READY, dirty=False
                )

    def disconnected(self, node: str, owner: object) -> None:
        state = self._nodes.get(node)
        if state is not None and state.owner is owner:
            state.connected = False

    def statistics(self) -> dict[str, int]:
        return {"nodes_tracked": len(self._nodes), "status_writes": self.writes}

    # ----------------------------------------------------------- the controller

    def _phase(self, node: str) -> str | None:
        state = self._nodes.get(node)
        return state.phase if state is not None else None

    async def run(self) -> None:
        """Sweep every ``sweep_s`` or when woken; until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sweep_s):
                    await self._wake.wait()
            self._wake.clear()
            await self.sweep()

    async def sweep(self) -> None:
        """Decide every tracked node's phase now and write the ones that need it."""
        async with self._lock:
            now = self._clock()
            due: list[tuple[str, _NodeState, str]] = []
            for node, state in list(self._nodes.items()):
                want = READY if now - state.last_heartbeat <= self._grace_s else NOT_READY
                if (
                    want != state.phase
                    or state.dirty
                    or (state.connected and now - state.written_at >= self._refresh_s)
                ):
                    due.append((node, state, want))
                elif not state.connected and state.phase == NOT_READY:
                    del self._nodes[node]
            # a few writes in flight: under a reconnect storm each store round trip waits
            # for a busy event loop, so one at a time would take minutes for 10,000 nodes
            limit = asyncio.Semaphore(WRITES_IN_FLIGHT)

            async def write(node: str, state: _NodeState, want: str) -> None:
                async with limit:
                    await self._write(node, state, want)

            async with asyncio.TaskGroup() as group:
                for node, state, want in due:
                    group.create_task(write(node, state, want), name=f"hub-status-{node}")

    async def _write(self, node: str, state: _NodeState, phase: str) -> None:
        for _ in range(CAS_ATTEMPTS):
            try:
                obj = await self._store.get(NODE, "", node)
                obj["status"] = self._status(obj.get("status"), state, phase)
                await self._store.update(obj)
            except Conflict:
                continue
            except NotFound:
                self._nodes.pop(node, None)
                return
            except EdgeweaveError as e:
                log.warning("writing the status of node %s failed: %s", node, e)
                return
            self.writes += 1
            state.phase = phase
            state.written_at = self._clock()
            state.dirty = False
            return
        log.warning("writing the status of node %s lost %d races; next sweep", node, CAS_ATTEMPTS)

    def _status(self, current: Any, state: _NodeState, phase: str) -> JSONObject:
        status: JSONObject = dict(current) if isinstance(current, dict) else {}
        hello = state.hello
        heartbeat = rfc3339(state.last_heartbeat_wall)
        ready = phase == READY
        old = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
        previous = old.get("Ready")
        transition = (
            previous.get("lastTransitionTime")
            if previous is not None and previous.get("status") == ("True" if ready else "False")
            else None
        ) or rfc3339(self._wall_clock())
        old["Ready"] = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "AgentHeartbeat" if ready else "HeartbeatMissed",
            "message": "" if ready else f"no heartbeat for more than {self._grace_s:g} s",
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": transition,
        }
        for c in state.conditions:
            if c.type != "Ready":
                old[c.type] = {
                    "type": c.type,
                    "status": c.status,
                    "reason": c.reason,
                    "message": c.message,
                    "lastHeartbeatTime": heartbeat,
                }
        status.update(phase=phase, conditions=list(old.values()), lastHeartbeat=heartbeat)
        if hello is not None:
            status.update(
                capacity={"cpu": hello.capacity.cpu, "memoryBytes": hello.capacity.memory_bytes},
                addresses=[{"type": a.type, "address": a.address} for a in hello.addresses],
                agentVersion=hello.agent_version,
                connectionOwner=self._replica_id,
            )
        return status
