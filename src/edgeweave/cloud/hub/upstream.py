"""The upstream committer: one task that writes every node's acks and outbox batches.

Sessions hand over work without awaiting (:meth:`Committer.submit_upstream`,
:meth:`Committer.submit_acks`) and go back to reading frames, so a heartbeat is never queued
behind a database commit. The committer serves nodes **round-robin**: each turn takes one
node's pending acks (one store call) and up to ``entries_per_turn`` upstream entries (one
transaction), then moves that node to the back of the ring — one node's replay burst delays
another node's commit by at most one turn.

Per batch (docs/design/edge-link.md §5): entries with ``seq`` ≤ the committed seq are skipped
(replay is idempotent); ``app.status`` becomes ``App.status.nodes[<node>] = payload``, only the
newest per app; ``node.status`` is merged into the Node's status (its ``mesh_paths``, the
paths the node uses to reach its peers, replaced whole as ``meshPaths``); ``event`` entries are
appended; ``device.twin`` (checked by :mod:`.twinreport`) becomes the Device's ``status``
(``twins`` replaced whole, ``state``, ``lastOnlineTime``; only the newest per device), its
``samples`` become twin history rows in the same transaction, and its ``localDesired`` items
(newest per device property) are kept in the store by the same commit, for the adopter
(:mod:`.twinadopt`), which ``on_adoptions`` wakes once the commit succeeded;
``pipeline.status`` and ``pipeline.job`` (:mod:`.pipelinereport`) become the Pipeline's
``status.nodes[<node>]`` and job records, which ``record_jobs`` stores *before* the batch is
committed (it is idempotent, so a replay after a failed commit does no harm). Entries
about objects not assigned to the node, and malformed ``device.twin`` entries, are
**refused**: counted, reported as one Warning event on the Node, never committed (their seqs
still count as consumed, so a replay does not loop). Other topics (``log``, ``metric``) are
counted and skipped. After the commit the node gets ``upstream_ack{committed_seq}``.

This module must not read frames, decide what a node should hold, write anything but through
``commit_upstream``, or retry a failed commit on its own (the agent replays unacked entries).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from edgeweave.cloud.hub.index import APP, DesiredIndex, node_ref
from edgeweave.cloud.hub.pipelinereport import PIPELINE_TOPICS, PipelineReports, take_pipeline_entry
from edgeweave.cloud.hub.twinreport import encode_local_desired, parse_twin_report
from edgeweave.cloud.store.base import (
    MAX_EVENT_TEXT,
    AckItem,
    Adoption,
    EventRow,
    JSONObject,
    NodeSyncStore,
    StatusWrite,
    TwinSample,
)
from edgeweave.errors import BadRequest, EdgeweaveError, TooManyRequests
from edgeweave.pipelines.commitreport import CommitReport
from edgeweave.pipelines.jobreport import JobReport
from edgeweave.protocol.messages import Error, Message, Upstream, UpstreamAck, UpstreamEntry
from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin import report as twin_report
from edgeweave.twin.report import LocalDesired

log = logging.getLogger(__name__)

Reply = Callable[[Message], None]
LocalDesiredItems = list[tuple[ResourceRef, LocalDesired]]
"""Desired values set on the edge, per Device (see :mod:`.twinadopt`)."""
RecordJobs = Callable[[str, list[JobReport]], Awaitable[None]]
RecordCommits = Callable[[str, list[CommitReport]], Awaitable[None]]


MAX_REFUSAL_TEXT = 300  # characters of one refused entry's description in the Warning event
MAX_PENDING_BATCHES = 16  # per node; the agent keeps a few frames in flight
MAX_MESH_PEERS = 10_000  # peers one node may report a mesh path to
MAX_NODE_NAME = 253
_NODE_STATUS_FIELDS = {
    "conditions": "conditions",
    "capacity": "capacity",
    "addresses": "addresses",
    "agent_version": "agentVersion",
}


@dataclass
class _Batch:
    msg: Upstream
    reply: Reply


@dataclass
class _NodeWork:
    acks: list[AckItem] = field(default_factory=list)
    ack_snapshot: Callable[[], list[AckItem]] | None = None  # set: replace the whole set
    batches: deque[_Batch] = field(default_factory=deque)


@dataclass
class Translated:
    """What one node's upstream entries become in the store."""

    last_seq: int
    events: list[EventRow]
    status_writes: list[StatusWrite]
    refused: list[str]
    skipped_topics: int
    samples: list[TwinSample] = field(default_factory=list)
    local_desired: LocalDesiredItems = field(default_factory=list)
    pipelines: PipelineReports = field(default_factory=PipelineReports)


def adoptions_of(node: str, items: LocalDesiredItems) -> list[Adoption]:
    """``items`` as the store keeps them until adopted: one row per Device."""
    per_device: dict[ResourceRef, list[LocalDesired]] = {}
    for ref, item in items:
        per_device.setdefault(ref, []).append(item)
    return [
        (node, ref.namespace or "", ref.name, encode_local_desired(device_items))
        for ref, device_items in per_device.items()
    ]


def _ref_key(value: Any) -> tuple[str, str, str] | None:
    """A cheap hashable key for an object reference, before any validation."""
    if not isinstance(value, dict):
        return None
    kind, ns, name = value.get("kind"), value.get("namespace", ""), value.get("name")
    if type(kind) is str and type(ns) is str and type(name) is str:  # hot path: no genexpr
        return (kind, ns, name)
    return None


def _ref_of(value: Any, default_kind: str | None = None) -> ResourceRef | None:
    if not isinstance(value, dict):
        return None
    kind = value.get("kind", default_kind)
    ns, name = value.get("namespace", ""), value.get("name")
    if not (isinstance(kind, str) and isinstance(ns, str) and isinstance(name, str)):
        return None
    return ResourceRef(kind, ns, name) if kind and name else None


def _mesh_paths(reported: dict[Any, Any]) -> JSONObject:
    """Only ``{peer node: "direct" | "relay"}`` pairs, at most ``MAX_MESH_PEERS`` of them."""
    kept = {
        peer: path
        for peer, path in reported.items()
        if isinstance(peer, str) and len(peer) <= MAX_NODE_NAME and path in ("direct", "relay")
    }
    return dict(sorted(kept.items())[:MAX_MESH_PEERS])


def translate(
    node: str, entries: list[UpstreamEntry], committed: int, index: DesiredIndex
) -> Translated:
    """Map outbox entries above ``committed`` to events and status writes (pure)."""
    out = Translated(committed, [], [], [], 0)
    app_status: dict[ResourceRef, JSONObject] = {}
    twin_status: dict[ResourceRef, JSONObject] = {}
    local_desired: dict[tuple[ResourceRef, str], LocalDesired] = {}
    node_status: JSONObject = {}
    mesh_paths: JSONObject | None = None
    own = node_ref(node)
    now = time.time()
    # a burst of events is usually about a few objects: decide each object once per batch
    allowed_refs: dict[tuple[str, str, str], tuple[ResourceRef | None, bool]] = {}
    for entry in entries:
        if entry.seq <= committed:
            continue
        out.last_seq = max(out.last_seq, entry.seq)
        payload = entry.payload
        if entry.topic == "app.status":
            ref = _ref_of(payload.get("app") if isinstance(payload, dict) else None, APP)
            if ref is None or ref.kind != APP or not index.app_assigned(node, ref):
                out.refused.append(f"app.status #{entry.seq} about {ref or 'no app'}")
                continue
            app_status.pop(ref, None)  # newest wins, in the order last reported
            app_status[ref] = payload
        elif entry.topic == "node.status":
            if not isinstance(payload, dict):
                out.refused.append(f"node.status #{entry.seq} is not an object")
                continue
            for wire, stored in _NODE_STATUS_FIELDS.items():
                if wire in payload:
                    node_status[stored] = payload[wire]
            if isinstance(payload.get("mesh_paths"), dict):
                mesh_paths = _mesh_paths(payload["mesh_paths"])
        elif entry.topic == "event":
            obj = payload.get("object") if isinstance(payload, dict) else None
            key = _ref_key(obj)
            decided = allowed_refs.get(key) if key is not None else None
            if decided is None:
                ref = _ref_of(obj)
                decided = (
                    ref,
                    ref is not None and (ref == own or index.desired(node, ref) is not None),
                )
                if key is not None:
                    allowed_refs[key] = decided
            ref, allowed = decided
            if not allowed:
                out.refused.append(f"event #{entry.seq} about {ref or 'no object'}")
                continue
            assert isinstance(payload, dict) and ref is not None
            when = payload.get("time")
            out.events.append(
                (
                    node,
                    when if type(when) is float or type(when) is int else now,
                    ref.kind,
                    ref.namespace,
                    ref.name,
                    str(payload.get("type") or "Normal")[:MAX_EVENT_TEXT],
                    str(payload.get("reason") or "")[:MAX_EVENT_TEXT],
                    str(payload.get("message") or "")[:MAX_EVENT_TEXT],
                )
            )
        elif entry.topic == twin_report.TOPIC:
            try:
                report = parse_twin_report(payload)
            except BadRequest as e:
                out.refused.append(f"device.twin #{entry.seq} is malformed: {e.message}")
                continue
            device = report.device
            if index.desired(node, device) is None:
                out.refused.append(f"device.twin #{entry.seq} about {device}")
                continue
            twin_status.pop(device, None)  # newest wins, in the order last reported
            twin_status[device] = report.status
            ns, name = device.namespace, device.name
            out.samples.extend((ns, name, prop, ms, value) for prop, ms, value in report.samples)
            for item in report.local_desired:
                local_desired.pop((device, item.property), None)
                local_desired[(device, item.property)] = item
        elif entry.topic in PIPELINE_TOPICS:
            why = take_pipeline_entry(node, entry.topic, entry.seq, payload, index, out.pipelines)
            if why is not None:
                out.refused.append(why)
        else:
            out.skipped_topics += 1
    out.status_writes.extend(out.pipelines.status_writes(node))
    for ref, status in twin_status.items():
        out.status_writes.append((ref.kind, ref.namespace, ref.name, status))
    out.local_desired = [(ref, item) for (ref, _), item in local_desired.items()]
    for ref, payload in app_status.items():
        # clear, then set: the node's entry becomes exactly the payload (not a merge)
        out.status_writes.append((APP, ref.namespace, ref.name, {"nodes": {node: None}}))
        out.status_writes.append((APP, ref.namespace, ref.name, {"nodes": {node: payload}}))
    if node_status:
        out.status_writes.append((own.kind, "", node, node_status))
    if mesh_paths is not None:  # clear, then set: a peer no longer reported must go
        out.status_writes.append((own.kind, "", node, {"meshPaths": None}))
        out.status_writes.append((own.kind, "", node, {"meshPaths": mesh_paths}))
    if out.refused:
        shown = "; ".join(r[:MAX_REFUSAL_TEXT] for r in out.refused[:3])
        shown += " ..." if len(out.refused) > 3 else ""
        message = (
            f"refused {len(out.refused)} upstream entries from node {node} (about objects not "
            f"assigned to it, or malformed): {shown}"
        )
        out.events.append((node, now, own.kind, "", node, "Warning", "UpstreamRefused", message))
    return out


class Committer:
    def __init__(
        self,
        store: NodeSyncStore,
        index: Callable[[], DesiredIndex],
        *,
        entries_per_turn: int = 5000,
        on_adoptions: Callable[[], None] | None = None,
        record_jobs: RecordJobs | None = None,
        record_commits: RecordCommits | None = None,
    ) -> None:
        """``on_adoptions()`` is called (it must not block) after a commit that kept desired
        values set on the edge for adoption; ``record_jobs(node, reports)``
        stores the jobs a node reported (None: they are dropped, e.g. pipelines disabled);
        ``record_commits(node, reports)`` the commits of repos located on it (the same)."""
        self._store = store
        self._index = index
        self._entries_per_turn = entries_per_turn
        self._on_adoptions = on_adoptions
        self._record_jobs = record_jobs
        self._record_commits = record_commits
        self._ring: OrderedDict[str, _NodeWork] = OrderedDict()
        self._committed: dict[str, int] = {}
        self._wake = asyncio.Event()
        self.refused_total = 0
        self.commits = 0

    def set_committed(self, node: str, seq: int) -> None:
        """What the store says is committed for ``node`` (read at hello)."""
        self._committed[node] = max(seq, self._committed.get(node, 0))

    def submit_upstream(self, node: str, msg: Upstream, reply: Reply) -> None:
        work = self._work(node)
        if len(work.batches) >= MAX_PENDING_BATCHES:
            error = TooManyRequests(f"more than {MAX_PENDING_BATCHES} upstream batches pending")
            reply(Error(reason=error.reason, message=error.message, parent_id=msg.id))
            return
        work.batches.append(_Batch(msg, reply))

    def submit_acks(
        self,
        node: str,
        items: list[AckItem],
        snapshot: Callable[[], list[AckItem]] | None = None,
    ) -> None:
        """Record ``items``; with ``snapshot``, replace the node's whole acked set with what
        it returns at write time instead (needed when a node acked a delete of an object that
        still exists, which ``record_acks`` cannot express)."""
        work = self._work(node)
        work.acks.extend(items)
        if snapshot is not None:
            work.ack_snapshot = snapshot

    def statistics(self) -> dict[str, int]:
        return {
            "nodes_pending": len(self._ring),
            "batches_pending": sum(len(w.batches) for w in self._ring.values()),
            "commits": self.commits,
            "refused_entries": self.refused_total,
        }

    def _work(self, node: str) -> _NodeWork:
        work = self._ring.get(node)
        if work is None:
            work = self._ring[node] = _NodeWork()
        self._wake.set()
        return work

    async def run(self) -> None:
        """The committer task: until cancelled."""
        while True:
            if not self._ring:
                self._wake.clear()
                await self._wake.wait()
                continue
            node, work = self._ring.popitem(last=False)
            await self._turn(node, work)
            if work.acks or work.ack_snapshot or work.batches:
                existing = self._ring.pop(node, None)  # work added during the turn
                if existing is not None:
                    work.acks.extend(existing.acks)
                    work.ack_snapshot = existing.ack_snapshot or work.ack_snapshot
                    work.batches.extend(existing.batches)
                self._ring[node] = work

    async def _turn(self, node: str, work: _NodeWork) -> None:
        try:
            if work.ack_snapshot is not None:
                snapshot, work.ack_snapshot = work.ack_snapshot, None
                work.acks.clear()
                await self._store.replace_acks(node, snapshot())
            elif work.acks:
                acks, work.acks = work.acks, []
                await self._store.record_acks(node, acks)
        except EdgeweaveError as e:
            log.warning("recording acks of node %s failed: %s", node, e)
        if not work.batches:
            return
        batches: list[_Batch] = []
        entries: list[UpstreamEntry] = []
        while work.batches and (not batches or len(entries) < self._entries_per_turn):
            batch = work.batches.popleft()
            batches.append(batch)
            entries.extend(batch.msg.entries)
        await self._commit(node, batches, entries)

    async def _commit(self, node: str, batches: list[_Batch], entries: list[UpstreamEntry]) -> None:
        committed = self._committed.get(node, 0)
        done = translate(node, entries, committed, self._index())
        reply: Message
        try:
            if done.last_seq > committed:
                if done.pipelines.jobs and self._record_jobs is not None:
                    await self._record_jobs(node, done.pipelines.jobs)
                if done.pipelines.commits and self._record_commits is not None:
                    await self._record_commits(node, done.pipelines.commits)
                adoptions = adoptions_of(node, done.local_desired)
                committed = await self._store.commit_upstream(
                    node,
                    done.last_seq,
                    done.events,
                    done.status_writes,
                    done.samples,
                    adoptions,
                )
                self._committed[node] = committed
                self.commits += 1
                self.refused_total += len(done.refused)
                if adoptions and self._on_adoptions is not None:
                    self._on_adoptions()
        except EdgeweaveError as e:
            log.warning("upstream commit of node %s failed: %s", node, e)
            for batch in batches:
                batch.reply(Error(reason=e.reason, message=e.message, parent_id=batch.msg.id))
            return
        # the acks a loop turn later: the commit woke the API's watch streams, whose events
        # go first (an ack only lets the node trim its outbox)
        loop = asyncio.get_running_loop()
        for batch in batches:
            reply = UpstreamAck(committed_seq=committed, parent_id=batch.msg.id)
            loop.call_soon(batch.reply, reply)
