"""The mesh's cost: latency added per request and bulk throughput, through the node's proxy
and through the relay in the cloud, each against a direct loopback connection measured in the
same run (the baseline).

**Proxy**: three processes, as on a node: an echo server (the app), the mesh TCP proxy in front
of it (:func:`edgeweave.mesh.proxy.open_proxy`, round robin, one endpoint; the agent's part),
and this process as the client. Latency: 64-byte request/response round trips on one
connection, direct and through the proxy, interleaved in blocks. Throughput: 256 MiB streamed
through one connection each way, echoed back. Targets (issue 6): p50 added ≤ 0.3 ms,
throughput ≥ 50 % of direct.

**Relay**: a real fleet (cloud and two agents as processes, ``bench/_mesh_relay.py``) where the
consumer node reaches the echo app on the target node only through the cloud's hub. The same
round trips and bulk transfer (``--relay-mib``) through the consumer's proxy, plus the cost of
a new connection (connect and one round trip), which for the relay includes two TLS WebSocket
handshakes and the hub asking the target over its link. No target is set for the relay: it is
the fallback path.

Prints one JSON document on stdout, progress on stderr.

    .venv/bin/python bench/mesh.py [--round-trips 20000] [--bulk-mib 256]
                                   [--relay-round-trips 5000] [--relay-mib 64] [--no-relay]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

CHUNK = 64 * 1024
TARGET_ADDED_P50_MS = 0.3
TARGET_THROUGHPUT_RATIO = 0.5


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def serve_echo() -> None:
    """The app: an echo server; prints its port, runs until stdin closes."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF


async def serve_proxy(echo_port: int) -> None:
    """The agent's part: a mesh proxy to the echo server; prints its port."""
    from edgeweave.mesh.catalog import Catalog, Endpoint, ServicePortRef
    from edgeweave.mesh.proxy import open_proxy
    from edgeweave.models.services import Service

    catalog = Catalog()
    service = Service.model_validate(
        {
            "apiVersion": "edgeweave.io/v1",
            "kind": "Service",
            "metadata": {"name": "echo", "namespace": "default"},
            "spec": {
                "selector": {"app": "echo"},
                "ports": [{"name": "tcp", "port": 80, "targetPort": echo_port}],
            },
        }
    )
    catalog.apply_service(service)
    ref = ServicePortRef("default", "echo", 80)
    catalog.set_endpoints(ref, [Endpoint("local", "127.0.0.1", echo_port)])
    async with open_proxy(catalog, target=ref) as proxy:
        print(json.dumps({"port": proxy.address[1]}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF


Address = tuple[str, int]


async def round_trips(address: Address, n: int) -> list[float]:
    reader, writer = await asyncio.open_connection(*address)
    payload = b"x" * 64
    out: list[float] = []
    try:
        for _ in range(n):
            started = time.perf_counter()
            writer.write(payload)
            await writer.drain()
            await reader.readexactly(len(payload))
            out.append((time.perf_counter() - started) * 1e3)
    finally:
        writer.close()
        await writer.wait_closed()
    return out


async def bulk(address: Address, total: int) -> float:
    """MB/s of ``total`` bytes sent and echoed back through one connection."""
    reader, writer = await asyncio.open_connection(*address)
    chunk = b"y" * CHUNK

    async def send() -> None:
        for _ in range(total // CHUNK):
            writer.write(chunk)
            await writer.drain()

    async def receive() -> None:
        got = 0
        while got < total:
            data = await reader.read(1 << 20)
            if not data:
                raise ConnectionError("the echo ended early")
            got += len(data)

    started = time.perf_counter()
    await asyncio.gather(send(), receive())
    elapsed = time.perf_counter() - started
    writer.close()
    await writer.wait_closed()
    return total / elapsed / 1e6


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def new_connections(address: Address, n: int) -> list[float]:
    """ms for a new connection and one 64-byte round trip on it, ``n`` times."""
    payload = b"z" * 64
    out: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(*address)
        writer.write(payload)
        await writer.drain()
        await reader.readexactly(len(payload))
        out.append((time.perf_counter() - started) * 1e3)
        writer.close()
        await writer.wait_closed()
    return out


def latency(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(values, 0.5), 4),
        "p99_ms": round(pct(values, 0.99), 4),
        "mean_ms": round(statistics.fmean(values), 4),
    }


async def relay_client(
    relay: Address, direct: Address, n: int, bulk_bytes: int, connections: int
) -> dict[str, Any]:
    paths = {"direct": direct, "relay": relay}
    lat: dict[str, list[float]] = {"direct": [], "relay": []}
    conn: dict[str, list[float]] = {"direct": [], "relay": []}
    blocks = 5
    for _ in range(blocks):  # interleaved, as for the proxy
        for path, address in paths.items():
            lat[path] += await round_trips(address, n // blocks)
            conn[path] += await new_connections(address, connections // blocks)
    tput: dict[str, list[float]] = {"direct": [], "relay": []}
    for _ in range(3):
        for path, address in paths.items():
            tput[path].append(await bulk(address, bulk_bytes))
    direct_mbs = statistics.median(tput["direct"])
    relay_mbs = statistics.median(tput["relay"])
    summary = {path: latency(v) for path, v in lat.items()}
    return {
        "latency_64b_round_trip": summary,
        "added_p50_ms": round(summary["relay"]["p50_ms"] - summary["direct"]["p50_ms"], 4),
        "added_p99_ms": round(summary["relay"]["p99_ms"] - summary["direct"]["p99_ms"], 4),
        "new_connection_and_round_trip": {path: latency(v) for path, v in conn.items()},
        "throughput_mb_s": {"direct": round(direct_mbs), "relay": round(relay_mbs)},
        "throughput_ratio_relay_to_direct": round(relay_mbs / direct_mbs, 3),
    }


async def client(ports: dict[str, int], n: int, bulk_bytes: int) -> dict[str, Any]:
    addresses = {path: ("127.0.0.1", port) for path, port in ports.items()}
    lat: dict[str, list[float]] = {"direct": [], "proxy": []}
    blocks = 10
    for _ in range(blocks):  # interleaved, so drift in machine load hits both alike
        for path in ("direct", "proxy"):
            lat[path] += await round_trips(addresses[path], n // blocks)
    tput = {path: [] for path in ("direct", "proxy")}  # type: dict[str, list[float]]
    for _ in range(3):
        for path in ("direct", "proxy"):
            tput[path].append(await bulk(addresses[path], bulk_bytes))
    summary = {path: latency(v) for path, v in lat.items()}
    added = round(summary["proxy"]["p50_ms"] - summary["direct"]["p50_ms"], 4)
    direct_mbs = statistics.median(tput["direct"])
    proxy_mbs = statistics.median(tput["proxy"])
    ratio = round(proxy_mbs / direct_mbs, 3)
    return {
        "latency_64b_round_trip": summary,
        "added_p50_ms": added,
        "added_p99_ms": round(summary["proxy"]["p99_ms"] - summary["direct"]["p99_ms"], 4),
        "throughput_mb_s": {"direct": round(direct_mbs), "proxy": round(proxy_mbs)},
        "throughput_ratio_proxy_to_direct": ratio,
        "targets": {
            "added_p50_ms": {"target": TARGET_ADDED_P50_MS, "met": added <= TARGET_ADDED_P50_MS},
            "throughput_ratio": {
                "target": TARGET_THROUGHPUT_RATIO,
                "met": ratio >= TARGET_THROUGHPUT_RATIO,
            },
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--round-trips", type=int, default=20_000)
    parser.add_argument("--bulk-mib", type=int, default=256)
    parser.add_argument("--relay-round-trips", type=int, default=5_000)
    parser.add_argument("--relay-connections", type=int, default=200)
    parser.add_argument("--relay-mib", type=int, default=64)
    parser.add_argument("--no-relay", action="store_true", help="measure the proxy only")
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        role = args.serve[0]
        asyncio.run(serve_echo() if role == "echo" else serve_proxy(int(args.serve[1])))
        return 0
    children: list[subprocess.Popen[str]] = []

    def start(*role: str) -> int:
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", *role],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        return int(json.loads(child.stdout.readline())["port"])

    try:
        echo_port = start("echo")
        proxy_port = start("proxy", str(echo_port))
        log(f"echo on {echo_port}, proxy on {proxy_port} (each its own process)")
        ports = {"direct": echo_port, "proxy": proxy_port}
        result = asyncio.run(client(ports, args.round_trips, args.bulk_mib << 20))
    finally:
        for child in children:
            if child.stdin is not None:
                child.stdin.close()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    report: dict[str, Any] = {
        "benchmark": "mesh",
        "command": " ".join(["bench/mesh.py", *sys.argv[1:]]),
        "setup": "client, mesh proxy and echo server each in its own process; loopback",
        "round_trips": args.round_trips,
        "bulk_mib": args.bulk_mib,
        **result,
    }
    if not args.no_relay:
        report["relay"] = measure_relay(args)
    print(json.dumps(report, indent=2))
    return 0


def measure_relay(args: argparse.Namespace) -> dict[str, Any]:
    from _mesh_relay import relay_fleet

    log("starting a cloud and two agents for the relay (consumer → cloud → target)")
    with relay_fleet() as paths:
        log(f"relay through {paths.relay}, direct to {paths.direct}")
        result = asyncio.run(
            relay_client(
                paths.relay,
                paths.direct,
                args.relay_round_trips,
                args.relay_mib << 20,
                args.relay_connections,
            )
        )
    return {
        "setup": "cloud and two agents as processes; client → consumer's proxy → hub → "
        "target's agent → echo app, TLS WebSockets on both hops; loopback",
        "round_trips": args.relay_round_trips,
        "new_connections": args.relay_connections,
        "bulk_mib": args.relay_mib,
        **result,
    }


if __name__ == "__main__":
    sys.exit(main())
