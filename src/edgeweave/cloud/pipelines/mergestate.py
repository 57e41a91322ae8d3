"""A Merger's progress as kept in its Pipeline's ``status.merger``, and how it moves.

Under node keying (one merge over every node's repo)::

    {condition, key: node, sources: [node...], received: {node: {commit, time}},
     firstAt, complete, completedAt, merged}

Under a correlation key, ``received`` is the same (each node's newest delivery) and each key
has its own progress; the top-level ``complete`` says every key seen so far is complete::

    {..., key: {path, template}, keys: {KEY: {nodes: [...], firstAt, complete, completedAt}},
     complete, unkeyed: {node: files no key matched}, merged}

``merged`` is the newest commit of the merged view (branch ``master``). A key, once
complete, stays complete (a late node's files join it). At most :data:`MAX_KEYS` keys are
kept: past it the oldest complete keys are forgotten here — their files stay in the merged
view, which is where completed keys are read back from.

Pure: no I/O; times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeweave.cloud.pipelines.mergespec import NODE_KEY, MergerSpec, is_complete

MAX_KEYS = 500


@dataclass
class KeyState:
    nodes: set[str] = field(default_factory=set)
    first_at: float | None = None
    complete: bool = False
    completed_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "nodes": sorted(self.nodes),
            "firstAt": self.first_at,
            "complete": self.complete,
            "completedAt": self.completed_at,
        }


def _key_state(doc: Any) -> KeyState:
    if not isinstance(doc, dict):
        return KeyState()
    nodes = doc.get("nodes")
    first, done = doc.get("firstAt"), doc.get("completedAt")
    return KeyState(
        {str(n) for n in nodes} if isinstance(nodes, list) else set(),
        float(first) if isinstance(first, int | float) else None,
        doc.get("complete") is True,
        float(done) if isinstance(done, int | float) else None,
    )


@dataclass
class MergeState:
    spec: MergerSpec
    sources: list[str] = field(default_factory=list)
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, KeyState] = field(default_factory=dict)
    unkeyed: dict[str, int] = field(default_factory=dict)
    merged: str | None = None

    @classmethod
    def load(cls, doc: Any, spec: MergerSpec) -> MergeState:
        """The state in ``status.merger`` (anything malformed or missing starts afresh)."""
        doc = doc if isinstance(doc, dict) else {}
        state = cls(spec)
        if doc.get("key", "node") != spec.key_json():
            return state  # the key changed: what was counted no longer means the same
        received = doc.get("received")
        if isinstance(received, dict):
            state.received = {str(n): dict(r) for n, r in received.items() if isinstance(r, dict)}
        merged = doc.get("merged")
        state.merged = merged if isinstance(merged, str) else None
        if spec.glob is None:
            if received:
                state.keys[NODE_KEY] = _key_state({**doc, "nodes": list(state.received)})
            return state
        keys = doc.get("keys")
        for key, value in keys.items() if isinstance(keys, dict) else ():
            state.keys[str(key)] = _key_state(value)
        unkeyed = doc.get("unkeyed")
        if isinstance(unkeyed, dict):
            state.unkeyed = {str(n): int(c) for n, c in unkeyed.items() if isinstance(c, int)}
        return state

    def receive(self, node: str, commit: str, keys: set[str], unkeyed: int, now: float) -> None:
        """``node`` delivered ``commit`` holding files of ``keys`` (``unkeyed`` matched none)."""
        if (self.received.get(node) or {}).get("commit") != commit:
            self.received[node] = {"commit": commit, "time": now}
        for key in keys:
            state = self.keys.setdefault(key, KeyState())
            state.nodes.add(node)
            if state.first_at is None:
                state.first_at = now
        if self.spec.glob is not None:
            if unkeyed:
                self.unkeyed[node] = unkeyed
            else:
                self.unkeyed.pop(node, None)

    def evaluate(self, sources: list[str], now: float) -> set[str]:
        """Mark the keys complete whose condition holds at ``now``; those newly complete."""
        self.sources = sources
        done: set[str] = set()
        for key, state in self.keys.items():
            if state.complete or state.first_at is None:
                continue
            received = {n: state.first_at for n in state.nodes}
            if is_complete(self.spec.condition, sources, received, now):
                state.complete, state.completed_at = True, now
                done.add(key)
        self._forget_old()
        return done

    def _forget_old(self) -> None:
        if len(self.keys) <= MAX_KEYS:
            return
        complete = sorted((s.completed_at or 0.0, k) for k, s in self.keys.items() if s.complete)
        for _, key in complete[: len(self.keys) - MAX_KEYS]:
            del self.keys[key]

    def complete_keys(self) -> set[str]:
        return {k for k, s in self.keys.items() if s.complete}

    def next_deadline(self) -> float | None:
        """When a timeout completes the next pending key (None: no timeout pending)."""
        timeout = self.spec.timeout_s()
        if timeout is None:
            return None
        pending = [
            s.first_at for s in self.keys.values() if not s.complete and s.first_at is not None
        ]
        return min(pending) + timeout if pending else None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "condition": self.spec.condition,
            "key": self.spec.key_json(),
            "sources": self.sources,
            "received": self.received,
        }
        if self.spec.glob is None:
            state = self.keys.get(NODE_KEY, KeyState())
            out.update(
                firstAt=state.first_at, complete=state.complete, completedAt=state.completed_at
            )
        else:
            out["keys"] = {k: s.as_json() for k, s in sorted(self.keys.items())}
            out["complete"] = bool(self.keys) and all(s.complete for s in self.keys.values())
            out["unkeyed"] = self.unkeyed
        out["merged"] = self.merged
        return out
