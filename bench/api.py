"""Benchmark of the HTTP API and the state stores: create, get, watch latency, CLI start-up.

Run ``.venv/bin/python bench/api.py [--objects N] [--stores sqlite,postgresql] [--out FILE]``.
For each store backend it starts ``edgeweave cloud serve`` as a subprocess on a fresh data dir
(PostgreSQL: a fresh schema, dropped at the end), drives it from this one asyncio process with
``edgeweave.client.AsyncClient`` over HTTPS with keep-alive, and prints ONE JSON document on
stdout (progress goes to stderr). Every figure sits beside a baseline measured in the same
run (``GET /healthz`` on the same TLS connections; ``python -c pass`` for the CLI), as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import (
    latency_summary_ms,
    log,
    machine_info,
    ratio,
    running_cloud,
    source_info,
    target,
    time_process_ms,
)
from edgeweave.client import AsyncClient, load_config
from edgeweave.client._httpx import httpx
from edgeweave.client.h11pool import AsyncH11Transport

DEFAULT_OBJECTS = 10_000
DEFAULT_GETS = 10_000
DEFAULT_WATCH_WRITES = 1_000
DEFAULT_CONCURRENCY = 16
DEFAULT_CLI_RUNS = 20
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
NAMESPACE = "default"
WATCH_WARMUP_WRITES = 20
EVENT_TIMEOUT_S = 10.0
HEALTHZ_SAMPLES = 3_000
RAW_GET_SAMPLES = 3_000

TARGET_GET_P99_MS = 5.0
TARGET_WATCH_P99_MS = 20.0
TARGET_CLI_MS = 300.0


def app_manifest(name: str, generation: int = 0) -> dict[str, Any]:
    """A small but realistic App (about the size of examples/app-occupancy.yaml)."""
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "api"}},
        "spec": {
            "nodeSelector": {"role": "camera"},
            "lifecycle": {"run": ["python3", "counter.py", "--interval", "5"]},
            "env": {"LOG_LEVEL": "info", "GENERATION": str(generation)},
            "restartPolicy": "Always",
            "ports": [{"name": "http", "port": 8080}],
            "resources": {"limits": {"memory": "128Mi", "cpu": "500m"}},
        },
    }


def rv_of(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["resourceVersion"])


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


async def sequential(calls: Iterator[Callable[[], Awaitable[Any]]]) -> tuple[list[float], float]:
    """Run the calls one after another; (latencies s, wall s)."""
    latencies: list[float] = []
    start = time.perf_counter()
    for call in calls:
        latencies.append(await timed(call))
    return latencies, time.perf_counter() - start


async def concurrent(
    calls: list[Callable[[], Awaitable[Any]]], in_flight: int
) -> tuple[list[float], float]:
    """Run the calls with ``in_flight`` workers pulling from one list; (latencies s, wall s)."""
    latencies: list[float] = []
    pending = iter(calls)

    async def worker() -> None:
        for call in pending:  # one shared iterator: each call taken exactly once
            latencies.append(await timed(call))

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for i in range(in_flight):
            group.create_task(worker(), name=f"bench-worker-{i}")
    return latencies, time.perf_counter() - start


def throughput(count: int, wall_s: float) -> float:
    return round(count / wall_s, 1) if wall_s > 0 else 0.0


def phase(latencies: list[float], wall_s: float, **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "latency": latency_summary_ms(latencies),
        "wall_s": round(wall_s, 3),
        "throughput_per_s": throughput(len(latencies), wall_s),
    }


class EventLog:
    """Arrival times of watch events keyed by (name, resourceVersion), with waiters."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str], float] = {}
        self._waiters: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.bookmarks = 0

    def record(self, event: dict[str, Any], at: float) -> None:
        if event["type"] == "BOOKMARK":
            self.bookmarks += 1
            return
        key = (str(event["object"]["metadata"]["name"]), rv_of(event["object"]))
        self.arrived[key] = at
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(at)

    async def wait_for(self, key: tuple[str, str], timeout_s: float) -> float:
        if key in self.arrived:
            return self.arrived[key]
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        finally:
            self._waiters.pop(key, None)


async def consume_watch(client: AsyncClient, since: str, events: EventLog) -> None:
    async for event in client.watch("apps", namespace=NAMESPACE, resource_version=since):
        events.record(event, time.perf_counter())


async def bench_watch(
    client: AsyncClient, existing: list[str], writes: int, rng: random.Random
) -> dict[str, Any]:
    """Write one object at a time (alternating create and merge-patch); latency from just
    before the write is sent to the matching event being decoded from the watch stream."""
    current = await client.list("apps", namespace=NAMESPACE, limit=1)
    since = str(current["metadata"]["resourceVersion"])
    events = EventLog()
    watcher = asyncio.create_task(consume_watch(client, since, events), name="bench-watch")
    try:
        samples: dict[str, list[float]] = {"ADDED": [], "MODIFIED": []}
        ack: list[float] = []
        for i in range(WATCH_WARMUP_WRITES + writes):
            if watcher.done():
                watcher.result()  # raises what ended the stream
                raise RuntimeError("the watch stream ended early")
            creating = i % 2 == 0
            name = f"watch-{i:06d}" if creating else rng.choice(existing)
            start = time.perf_counter()
            if creating:
                obj = await client.create(app_manifest(name))
            else:
                patch = {"spec": {"env": {"GENERATION": str(i)}}}
                obj = await client.patch("apps", name, NAMESPACE, patch)
            acked = time.perf_counter()
            seen = await events.wait_for((name, rv_of(obj)), EVENT_TIMEOUT_S)
            if i >= WATCH_WARMUP_WRITES:  # the first writes also prove the stream is open
                samples["ADDED" if creating else "MODIFIED"].append(seen - start)
                ack.append(acked - start)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    every = samples["ADDED"] + samples["MODIFIED"]
    return {
        "writes": len(every),
        "warmup_writes": WATCH_WARMUP_WRITES,
        "writes_are": "alternating POST create and PATCH (merge patch) of a random existing App",
        "event_latency": latency_summary_ms(every),
        "event_latency_added": latency_summary_ms(samples["ADDED"]),
        "event_latency_modified": latency_summary_ms(samples["MODIFIED"]),
        "write_ack_latency": latency_summary_ms(ack),
        "bookmarks_seen": events.bookmarks,
    }


@contextlib.asynccontextmanager
async def clients(admin_config: Path) -> AsyncIterator[tuple[AsyncClient, httpx.AsyncClient]]:
    """The edgeweave client and a bare httpx client sharing ONE connection pool (the client's
    own transport), so the /healthz baseline runs over the very TLS connections the API calls
    use."""
    config = load_config(str(admin_config))
    transport = AsyncH11Transport(config.ssl_context(), max_connections=64, max_idle=64)
    client = AsyncClient(config, transport=transport)
    raw = httpx.AsyncClient(
        base_url=config.server,
        transport=transport,
        headers={"Authorization": f"Bearer {config.token}"},
        timeout=10.0,
    )
    try:
        yield client, raw
    finally:
        await client.aclose()  # closes the shared transport too


async def bench_backend(
    store: str, store_url: str, work_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(42)
    n = args.objects
    load_before = os.getloadavg()
    data_dir = work_dir / store
    async with running_cloud(data_dir, store_url) as cloud:
        log(f"{store}: cloud pid {cloud.pid} listening")
        async with clients(cloud.admin_config) as (client, raw):
            await client.discover()

            async def healthz() -> None:
                answer = await raw.get("/healthz")
                answer.raise_for_status()

            # warm-up: open the connections, fill caches; not measured
            await concurrent([healthz] * 200, args.concurrency)

            log(f"{store}: sequential create of {n} Apps")
            seq_names = [f"seq-{i:06d}" for i in range(n)]
            seq_lat, seq_wall = await sequential(
                partial(client.create, app_manifest(name)) for name in seq_names
            )
            log(f"{store}: concurrent create of {n} Apps ({args.concurrency} in flight)")
            con_names = [f"con-{i:06d}" for i in range(n)]
            con_lat, con_wall = await concurrent(
                [partial(client.create, app_manifest(name)) for name in con_names],
                args.concurrency,
            )
            names = seq_names + con_names

            log(f"{store}: healthz baseline ({HEALTHZ_SAMPLES} sequential)")
            hz_lat, hz_wall = await sequential(iter([healthz] * HEALTHZ_SAMPLES))

            log(f"{store}: {args.gets} sequential gets")
            picks = [rng.choice(names) for _ in range(args.gets)]
            get_lat, get_wall = await sequential(
                partial(client.get, "apps", name, NAMESPACE) for name in picks
            )

            async def raw_get(name: str) -> None:
                answer = await raw.get(f"/apis/edgeweave.io/v1/namespaces/{NAMESPACE}/apps/{name}")
                answer.raise_for_status()
                answer.json()

            raw_picks = [rng.choice(names) for _ in range(RAW_GET_SAMPLES)]
            raw_lat, raw_wall = await sequential(partial(raw_get, name) for name in raw_picks)
            log(f"{store}: {args.gets} concurrent gets ({args.concurrency} in flight)")
            picks = [rng.choice(names) for _ in range(args.gets)]
            cget_lat, cget_wall = await concurrent(
                [partial(client.get, "apps", name, NAMESPACE) for name in picks],
                args.concurrency,
            )

            log(f"{store}: watch latency over {args.watch_writes} writes")
            watch = await bench_watch(client, names, args.watch_writes, rng)

            log(f"{store}: healthz baseline again, after the load")
            hz2_lat, hz2_wall = await sequential(iter([healthz] * HEALTHZ_SAMPLES))

        log(f"{store}: CLI wall time ({args.cli_runs} runs each)")
        edgeweave_exe = str(Path(sys.executable).parent / "edgeweave")
        cli_argv = [edgeweave_exe, "--config", str(cloud.admin_config), "get", "nodes"]
        cli = await asyncio.to_thread(time_process_ms, cli_argv, args.cli_runs)
        python_pass = await asyncio.to_thread(
            time_process_ms, [sys.executable, "-c", "pass"], args.cli_runs
        )
        import_only = await asyncio.to_thread(
            time_process_ms,
            [sys.executable, "-c", "import edgeweave.cli.main as m; m.build_parser()"],
            args.cli_runs,
        )

    healthz_all = hz_lat + hz2_lat
    hz_summary = latency_summary_ms(healthz_all)
    get_summary = latency_summary_ms(get_lat)
    watch_p99 = float(watch["event_latency"]["p99_ms"])
    return {
        "store": store,
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "create": {
            "sequential": phase(seq_lat, seq_wall, objects=n, in_flight=1),
            "concurrent": phase(con_lat, con_wall, objects=n, in_flight=args.concurrency),
        },
        "get": {
            "sequential": phase(get_lat, get_wall, in_flight=1),
            "concurrent": phase(cget_lat, cget_wall, in_flight=args.concurrency),
            "raw_httpx_sequential": phase(
                raw_lat,
                raw_wall,
                note="the same GET through the bare httpx client on the same connections: "
                "the difference to `sequential` is edgeweave.client's own per-call cost",
            ),
            "objects_in_store": len(names),
        },
        "watch": watch,
        "baseline": {
            "healthz": {
                **hz_summary,
                "note": "GET /healthz, sequential, same TLS connections; measured before "
                "the gets and again after the watch, both runs pooled",
                "before_throughput_per_s": throughput(len(hz_lat), hz_wall),
                "after_throughput_per_s": throughput(len(hz2_lat), hz2_wall),
            },
            "ratio_get_p99_to_healthz_p99": ratio(
                float(get_summary["p99_ms"]), float(hz_summary["p99_ms"])
            ),
            "ratio_get_p50_to_healthz_p50": ratio(
                float(get_summary["p50_ms"]), float(hz_summary["p50_ms"])
            ),
        },
        "cli": {
            "command": "edgeweave --config DATA/admin.yaml get nodes",
            "edgeweave_get_nodes": cli,
            "baseline_python_c_pass": python_pass,
            "import_cli_and_build_parser": import_only,
            "ratio_p50_to_python_p50": ratio(cli["p50_ms"], python_pass["p50_ms"]),
        },
        "targets": {
            "get_p99": target(float(get_summary["p99_ms"]), TARGET_GET_P99_MS, "ms", "get p99"),
            "watch_p99": target(watch_p99, TARGET_WATCH_P99_MS, "ms", "watch event p99"),
            "cli_get": target(
                float(cli["p50_ms"]), TARGET_CLI_MS, "ms", "`edgeweave get nodes` wall p50"
            ),
        },
    }


@contextlib.contextmanager
def pg_schema(base_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one run, dropped afterwards; yields the store URL."""
    import psycopg
    from psycopg import sql

    schema = f"bench_api_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        sep = "&" if "?" in base_url else "?"
        yield f"{base_url}{sep}schema={schema}"
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgeweave-bench-api-") as tmp:
        for store in args.stores:
            log(f"=== {store} ===")
            if store == "sqlite":
                results[store] = await bench_backend(store, "", Path(tmp), args)
            else:
                with pg_schema(args.pg_url) as url:
                    results[store] = await bench_backend(store, url, Path(tmp), args)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=DEFAULT_OBJECTS, help="Apps per phase")
    parser.add_argument("--gets", type=int, default=DEFAULT_GETS)
    parser.add_argument("--watch-writes", type=int, default=DEFAULT_WATCH_WRITES)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--cli-runs", type=int, default=DEFAULT_CLI_RUNS)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("EDGEWEAVE_TEST_PG", DEFAULT_PG))
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(args.stores) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown store(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    results = asyncio.run(run(args))
    doc = {
        "benchmark": "api",
        "command": "python bench/api.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "source": source_info(),
        "client": "edgeweave.client.AsyncClient (httpx.AsyncClient on the client's h11 "
        "transport, HTTP/1.1, TLS, keep-alive); baselines through a bare httpx.AsyncClient "
        "sharing its connection pool",
        "parameters": {
            "objects_per_create_phase": args.objects,
            "gets": args.gets,
            "watch_writes": args.watch_writes,
            "concurrency": args.concurrency,
            "cli_runs": args.cli_runs,
        },
        "stores": results,
        "all_targets_met": all(t["met"] for r in results.values() for t in r["targets"].values()),
        "duration_s": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
