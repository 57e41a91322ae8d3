"""Device twin latency: cloud `twin set` → mapper → reported in the cloud, and the bus overhead.

Side by side in one run, on loopback:

(a) **set → reported**: a real cloud and agent (:class:`edgeweave.cli.fleet.Fleet`), the
    agent's built-in virtual mapper serving an actuator property. Each round sets a new
    desired value through the API and waits on a Device watch for ``status.twins`` to report
    it: API → hub → agent → bus → mapper → bus → agent → outbox → hub → store → watch.
(b) **broker floor**: a raw two-hop MQTT round trip through the same broker (a client
    publishes, a responder republishes, the client receives) — what (a) cannot beat twice.
(c) **bus overhead**: a device publishing ``twin/update`` and a local subscriber getting the
    agent's ``twin/update/document`` (through the agent's twin host), versus the same publish
    going straight to a subscriber through the broker. Run with mosquitto as the agent's
    external broker (``--mqtt``), and with the embedded broker. The property has KubeEdge's
    default ``reportCycle`` (1 s): the bus path, not the upstream. Also measured, not held to
    the target: a property with a 1 ms ``reportCycle``, every reading of which the agent also
    reports to the cloud, which commits it on the same 2 cores.

During (a) the CPU time each process on its path uses (user + system, from ``/proc``) is
recorded per round: where the round's work goes, which on 2 shared cores bounds the latency.

Targets: (a) p50 ≤ 5 ms, p99 ≤ 20 ms; (c) with mosquitto, the overhead (through the agent
minus direct, p50) ≤ 3x the broker floor (b).
Prints one JSON document on stdout, progress on stderr.

    .venv/bin/python bench/twin.py [--rounds 300] [--mqtt mqtt://127.0.0.1:1883]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _util import latency_summary_ms, log, machine_info, ratio, source_info, target
from edgeweave.cli.fleet import Fleet, free_port, wait_until
from edgeweave.client.async_http import AsyncClient
from edgeweave.client.config import load_config
from edgeweave.transport.mqtt import open_mqtt_client

DEVICE = "bench-dev"
TOPIC = f"$hw/events/device/default/{DEVICE}/twin/update"
MANIFESTS = f"""
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {{name: bench-model, namespace: default}}
spec:
  protocol: virtual
  properties:
    - {{name: level, type: INT, accessMode: ReadWrite, minimum: "0", maximum: "1000000000"}}
    - {{name: reading, type: INT, accessMode: ReadOnly}}
    - {{name: fast-reading, type: INT, accessMode: ReadOnly}}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: {DEVICE}, namespace: default}}
spec:
  deviceModelRef: {{name: bench-model}}
  nodeName: node-a
  protocol: {{protocolName: virtual, configData: {{seed: 1}}}}
  properties:
    - name: level
      desired: {{value: "0"}}
      reportCycle: 1
      collectCycle: 60000
      visitors: {{protocolName: virtual, configData: {{kind: actuator, initial: "0"}}}}
    - name: reading
      reportCycle: 1000
      collectCycle: 60000
      visitors: {{protocolName: virtual, configData: {{kind: actuator, initial: "0"}}}}
    - name: fast-reading
      reportCycle: 1
      collectCycle: 60000
      visitors: {{protocolName: virtual, configData: {{kind: actuator, initial: "0"}}}}
"""


def reported(obj: dict[str, Any], prop: str) -> str | None:
    for twin in (obj.get("status") or {}).get("twins") or []:
        if twin.get("propertyName") == prop:
            return (twin.get("reported") or {}).get("value")
    return None


async def set_to_reported(fleet: Fleet, rounds: int) -> list[float]:
    config = load_config(str(fleet.admin_config))
    client = AsyncClient(config)
    seen: dict[str, float] = {}
    asked: set[str] = set()  # a value reported before this call asked for it is not a sample
    arrived = asyncio.Event()
    try:
        current = await client.get("devices", DEVICE, namespace="default")
        since = current["metadata"]["resourceVersion"]

        async def watch() -> None:
            stream = client.watch("devices", namespace="default", resource_version=since)
            async for event in stream:
                value = reported(event.get("object") or {}, "level")
                if value in asked and value not in seen:
                    seen[value] = time.perf_counter()
                    arrived.set()

        watcher = asyncio.create_task(watch(), name="bench-twin-watch")
        samples: list[float] = []
        try:
            for i in range(1, rounds + 1):
                value = str(i)
                arrived.clear()
                asked.add(value)
                start = time.perf_counter()
                await client.set_twin("default", DEVICE, {"level": value})
                try:
                    async with asyncio.timeout(5):
                        while value not in seen:
                            await arrived.wait()
                            arrived.clear()
                except TimeoutError:
                    raise RuntimeError(f"{value} never reported; seen {sorted(seen)}") from None
                samples.append(seen[value] - start)
                await asyncio.sleep(0.005)  # pacing between rounds, not synchronisation
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        return samples
    finally:
        await client.aclose()


async def _next(it: Any, want: str) -> None:
    while True:
        message = await it.__anext__()
        if message.topic == want:
            return


async def broker_floor(url: str, rounds: int) -> list[float]:
    """(b): client → broker → responder → broker → client."""
    ping, pong = f"bench/{uuid.uuid4().hex}/ping", f"bench/{uuid.uuid4().hex}/pong"
    async with open_mqtt_client(url) as a, open_mqtt_client(url) as b:
        await a.subscribe(pong)
        await b.subscribe(ping)

        async def responder() -> None:
            async for message in b:
                await b.publish(pong, message.payload)

        task = asyncio.create_task(responder(), name="bench-responder")
        it = a.__aiter__()
        samples = []
        try:
            for i in range(rounds + 20):
                start = time.perf_counter()
                await a.publish(ping, str(i).encode())
                await _next(it, pong)
                if i >= 20:
                    samples.append(time.perf_counter() - start)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return samples


async def one_way(url: str, rounds: int, through_agent: bool, prop: str = "reading") -> list[float]:
    """(c): a device's publish to a local subscriber, through the agent's twin host or not."""
    direct = f"bench/{uuid.uuid4().hex}/direct"
    listen = f"{TOPIC}/document" if through_agent else direct
    send = TOPIC if through_agent else direct
    async with open_mqtt_client(url) as device, open_mqtt_client(url) as sub:
        await sub.subscribe(listen)
        it = sub.__aiter__()
        samples = []
        for i in range(rounds + 20):
            twin = {prop: {"actual": {"value": str(i)}, "metadata": {"type": "int"}}}
            payload = json.dumps({"event_id": f"e{i}", "twin": twin}).encode()
            start = time.perf_counter()
            await device.publish(send, payload)
            await _next(it, listen)
            if i >= 20:
                samples.append(time.perf_counter() - start)
        return samples


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes(fleet: Fleet, mqtt: str | None) -> dict[str, int]:
    """The processes on (a)'s path: cloud, agent, mapper, broker (when external), this one."""
    pids = {"cloud": fleet.cloud.pid if fleet.cloud else 0, "agent": fleet.agents["node-a"].pid}
    pids.update({name.rsplit("/", 1)[-1]: pid for name, pid in fleet.app_pids("node-a").items()})
    if mqtt:
        found = subprocess.run(
            ["pgrep", "-x", "mosquitto"], check=False, capture_output=True, text=True
        ).stdout.split()
        if found:  # a local mosquitto, the broker of (a)
            pids["mosquitto"] = int(found[0])
    pids["bench"] = os.getpid()
    return pids


def start_fleet(root: Path, mqtt: str | None) -> tuple[Fleet, str]:
    fleet = Fleet(root)
    try:
        fleet.start_cloud()
        fleet.join("node-a")
        extra = ("--mqtt", mqtt) if mqtt else ("--mqtt-port", str(free_port()))
        fleet.start_agent("node-a", *extra)
        manifests = root / "devices.yaml"
        manifests.write_text(MANIFESTS)
        fleet.cli("apply", "-f", str(manifests))
        wait_until(lambda: "bus" in fleet.agent_status("node-a"), 30, "the agent's bus")
        bus = fleet.agent_status("node-a")["bus"]
        assert isinstance(bus, dict)
    except BaseException:
        fleet.stop()  # nothing left running when the start fails
        raise
    return fleet, str(bus["url"])


async def run_broker(root: Path, mqtt: str | None, rounds: int) -> dict[str, Any]:
    fleet, url = start_fleet(root, mqtt)
    try:
        wait_until(
            lambda: "mapper-virtual" in json.dumps(fleet.agent_status("node-a").get("apps")),
            60,
            "the virtual mapper",
        )
        log(f"{url}: warming up")
        await set_to_reported(fleet, 20)
        log(f"{url}: (a) set -> reported, {rounds} rounds")
        pids = processes(fleet, mqtt)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        a = await set_to_reported(fleet, rounds)
        cpu = {
            name: round((cpu_seconds(pid) - before[name]) * 1000 / rounds, 3)
            for name, pid in pids.items()
        }
        log(f"{url}: (b) broker floor")
        b = await broker_floor(url, rounds)
        log(f"{url}: (c) device -> subscriber, through the agent and direct")
        through = await one_way(url, rounds, through_agent=True)
        direct = await one_way(url, rounds, through_agent=False)
        reported_each = await one_way(url, rounds, through_agent=True, prop="fast-reading")
    finally:
        fleet.stop()
    sa, sb = latency_summary_ms(a), latency_summary_ms(b)
    st, sd = latency_summary_ms(through), latency_summary_ms(direct)
    se = latency_summary_ms(reported_each)
    overhead = round(st["p50_ms"] - sd["p50_ms"], 3)  # what the agent's twin host adds
    return {
        "broker": mqtt or "embedded",
        "a_set_to_reported": sa,
        "a_cpu_ms_per_round": cpu,
        "a_targets": [
            target(sa["p50_ms"], 5.0, "ms", "set -> reported p50"),
            target(sa["p99_ms"], 20.0, "ms", "set -> reported p99"),
        ],
        "b_broker_two_hop_floor": sb,
        "a_over_floor_p50": ratio(sa["p50_ms"], sb["p50_ms"]),
        "c_through_agent": st,
        "c_direct": sd,
        "c_through_over_direct_p50": ratio(st["p50_ms"], sd["p50_ms"]),
        "c_overhead_p50_ms": overhead,
        "c_overhead_over_floor": ratio(overhead, sb["p50_ms"]),
        "c_through_agent_each_reported": se,
        "c_each_reported_overhead_over_floor": ratio(se["p50_ms"] - sd["p50_ms"], sb["p50_ms"]),
        "c_target": target(
            ratio(overhead, sb["p50_ms"]) or 0.0, 3.0, "x floor", "bus overhead vs broker floor"
        ),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="external broker")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="edgeweave-bench-twin-") as tmp:
        for mqtt in (args.mqtt, None):
            results.append(
                await run_broker(Path(tmp) / ((mqtt and "ext") or "emb"), mqtt, args.rounds)
            )
    json.dump(
        {
            "benchmark": "twin",
            "rounds": args.rounds,
            "results": results,
            "machine": machine_info(),
            "source": source_info(),
        },
        sys.stdout,
        indent=2,
    )
    print()


if __name__ == "__main__":
    asyncio.run(main())
