"""Benchmark of the cloud-edge link end to end: downstream throughput, resync bytes after an
outage, and the outbox drain into the cloud.

Run ``.venv/bin/python bench/sync.py [--quick] [--objects N] [--resync-objects N]
[--changes 0,10,100] [--entries M] [--out FILE]``. Everything runs as real processes from
``edgeweave.cli.fleet.Fleet``: ``edgeweave cloud serve`` and ``edgeweave edge run`` speaking the
real protocol over TLS WebSockets. The agent dials the hub through a byte-counting TCP relay
in this process (``_fleet_util.CountingProxy``, its own thread), which also timestamps when
the agent's connection arrived. The cloud side is observed through a second connection to the
cloud's SQLite file (``acked_versions``, ``upstream_committed_seq``); writes go through the
HTTP API. Prints ONE JSON document on stdout (progress on stderr); a temporary directory holds
everything and is removed at the end, and every process is stopped.

Objects are ``Device`` objects (``spec.nodeName`` = the node, about 1 KiB each): a node
receives them directly and the agent runs nothing for them, so the figures are the sync path
alone (hub index → send queue → TLS → agent persist → ack → cloud records the ack).

- ``downstream``: (a) ``live``: the agent is connected; N Devices are created through the API
  (16 concurrent writers) and the clock runs from the first write until the cloud has recorded
  the node's ack of every one; the API's own write rate is reported beside it. (b)
  ``catch_up``: the agent is stopped, all N are updated, the agent is started; the clock runs
  from the moment its connection reaches the relay until every new version is acked.
  Baseline: ``EdgeStore.apply_batch`` of the same objects in batches of 1,000 (the agent's
  largest batch) into a fresh store, objects/s, and the ratio catch-up / baseline.
- ``resync``: another node holds R Devices; the agent is stopped, k of them are changed, the
  agent is started, and the wire bytes (both directions) are counted until the agent reached
  ``sync_done`` and the cloud recorded every ack. k = 0 measures the constant (TLS handshake,
  hello/welcome, first heartbeat, sync_done). A full resend is measured by starting the agent
  with its local store removed (resync → empty ``held`` → all R sent). Target: bytes(k) ≤
  2 x (the changed objects' JSON bytes) + bytes(0).
- ``drain``: a third node's outbox is filled with M ``event`` entries about the node itself
  while the agent is stopped (``open_outbox(DATA/outbox.db)``, the agent's own file), then the
  agent is started; entries/s from its connection reaching the relay until the cloud's
  ``upstream_committed_seq`` is M. Baseline: ``peek`` + ``ack`` of a copy of the same outbox
  with the link's batch limits and no network. Target: ≥ 100,000 entries/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fleet_util import CountingProxy, WireTotals, cpu_seconds, point_agent_at
from _util import log, machine_info, ratio, source_info
from edgeweave.cli.fleet import Fleet, wait_until
from edgeweave.client import AsyncClient, load_config
from edgeweave.cloud.store.sqlite import SQLiteStore, open_sqlite_store
from edgeweave.config.edge import LinkSettings
from edgeweave.edge.outbox import Outbox, open_outbox
from edgeweave.edge.store import load_or_create_store_key, open_edge_store
from edgeweave.protocol.refs import ResourceRef

NAMESPACE = "default"
MODEL = "bench-model"
WRITERS = 16
POLL_S = 0.01
PHASE_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 60.0
APPLY_BATCH = 1000  # edge/link.py DOWNSTREAM_BATCH: the most the agent persists at once
OBJECT_BYTES = 1024
SETTLE_S = 0.3  # after sync_done, to show that nothing else was still in flight

FULL = {"objects": 2000, "resync_objects": 1000, "changes": "0,10,100", "entries": 200_000}
QUICK = {"objects": 300, "resync_objects": 200, "changes": "0,10,50", "entries": 20_000}

TARGET_DRAIN_PER_S = 100_000
TARGET_RESYNC_FACTOR = 2.0

AckKey = tuple[str, str, str]


# ---- objects --------------------------------------------------------------------------------


def model_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": MODEL, "namespace": NAMESPACE},
        "spec": {
            "protocol": "bench",
            "properties": [{"name": f"p{i}", "type": "STRING"} for i in range(4)],
        },
    }


def device_manifest(name: str, node: str, generation: int, pad: int) -> dict[str, Any]:
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "sync"}},
        "spec": {
            "deviceModelRef": {"name": MODEL},
            "nodeName": node,
            "protocol": {"protocolName": "bench", "configData": {"note": "x" * pad}},
            "properties": [
                {"name": f"p{i}", "desired": {"value": f"g{generation:06d}-{i}"}} for i in range(4)
            ],
        },
    }


def wire_json(obj: dict[str, Any]) -> str:
    """The object as a node is sent it: without ``status``, compact JSON."""
    return json.dumps({k: v for k, v in obj.items() if k != "status"}, separators=(",", ":"))


def key_of(obj: dict[str, Any]) -> AckKey:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace") or "", meta["name"])


def rv_of(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


async def concurrently(
    items: Sequence[Any], call: Callable[[Any], Awaitable[dict[str, Any]]], workers: int = WRITERS
) -> list[dict[str, Any]]:
    """``call`` for every item with ``workers`` in flight; results in item order."""
    results: list[dict[str, Any] | None] = [None] * len(items)
    position = iter(range(len(items)))

    async def worker() -> None:
        for i in position:
            results[i] = await call(items[i])

    await asyncio.gather(*(worker() for _ in range(workers)))
    return [r for r in results if r is not None]


# ---- the fleet --------------------------------------------------------------------------------


class Bench:
    """The fleet, the relay, the API client and the observer of the cloud store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fleet = Fleet(root / "fleet")
        self.proxy = CountingProxy("127.0.0.1", self.fleet.hub_port)
        self.client: AsyncClient | None = None
        self.observer: SQLiteStore | None = None
        self.pad = 0

    async def start(self) -> None:
        port = await asyncio.to_thread(self.proxy.start)
        log(f"relay on 127.0.0.1:{port} -> hub 127.0.0.1:{self.fleet.hub_port}")
        cloud = await asyncio.to_thread(self.fleet.start_cloud)
        log(f"cloud pid {cloud.pid} serving")
        self.client = AsyncClient(load_config(str(self.fleet.admin_config)))
        self.observer = await open_sqlite_store(self.fleet.cloud_dir / "edgeweave.db")
        await self.client.create(model_manifest())
        self.pad = await self._pad_for_object_bytes()

    async def aclose(self) -> None:
        try:
            if self.client is not None:
                await self.client.aclose()
            if self.observer is not None:
                await self.observer.aclose()
        finally:
            await asyncio.to_thread(self.fleet.stop)
            await asyncio.to_thread(self.proxy.stop)

    async def _pad_for_object_bytes(self) -> int:
        """Padding that makes a stored Device about OBJECT_BYTES of JSON."""
        assert self.client is not None
        probe = await self.client.create(device_manifest("probe", "nobody", 0, 0))
        await self.client.delete("Device", "probe", NAMESPACE)
        return max(OBJECT_BYTES - len(wire_json(probe)) - 40, 0)  # rv and uid widths vary

    async def join(self, node: str) -> None:
        data = await asyncio.to_thread(self.fleet.join, node)
        point_agent_at(data, self.proxy.port)

    async def start_agent(self, node: str) -> float:
        started = time.perf_counter()
        await asyncio.to_thread(self.fleet.start_agent, node)
        return started

    async def stop_agent(self, node: str) -> None:
        await asyncio.to_thread(self.fleet.agents[node].stop)

    async def wait_connection(self) -> None:
        """Until the agent's connection reached the relay (after :meth:`CountingProxy.mark`)."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while self.proxy.totals().first_accepted_at is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the agent never connected")
            await asyncio.sleep(0.002)

    def cpu(self, node: str) -> tuple[float, float]:
        """CPU seconds used so far by the cloud and by ``node``'s agent."""
        assert self.fleet.cloud is not None
        return cpu_seconds(self.fleet.cloud.pid), cpu_seconds(self.fleet.agents[node].pid)

    async def wait_synced(self, node: str) -> None:
        """Until the running agent process of ``node`` got ``sync_done``."""
        pid = self.fleet.agents[node].pid

        def synced() -> bool:
            status = self.fleet.agent_status(node)
            link = status.get("link")
            state = link.get("state") if isinstance(link, dict) else None
            return status.get("agent_pid") == pid and state == "connected"

        await asyncio.to_thread(wait_until, synced, CONNECT_TIMEOUT_S, f"{node} synced")

    async def wait_outbox_empty(self, node: str) -> None:
        """Until the agent of ``node`` has nothing left to send (its twin reports included)."""

        def empty() -> bool:
            outbox = self.fleet.agent_status(node).get("outbox")
            return isinstance(outbox, dict) and outbox.get("entries") == 0

        await asyncio.to_thread(wait_until, empty, PHASE_TIMEOUT_S, f"{node}'s outbox drained")

    async def wait_reported(self, node: str, names: Sequence[str]) -> None:
        """Until the cloud holds a twin report (a status) of each of ``node``'s Devices
        ``names``: the agent's first reports are all in, not just a gap between them."""
        assert self.observer is not None
        wanted = set(names)
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while True:
            listed = await self.observer.list("Device", "default")
            done = {
                o["metadata"]["name"]
                for o in listed.items
                if o.get("spec", {}).get("nodeName") == node and o.get("status")
            }
            if wanted <= done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node}: {len(wanted - done)} Devices never reported")
            await asyncio.sleep(POLL_S)

    async def wait_acked(self, node: str, expected: dict[AckKey, int]) -> float:
        """Poll the cloud's recorded acks until each key is acked at (at least) its rv;
        returns ``time.perf_counter()`` when that was first seen."""
        assert self.observer is not None
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while True:
            acked = await self.observer.acked_versions(node)
            if all(acked.get(k, -1) >= rv for k, rv in expected.items()):
                return time.perf_counter()
            if time.monotonic() > deadline:
                missing = sum(acked.get(k, -1) < rv for k, rv in expected.items())
                raise TimeoutError(f"{node}: {missing} of {len(expected)} objects never acked")
            await asyncio.sleep(POLL_S)

    async def create_devices(self, node: str, names: Sequence[str]) -> list[dict[str, Any]]:
        assert self.client is not None
        client, pad = self.client, self.pad

        async def create(name: str) -> dict[str, Any]:
            return await client.create(device_manifest(name, node, 0, pad))

        return await concurrently(names, create)

    async def update_devices(
        self, node: str, objects: Sequence[dict[str, Any]], generation: int
    ) -> list[dict[str, Any]]:
        assert self.client is not None
        client, pad = self.client, self.pad

        async def update(obj: dict[str, Any]) -> dict[str, Any]:
            name = obj["metadata"]["name"]
            body = device_manifest(name, node, generation, pad)
            # the node's twin reports write the Device's status, so read the current version
            current = await client.get("devices", name, namespace=obj["metadata"]["namespace"])
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            return await client.update(body)

        return await concurrently(objects, update)


def cpu_report(
    before: tuple[float, float], after: tuple[float, float], units: int, wall_s: float, unit: str
) -> dict[str, Any]:
    """CPU of the cloud and the agent over a phase: per unit of work, and as a share of one
    core (on a loaded machine the rate suffers; the CPU per unit much less)."""
    cloud_s, agent_s = after[0] - before[0], after[1] - before[1]
    return {
        f"cloud_cpu_us_per_{unit}": round(cloud_s / units * 1e6, 1),
        f"agent_cpu_us_per_{unit}": round(agent_s / units * 1e6, 1),
        "cloud_cpu_cores_busy": round(cloud_s / wall_s, 2),
        "agent_cpu_cores_busy": round(agent_s / wall_s, 2),
    }


# ---- 1. downstream ----------------------------------------------------------------------------


async def baseline_apply_batch(work: Path, objects: Sequence[dict[str, Any]]) -> float:
    """``EdgeStore.apply_batch`` of ``objects`` in batches of APPLY_BATCH; objects/s."""
    store = await open_edge_store(
        work / "baseline-state.db", secret_key=load_or_create_store_key(work / "baseline.key")
    )
    try:
        rows = [(ResourceRef(*key_of(o)), rv_of(o), json.loads(wire_json(o))) for o in objects]
        start = time.perf_counter()
        for i in range(0, len(rows), APPLY_BATCH):
            await store.apply_batch(rows[i : i + APPLY_BATCH], [])
        elapsed = time.perf_counter() - start
    finally:
        await store.aclose()
    return len(rows) / elapsed


async def bench_downstream(bench: Bench, n: int) -> dict[str, Any]:
    node = "bench-down"
    await bench.join(node)
    await bench.start_agent(node)
    await bench.wait_synced(node)
    names = [f"down-{i:06d}" for i in range(n)]

    log(f"downstream live: creating {n} Devices through the API while {node} is connected")
    start = time.perf_counter()
    created = await bench.create_devices(node, names)
    writes_done = time.perf_counter()
    done = await bench.wait_acked(node, {key_of(o): rv_of(o) for o in created})
    live_s, write_s = done - start, writes_done - start

    log(f"downstream catch-up: {node} stopped, {n} Devices updated, {node} started")
    await bench.stop_agent(node)
    updated = await bench.update_devices(node, created, generation=1)
    bench.proxy.mark()
    agent_started = await bench.start_agent(node)
    await bench.wait_connection()
    cpu_before = bench.cpu(node)
    done = await bench.wait_acked(node, {key_of(o): rv_of(o) for o in updated})
    cpu_after = bench.cpu(node)
    wire = bench.proxy.totals()
    assert wire.first_accepted_at is not None
    catch_up_s = done - wire.first_accepted_at
    await bench.wait_synced(node)
    await bench.stop_agent(node)

    log(f"downstream baseline: EdgeStore.apply_batch of {n} objects")
    base_per_s = await baseline_apply_batch(bench.root, updated)
    sizes = [len(wire_json(o)) for o in updated]
    catch_up_per_s = n / catch_up_s
    return {
        "node_objects": n,
        "object_bytes_mean": round(sum(sizes) / n),
        "live": {
            "what": "N creates through the API (16 writers) while connected; first write to "
            "last ack recorded in the cloud",
            "objects_per_s": round(n / live_s),
            "seconds": round(live_s, 3),
            "api_writes_per_s": round(n / write_s),
            "ratio_sync_to_api_write_rate": ratio(n / live_s, n / write_s),
        },
        "catch_up": {
            "what": "N updated while the agent was stopped; agent's connection accepted to "
            "last ack recorded in the cloud",
            "objects_per_s": round(catch_up_per_s),
            "seconds": round(catch_up_s, 3),
            "agent_process_start_to_done_s": round(done - agent_started, 3),
            "wire_down_bytes": wire.down_bytes,
            "wire_up_bytes": wire.up_bytes,
            **cpu_report(cpu_before, cpu_after, n, catch_up_s, "object"),
        },
        "baseline_edge_store_apply_batch": {
            "batch": APPLY_BATCH,
            "objects_per_s": round(base_per_s),
        },
        "ratio_catch_up_to_baseline": ratio(catch_up_per_s, base_per_s),
    }


# ---- 2. resync bytes --------------------------------------------------------------------------


def wire_summary(wire: WireTotals) -> dict[str, int]:
    return {
        "bytes": wire.total_bytes,
        "down_bytes": wire.down_bytes,
        "up_bytes": wire.up_bytes,
        "connections": wire.connections,
    }


async def reconnect_bytes(
    bench: Bench, node: str, expected: dict[AckKey, int], *, wipe_store: bool = False
) -> WireTotals:
    """Start the stopped agent and count the wire until it is synced and acked all."""
    assert bench.observer is not None
    held = len(await bench.observer.acked_versions(node))  # devices, model, the Node
    if wipe_store:
        for path in bench.fleet.agent_dir(node).glob("state.db*"):
            path.unlink()
    bench.proxy.mark()
    await bench.start_agent(node)
    await bench.wait_synced(node)
    await bench.wait_acked(node, expected)
    if wipe_store:  # acks at unchanged rvs were already there: also wait for the agent's store
        await asyncio.to_thread(
            wait_until,
            lambda: bench.fleet.agent_status(node).get("objects") == held,
            CONNECT_TIMEOUT_S,
            f"{node} holding every object again",
        )
    await asyncio.sleep(SETTLE_S)
    wire = bench.proxy.totals()
    await bench.stop_agent(node)
    return wire


async def bench_resync(bench: Bench, n: int, changes: Sequence[int]) -> dict[str, Any]:
    node = "bench-resync"
    await bench.join(node)
    names = [f"resync-{i:06d}" for i in range(n)]
    log(f"resync: {node} receives {n} Devices")
    objects = await bench.create_devices(node, names)
    await bench.start_agent(node)
    await bench.wait_synced(node)
    current = {key_of(o): o for o in objects}
    await bench.wait_acked(node, {k: rv_of(o) for k, o in current.items()})
    await bench.wait_reported(node, names)  # the first twin report of each Device went up
    await bench.wait_outbox_empty(node)
    await bench.stop_agent(node)
    held_bytes = sum(len(wire_json(o)) for o in current.values())

    runs: list[dict[str, Any]] = []
    constant: int | None = None
    for generation, k in enumerate(changes, start=1):
        log(f"resync: {node} stopped, {k} of {n} changed, {node} started")
        changed = await bench.update_devices(node, list(current.values())[:k], generation)
        current.update((key_of(o), o) for o in changed)
        changed_bytes = sum(len(wire_json(o)) for o in changed)
        wire = await reconnect_bytes(bench, node, {key: rv_of(o) for key, o in current.items()})
        if k == 0:
            constant = wire.total_bytes
        run: dict[str, Any] = {"changed": k, "changed_object_bytes": changed_bytes}
        run.update(wire_summary(wire))
        if k > 0 and constant is not None:
            above = wire.total_bytes - constant
            run["bytes_above_constant"] = above
            run["ratio_bytes_to_changed_bytes"] = ratio(wire.total_bytes, changed_bytes)
            run["ratio_above_constant_to_changed_bytes"] = ratio(above, changed_bytes)
            run["target_bytes"] = round(TARGET_RESYNC_FACTOR * changed_bytes + constant)
            run["met"] = wire.total_bytes <= run["target_bytes"]
        runs.append(run)

    log(f"resync: full resend (the agent's local store removed, {n} objects)")
    full = await reconnect_bytes(
        bench, node, {key: rv_of(o) for key, o in current.items()}, wipe_store=True
    )
    return {
        "node_objects": n,
        "held_object_bytes": held_bytes,
        "constant_bytes_no_change": constant,
        "target": f"bytes(k) <= {TARGET_RESYNC_FACTOR:g} x changed object bytes + bytes(k=0)",
        "runs": runs,
        "full_resend": {
            **wire_summary(full),
            "ratio_to_held_object_bytes": ratio(full.total_bytes, held_bytes),
        },
        "met": all(r.get("met", True) for r in runs),
    }


# ---- 3. outbox drain --------------------------------------------------------------------------


def event_payload(node: str, i: int) -> dict[str, Any]:
    return {
        "object": {"kind": "Node", "namespace": "", "name": node},
        "type": "Normal",
        "reason": "BenchTick",
        "message": f"tick {i}",
        "time": 1_700_000_000.0 + i,
    }


async def fill_outbox(path: Path, node: str, m: int) -> float:
    """Append ``m`` events and wait until durable; appends/s."""
    box = await open_outbox(path)
    try:
        start = time.perf_counter()
        for i in range(m):
            await box.append("event", event_payload(node, i))
        await box.flush()
        elapsed = time.perf_counter() - start
    finally:
        await box.aclose()
    return m / elapsed


async def local_drain(path: Path, link: LinkSettings) -> tuple[int, float]:
    """``peek`` + ``ack`` until empty with the link's batch limits; (entries, entries/s)."""
    box: Outbox = await open_outbox(path)
    try:
        start = time.perf_counter()
        after, drained = 0, 0
        while entries := await box.peek(
            after, max_entries=link.upstream_batch_entries, max_bytes=link.upstream_batch_bytes
        ):
            after = entries[-1].seq
            drained += len(entries)
            await box.ack(after)
        elapsed = time.perf_counter() - start
    finally:
        await box.aclose()
    return drained, drained / elapsed


def copy_db(src: Path, dest: Path) -> None:
    for path in src.parent.glob(src.name + "*"):
        shutil.copy2(path, dest.parent / (dest.name + path.name[len(src.name) :]))


async def bench_drain(bench: Bench, m: int) -> dict[str, Any]:
    node = "bench-drain"
    await bench.join(node)
    assert bench.observer is not None
    outbox_path = bench.fleet.agent_dir(node) / "outbox.db"
    log(f"drain: appending {m} event entries to {node}'s outbox (agent stopped)")
    appends_per_s = await fill_outbox(outbox_path, node, m)
    baseline_path = bench.root / "drain-baseline" / "outbox.db"
    baseline_path.parent.mkdir()
    copy_db(outbox_path, baseline_path)
    log("drain baseline: peek + ack of a copy, no network")
    drained, local_per_s = await local_drain(baseline_path, LinkSettings())
    assert drained == m, (drained, m)

    log(f"drain: starting {node}; waiting for the cloud to commit seq {m}")
    bench.proxy.mark()
    agent_started = await bench.start_agent(node)
    await bench.wait_connection()
    cpu_before = bench.cpu(node)
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while await bench.observer.upstream_committed_seq(node) < m:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{node}: the cloud never committed seq {m}")
        await asyncio.sleep(POLL_S)
    done = time.perf_counter()
    cpu_after = bench.cpu(node)
    wire = bench.proxy.totals()
    assert wire.first_accepted_at is not None
    await asyncio.to_thread(
        wait_until,
        lambda: (bench.fleet.agent_status(node).get("outbox") or {}).get("entries") == 0,
        CONNECT_TIMEOUT_S,
        f"{node}'s outbox empty",
    )
    await bench.stop_agent(node)
    drain_s = done - wire.first_accepted_at
    per_s = m / drain_s
    return {
        "entries": m,
        "topic": "event",
        "payload_bytes": len(json.dumps(event_payload(node, m), separators=(",", ":"))),
        "append": {"appends_per_s": round(appends_per_s)},
        "end_to_end": {
            "what": "agent's connection accepted to upstream_committed_seq == M in the cloud",
            "entries_per_s": round(per_s),
            "seconds": round(drain_s, 3),
            "agent_process_start_to_done_s": round(done - agent_started, 3),
            "wire_up_bytes": wire.up_bytes,
            "wire_up_bytes_per_entry": round(wire.up_bytes / m, 1),
            "outbox_empty_after": True,
            **cpu_report(cpu_before, cpu_after, m, drain_s, "entry"),
        },
        "baseline_local_peek_ack": {"entries_per_s": round(local_per_s)},
        "ratio_end_to_end_to_local": ratio(per_s, local_per_s),
        "target_entries_per_s": TARGET_DRAIN_PER_S,
        "met": per_s >= TARGET_DRAIN_PER_S,
    }


# ---- main -------------------------------------------------------------------------------------


def parse_changes(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or values[0] != 0:
        values = [0, *values]  # k = 0 measures the constant the target is relative to
    return values


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="a small run (about a minute)")
    parser.add_argument("--objects", type=int, default=None, help="downstream objects")
    parser.add_argument("--resync-objects", type=int, default=None, help="objects held")
    parser.add_argument("--changes", default=None, help="changed objects per run, e.g. 0,10,100")
    parser.add_argument("--entries", type=int, default=None, help="outbox entries drained")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(list(argv) if argv is not None else None)
    sizes = QUICK if args.quick else FULL
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    changes = parse_changes(args.changes)
    tmp = Path(tempfile.mkdtemp(prefix="edgeweave-bench-sync-"))
    bench = Bench(tmp)
    try:
        await bench.start()
        report: dict[str, Any] = {
            "benchmark": "sync",
            "command": " ".join(["bench/sync.py", *sys.argv[1:]]),
            "machine": machine_info(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "source": source_info(),
            "setup": "cloud and agent as real processes (edgeweave.cli.fleet.Fleet), TLS "
            "WebSocket link through a byte-counting TCP relay in the benchmark process; "
            "cloud observed through a second connection to its SQLite file",
            "downstream": await bench_downstream(bench, args.objects),
            "resync": await bench_resync(bench, args.resync_objects, changes),
            "drain": await bench_drain(bench, args.entries),
        }
    finally:
        await bench.aclose()
        shutil.rmtree(tmp, ignore_errors=True)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets_met"] = {
        "resync_bytes": report["resync"]["met"],
        "drain_entries_per_s": report["drain"]["met"],
    }
    return report


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
