"""Benchmark of hub density: how many TLS edge links one cloud process holds, at what cost.

Run ``.venv/bin/python bench/hub_density.py [--nodes 1000,5000,10000] [--quick]
[--window-s 60] [--client-procs 1] [--out FILE]``. Prints ONE JSON document on stdout
(progress on stderr); everything happens in a temporary directory removed at the end, and
every process it starts is stopped (process groups, SIGTERM then SIGKILL) whatever happens.

For each node count n, twice — the floor first, then the hub:

- **hub**: a real ``edgeweave cloud serve --port 0 --hub-port P --data TMP --no-user-config``
  with n ``Node`` objects created through the API (concurrent POSTs with the admin token);
- **floor**: a bare ``websockets`` echo server in its own process (this file with
  ``--echo-server``): the same TLS setup as the hub (server certificate from the same CA,
  client certificate required, TLS 1.2+), the same ``serve`` options (``compression=None``,
  ``max_size``, ping interval/timeout, backlog) and no application work at all.

Against either server, ``bench/_density_client.py`` (a separate process, ``--client-procs`` of
them, each taking a slice of the nodes) opens n links with n real client certificates (one per
node, CN = node name, signed by the cloud CA with ``CertificateAuthority.sign_csr``; all n
certificates share ONE ECDSA P-256 key pair, because generating 10,000 keys would take minutes
and the server cannot tell), speaks the real protocol (``hello`` with an empty held set, acks
for the upserts of its own ``Node``, ``sync_done``), then sends a heartbeat every 15 s from a
uniformly random offset. Once every link is up and ``--settle-s`` has passed, a window of
``--window-s`` measures the server process's CPU (``/proc/PID/stat`` utime+stime, % of one core,
plus the busiest 5 s slice), its RSS (``/proc/PID/status`` VmRSS, before the links and with
them, per link), heartbeat → ack latency from the clients, and each client's own CPU and event
loop lag: a client near a full core measures itself, not the server, and is flagged.

Targets: 10,000 TLS nodes on one cloud process at ≤ 50 % of a core, heartbeat p99 ≤ 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import (
    latency_summary_ms,
    log,
    machine_info,
    percentile,
    ratio,
    running_cloud,
    source_info,
    target,
)
from edgeweave.cloud.pki import CertificateAuthority
from edgeweave.config.settings import HubSettings
from edgeweave.errors import AlreadyExists, APIError

DEFAULT_NODES = (1_000, 5_000, 10_000)
QUICK_NODES = (200, 1_000)
HEARTBEAT_INTERVAL_S = 15.0
CLIENT_SCRIPT = Path(__file__).resolve().parent / "_density_client.py"
NODE_PREFIX = "bench-node-"
CREATE_CONCURRENCY = 32
CREATE_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 900.0
CLIENT_QUIT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
CPU_SLICE_S = 5.0
CLIENT_SATURATED_PCT = 85.0
MACHINE_SATURATED_FRACTION = 0.9
NOISY_OTHER_PCT = 20.0
LISTEN_BACKLOG = 4096  # as the hub
OUTPUT_LIMIT_BYTES = 64 << 20

TARGET_NODES = 10_000
TARGET_CPU_PCT = 50.0
TARGET_P99_MS = 250.0


# ---------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def machine_busy_s() -> float:
    """CPU seconds spent busy by every process on the machine (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit(needed: int) -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; children (servers, clients) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- certificates


def node_name(i: int) -> str:
    return f"{NODE_PREFIX}{i:05d}"


def issue_node_certs(
    ca: CertificateAuthority, count: int, out: Path, key_path: Path | None = None
) -> tuple[Path, float]:
    """One shared key (made, or read from ``key_path``), ``count`` certificates
    ``out/<name>.crt``; (key path, seconds)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if key_path is not None:
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        key = loaded
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        key_path = out / "shared-node.key"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
    for i in range(count):
        name = node_name(i)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .sign(key, hashes.SHA256())
        )
        pem = ca.sign_csr(csr.public_bytes(serialization.Encoding.PEM), node_name=name)
        (out / f"{name}.crt").write_bytes(pem)
    return key_path, time.perf_counter() - start


# ---------------------------------------------------------------- processes


async def stop_group(proc: asyncio.subprocess.Process, what: str) -> None:
    """SIGTERM the process group, SIGKILL it after a timeout."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log(f"{what} (pid {proc.pid}) ignored SIGTERM; killing its group")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


@dataclass(frozen=True)
class Server:
    pid: int
    url: str
    data_dir: Path | None = None  # the cloud's; None for the floor
    admin_config: Path | None = None


@contextlib.asynccontextmanager
async def running_floor(pki: Path, work: Path) -> AsyncIterator[Server]:
    """The bare websockets echo server, in its own process group."""
    with (work / "floor.log").open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).resolve()),
            "--echo-server",
            str(pki),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30.0)
        if not line.startswith(b"listening "):
            raise RuntimeError(f"the echo server did not start: {line!r}")
        port = int(line.split()[1])
        yield Server(proc.pid, f"wss://127.0.0.1:{port}/link")
    finally:
        await stop_group(proc, "echo server")


@contextlib.asynccontextmanager
async def running_hub(
    ca_dir: Path, work: Path, n: int, certs: Path, key: Path
) -> AsyncIterator[Server]:
    """``edgeweave cloud serve`` on a fresh data dir holding our CA, with n Nodes created."""
    data = work / f"cloud-{n}"
    (data / "pki").mkdir(parents=True)
    for name in ("ca.crt", "ca.key"):
        shutil.copy2(ca_dir / name, data / "pki" / name)
    hub_port = free_port()
    async with running_cloud(data, extra_args=("--hub-port", str(hub_port))) as cloud:
        log(f"cloud pid {cloud.pid}; creating {n} Node objects through the API")
        created_s = await create_nodes(cloud.admin_config, n)
        log(f"created {n} Nodes in {created_s:.1f} s")
        # the hub refuses certificates issued before their Node was registered (a re-join
        # locks out the old machine), so the nodes' certificates are issued after creating them
        ca = CertificateAuthority.load_or_create(ca_dir)
        _, issue_s = await asyncio.to_thread(issue_node_certs, ca, n, certs, key)
        log(f"issued {n} node certificates in {issue_s:.1f} s")
        yield Server(cloud.pid, f"wss://127.0.0.1:{hub_port}/link", data, cloud.admin_config)


async def create_nodes(admin_config: Path, n: int) -> float:
    from edgeweave.client import AsyncClient, load_config

    names = iter(range(n))
    retries: list[int] = []
    start = time.perf_counter()
    async with AsyncClient(load_config(str(admin_config))) as client:

        async def create(i: int) -> None:
            node = {
                "apiVersion": "edgeweave.io/v1",
                "kind": "Node",
                "metadata": {"name": node_name(i), "labels": {"bench": "density"}},
            }
            for attempt in range(CREATE_ATTEMPTS):
                try:
                    await client.create(node)
                    return
                except AlreadyExists:
                    return  # an earlier attempt got through; its answer was lost
                except APIError:  # e.g. a keep-alive connection the server had just closed
                    if attempt + 1 == CREATE_ATTEMPTS:
                        raise
                    retries.append(i)

        async def worker() -> None:
            for i in names:
                await create(i)

        async with asyncio.TaskGroup() as group:
            for k in range(CREATE_CONCURRENCY):
                group.create_task(worker(), name=f"create-{k}")
    if retries:
        log(f"{len(retries)} Node creates were retried after a connection error")
    return time.perf_counter() - start


async def count_ready(admin_config: Path) -> int:
    from edgeweave.client import AsyncClient, load_config

    async with AsyncClient(load_config(str(admin_config))) as client:
        nodes, _ = await client.list_all("nodes")
    return sum(1 for node in nodes if (node.get("status") or {}).get("phase") == "Ready")


class Client:
    """One ``_density_client.py`` process and its JSON-line conversation."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(
        cls, args: argparse.Namespace, certs: Path, key: Path, url: str, mode: str, first: int,
        count: int, log_path: Path,
    ) -> Client:  # fmt: skip
        argv = [
            sys.executable, str(CLIENT_SCRIPT), "--url", url, "--ca", str(certs / "ca.crt"),
            "--key", str(key), "--certs", str(certs), "--prefix", NODE_PREFIX,
            "--first", str(first), "--count", str(count), "--mode", mode,
            "--interval-s", str(HEARTBEAT_INTERVAL_S),
            "--connect-concurrency", str(args.connect_concurrency), "--seed", str(first + 1),
        ]  # fmt: skip
        with log_path.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                limit=OUTPUT_LIMIT_BYTES,
            )
        return cls(proc)

    async def event(self, name: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"client pid {self.proc.pid} exited before {name!r}")
            doc: dict[str, Any] = json.loads(line)
            if doc.get("event") == name:
                return doc

    async def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def quit(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.command("quit")
                await asyncio.wait_for(self.event("bye"), CLIENT_QUIT_TIMEOUT_S)
        await stop_group(self.proc, "client")


# ---------------------------------------------------------------- one measurement


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """(first, count) slices of range(n)."""
    base, extra = divmod(n, parts)
    slices, first = [], 0
    for k in range(parts):
        count = base + (1 if k < extra else 0)
        slices.append((first, count))
        first += count
    return [s for s in slices if s[1] > 0]


async def measure(
    args: argparse.Namespace, server: Server, mode: str, n: int, certs: Path, key: Path,
    work: Path,
) -> dict[str, Any]:  # fmt: skip
    """Connect n links to ``server``, settle, measure one window."""
    rss_before = rss_kib(server.pid)
    cpu_before_connect = cpu_seconds(server.pid)
    clients: list[Client] = []
    try:
        started = time.monotonic()
        for first, count in split(n, args.client_procs):
            clients.append(
                await Client.start(
                    args, certs, key, server.url, mode, first, count, work / f"client-{mode}.log"
                )
            )
        connected = await asyncio.wait_for(
            asyncio.gather(*(c.event("connected") for c in clients)), CONNECT_TIMEOUT_S
        )
        connect_wall_s = time.monotonic() - started
        connect_cpu_s = cpu_seconds(server.pid) - cpu_before_connect
        up = sum(c["connected"] for c in connected)
        log(f"{mode}: {up}/{n} links up in {connect_wall_s:.1f} s; settling {args.settle_s:g} s")
        await asyncio.sleep(args.settle_s)

        pids = [c.proc.pid for c in clients]
        server_cpu0 = cpu_seconds(server.pid)
        client_cpu0 = [cpu_seconds(p) for p in pids]
        machine0 = machine_busy_s()
        t0 = time.monotonic()
        for c in clients:
            await c.command("start")
        log(f"{mode}: measuring for {args.window_s:g} s")
        slices: list[float] = []
        last_cpu, last_t = server_cpu0, t0
        while (left := t0 + args.window_s - time.monotonic()) > 0:
            await asyncio.sleep(min(CPU_SLICE_S, left))
            now_cpu, now_t = cpu_seconds(server.pid), time.monotonic()
            slices.append(100.0 * (now_cpu - last_cpu) / (now_t - last_t))
            last_cpu, last_t = now_cpu, now_t
        wall = time.monotonic() - t0
        machine_pct = 100.0 * (machine_busy_s() - machine0) / wall
        server_cpu = cpu_seconds(server.pid) - server_cpu0
        client_cpu = [cpu_seconds(p) - c0 for p, c0 in zip(pids, client_cpu0, strict=True)]
        rss_links = rss_kib(server.pid)
        for c in clients:
            await c.command("stop")
        windows = [await c.event("window") for c in clients]
    finally:
        for c in clients:
            await c.quit()

    latencies_s = [ms / 1000.0 for w in windows for ms in w["latencies_ms"]]
    lag_ms = [ms for w in windows for ms in w["loop_lag_ms"]]
    client_pct = [100.0 * s / wall for s in client_cpu]
    server_pct = 100.0 * server_cpu / wall
    cpus = os.cpu_count() or 1
    per_link_kib = (rss_links - rss_before) / max(up, 1)
    return {
        "links": n,
        "connect": {
            "connected": up,
            "failed": sum(c["failed"] for c in connected),
            "retries": sum(c["retries"] for c in connected),
            "errors": [c["errors"] for c in connected],
            "all_connected_s": round(max(c["connect_wall_s"] for c in connected), 2),
            "driver_wall_s_incl_client_start": round(connect_wall_s, 2),
            "per_link_p50_s": max(c["per_link_p50_s"] or 0 for c in connected),
            "per_link_max_s": max(c["per_link_max_s"] or 0 for c in connected),
            "links_per_s": round(up / max(c["connect_wall_s"] for c in connected), 1),
            "server_cpu_pct_during_connect": round(100.0 * connect_cpu_s / connect_wall_s, 1),
            "upserts_acked": sum(c["upserts_acked"] for c in connected),
        },
        "server": {
            "pid_cpu_pct_of_one_core": round(server_pct, 1),
            "cpu_pct_busiest_5s": round(max(slices), 1) if slices else None,
            "cpu_pct_5s_slices": [round(s, 1) for s in slices],
            "rss_mib_before_links": round(rss_before / 1024, 1),
            "rss_mib_with_links": round(rss_links / 1024, 1),
            "rss_kib_per_link": round(per_link_kib, 1),
        },
        "heartbeat": {
            "window_s": round(wall, 1),
            "sent": sum(w["heartbeats_sent"] for w in windows),
            "unanswered_after_5s": sum(w["unanswered"] for w in windows),
            "links_open_at_end": sum(w["links_open"] for w in windows),
            "links_dropped": sum(w["dropped"] for w in windows),
            "latency": latency_summary_ms(latencies_s) if latencies_s else None,
        },
        "clients": {
            "processes": len(clients),
            "cpu_pct_of_one_core": [round(p, 1) for p in client_pct],
            "saturated": any(p >= CLIENT_SATURATED_PCT for p in client_pct),
            "loop_lag_p50_ms": round(percentile(lag_ms, 50), 2) if lag_ms else None,
            "loop_lag_p99_ms": round(percentile(lag_ms, 99), 2) if lag_ms else None,
            "loop_lag_max_ms": round(max(lag_ms), 2) if lag_ms else None,
            "gc_collections": sum(w["gc_collections"] for w in windows),
            "gc_max_pause_ms": max(w["gc_max_ms"] for w in windows),
        },
        "bench_cpu_pct_of_all_cores": round((server_pct + sum(client_pct)) / cpus, 1),
        "machine_cpu_pct_of_all_cores": round(machine_pct / cpus, 1),
        "other_processes_cpu_pct_of_one_core": round(
            max(0.0, machine_pct - server_pct - sum(client_pct)), 1
        ),
        "machine_saturated": machine_pct / (100.0 * cpus) >= MACHINE_SATURATED_FRACTION,
    }


def compare(hub: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    def lat(side: dict[str, Any], key: str) -> float:
        summary = side["heartbeat"]["latency"]
        return float(summary[key]) if summary else 0.0

    return {
        "cpu": ratio(
            hub["server"]["pid_cpu_pct_of_one_core"], floor["server"]["pid_cpu_pct_of_one_core"]
        ),
        "rss_with_links": ratio(
            hub["server"]["rss_mib_with_links"], floor["server"]["rss_mib_with_links"]
        ),
        "rss_per_link": ratio(
            hub["server"]["rss_kib_per_link"], floor["server"]["rss_kib_per_link"]
        ),
        "heartbeat_p50": ratio(lat(hub, "p50_ms"), lat(floor, "p50_ms")),
        "heartbeat_p99": ratio(lat(hub, "p99_ms"), lat(floor, "p99_ms")),
        "all_connected_s": ratio(
            hub["connect"]["all_connected_s"], floor["connect"]["all_connected_s"]
        ),
    }


def verdict(hub: dict[str, Any]) -> list[str]:
    notes = []
    if hub["clients"]["saturated"]:
        notes.append(
            "a client process used >= 85 % of a core: latencies include the client's own queueing"
        )
    if hub["machine_saturated"]:
        notes.append("the machine was >= 90 % busy: the machine, not the hub, limits")
    if hub["other_processes_cpu_pct_of_one_core"] >= NOISY_OTHER_PCT:
        notes.append(
            f"other processes used {hub['other_processes_cpu_pct_of_one_core']} % of a core "
            "during the window: tail latencies are noisy"
        )
    if hub["connect"]["failed"]:
        notes.append(f"{hub['connect']['failed']} links never connected")
    if hub["heartbeat"]["unanswered_after_5s"]:
        notes.append(f"{hub['heartbeat']['unanswered_after_5s']} heartbeats unanswered")
    return notes


async def bench_count(
    args: argparse.Namespace, n: int, ca_dir: Path, certs: Path, key: Path, work: Path
) -> dict[str, Any]:
    floor: dict[str, Any] | None = None
    if not args.no_floor:
        log(f"=== {n} nodes: floor (bare websockets echo server)")
        async with running_floor(certs / "floor", work) as floor_server:
            floor = await measure(args, floor_server, "echo", n, certs, key, work)
    log(f"=== {n} nodes: hub (edgeweave cloud serve)")
    async with running_hub(ca_dir, work, n, certs, key) as hub_server:
        hub = await measure(args, hub_server, "hub", n, certs, key, work)
        assert hub_server.admin_config is not None
        hub["nodes_ready_after_window"] = await count_ready(hub_server.admin_config)
    result = {
        "nodes": n,
        "hub": hub,
        "floor": floor,
        "ratio_hub_to_floor": compare(hub, floor) if floor is not None else None,
        "notes": verdict(hub),
    }
    floor_text = (
        f" (floor {floor['server']['pid_cpu_pct_of_one_core']} %, "
        f"p99 {(floor['heartbeat']['latency'] or {}).get('p99_ms')} ms)"
        if floor is not None
        else ""
    )
    log(
        f"{n}: hub cpu {hub['server']['pid_cpu_pct_of_one_core']} %, p99 "
        f"{(hub['heartbeat']['latency'] or {}).get('p99_ms')} ms" + floor_text
    )
    return result


def targets(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    at = [r for r in results if r["nodes"] >= TARGET_NODES]
    if not at:
        why = f"no run with >= {TARGET_NODES} nodes (pass --nodes {TARGET_NODES})"
        return [{"what": f"{TARGET_NODES} TLS nodes", "measured": None, "met": None, "why": why}]
    hub = at[0]["hub"]
    latency = hub["heartbeat"]["latency"] or {}
    cpu = target(
        hub["server"]["pid_cpu_pct_of_one_core"],
        TARGET_CPU_PCT,
        "% of one core",
        f"cloud process CPU with {at[0]['nodes']} TLS nodes heartbeating every 15 s",
    )
    p99 = target(
        latency.get("p99_ms", float("inf")),
        TARGET_P99_MS,
        "ms",
        f"heartbeat -> heartbeat_ack p99 with {at[0]['nodes']} TLS nodes",
    )
    all_up = hub["connect"]["connected"] == at[0]["nodes"]
    for t in (cpu, p99):
        t["met"] = bool(t["met"] and all_up and not hub["heartbeat"]["unanswered_after_5s"])
    p99["client_saturated"] = hub["clients"]["saturated"]
    return [cpu, p99]


# ---------------------------------------------------------------- the floor server


def serve_echo(pki: Path) -> int:
    """The floor: a bare websockets echo server with the hub's TLS and serve options."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    from edgeweave.transport.certs import ssl_server_context

    settings = HubSettings()
    context: ssl.SSLContext = ssl_server_context(
        pki / "server.crt",
        pki / "server.key",
        client_ca_pem=(pki / "ca.crt").read_bytes(),
        require_client_cert=True,
    )

    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                await ws.send(frame)

    async def run() -> None:
        async with serve(
            echo,
            "127.0.0.1",
            0,
            ssl=context,
            compression=None,
            max_size=settings.max_frame_bytes,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_timeout_s,
            open_timeout=settings.open_timeout_s,
            close_timeout=settings.close_timeout_s,
            backlog=LISTEN_BACKLOG,
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            print(f"listening {port}", flush=True)
            await asyncio.Future()

    asyncio.run(run())
    return 0


# ---------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> int:
    counts: list[int] = (
        list(QUICK_NODES) if args.quick and args.nodes is None else
        [int(x) for x in (args.nodes or ",".join(map(str, DEFAULT_NODES))).split(",")]
    )  # fmt: skip
    largest = max(counts)
    fd_limit = raise_fd_limit(largest + 1024)
    per_client = -(-largest // args.client_procs)
    if fd_limit < largest + 256 or fd_limit < per_client + 256:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {fd_limit} is too low for {largest} links")
    work = Path(tempfile.mkdtemp(prefix="edgeweave-bench-density-"))
    try:
        ca_dir = work / "ca"
        ca = CertificateAuthority.load_or_create(ca_dir)
        certs = work / "certs"
        log(f"issuing {largest} node certificates (one shared key)")
        key, issue_s = await asyncio.to_thread(issue_node_certs, ca, largest, certs)
        shutil.copy2(ca_dir / "ca.crt", certs / "ca.crt")
        floor_pki = certs / "floor"
        ca.issue_server_cert(floor_pki, hosts=["127.0.0.1"])
        shutil.copy2(ca_dir / "ca.crt", floor_pki / "ca.crt")
        log(f"issued in {issue_s:.1f} s")
        results = [await bench_count(args, n, ca_dir, certs, key, work) for n in counts]
    finally:
        if args.keep_work:
            log(f"kept {work} (server and client logs)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "benchmark": "hub_density",
        "command": " ".join(["bench/hub_density.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "source": source_info(),
        "setup": {
            "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
            "heartbeat_start": "uniformly random offset in the first interval, then fixed period",
            "window_s": args.window_s,
            "settle_s": args.settle_s,
            "client_processes": args.client_procs,
            "floor_measured": not args.no_floor,
            "connect_concurrency_per_client": args.connect_concurrency,
            "certificates": (
                "one client certificate per node (CN = node name, signed by the cloud CA via "
                "CertificateAuthority.sign_csr); all share ONE ECDSA P-256 key pair"
            ),
            "certificate_issue_s": round(issue_s, 1),
            "rlimit_nofile": fd_limit,
            "floor": (
                "bare websockets echo server in its own process: same CA, server cert, client "
                "cert required, compression off, same max_size/ping/backlog; echo = ack"
            ),
            "hub": "edgeweave cloud serve (sqlite store), n Node objects created via the API",
            "client": (
                "bench/_density_client.py: real codec, hello (empty held set) -> acks upserts "
                "-> sync_done -> heartbeats; one asyncio process per slice of nodes; its heap "
                "is frozen (gc.freeze) once connected and its own GC pauses are reported"
            ),
        },
        "results": results,
        "targets": targets(results),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--nodes", default=None, help="comma-separated node counts")
    parser.add_argument("--quick", action="store_true", help="200,1000 nodes, shorter window")
    parser.add_argument("--window-s", type=float, default=None, help="default 60 (quick: 30)")
    parser.add_argument("--settle-s", type=float, default=20.0)
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the baseline (experiments only: no ratios)"
    )
    parser.add_argument("--keep-work", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--echo-server", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.window_s is None:
        args.window_s = 30.0 if args.quick else 60.0
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.echo_server is not None:
        sys.exit(serve_echo(arguments.echo_server))
    sys.exit(asyncio.run(main(arguments)))
