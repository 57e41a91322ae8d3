"""Shared helpers of the benchmarks in ``bench/``: statistics, machine facts, a cloud subprocess.

The benchmarks print one JSON document on stdout and their progress on stderr; these helpers
never write to stdout. A cloud started here is always stopped (SIGTERM, then SIGKILL after a
timeout) when its context is left, whatever the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "edgeweave cloud listening on"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def log(message: str) -> None:
    """Progress, on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary_ms(samples_s: Sequence[float]) -> dict[str, float | int]:
    """p50/p90/p99/max/mean in milliseconds of latencies given in seconds."""
    ms = [s * 1000.0 for s in samples_s]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 2) if denominator > 0 else None


def target(value: float, limit: float, unit: str, what: str) -> dict[str, Any]:
    """A target entry: ``met`` when ``value <= limit``."""
    return {"what": what, "target": limit, "measured": value, "unit": unit, "met": value <= limit}


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def source_info() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--short"))}


def time_process_ms(argv: Sequence[str], runs: int, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wall time of ``argv`` as a whole process, ``runs`` times after one unmeasured warm-up."""
    samples: list[float] = []
    for i in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(
            list(argv),
            capture_output=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"{argv!r} exited {done.returncode}: {stderr[-500:]}")
        if i > 0:
            samples.append(elapsed_ms)
    return {
        "runs": runs,
        "p50_ms": round(percentile(samples, 50), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
    }


@dataclass(frozen=True)
class CloudProcess:
    pid: int
    data_dir: Path
    admin_config: Path
    log_file: Path


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        log(f"cloud pid {proc.pid} ignored SIGTERM for {STOP_TIMEOUT_S} s; killing it")
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def running_cloud(
    data_dir: Path, store_url: str = "", extra_args: Sequence[str] = ()
) -> AsyncIterator[CloudProcess]:
    """``edgeweave cloud serve`` in a subprocess until the context is left; yields once it has
    printed that it listens (so ``admin.yaml`` is written)."""
    exe = Path(sys.executable).parent / "edgeweave"
    argv = [str(exe), "cloud", "serve", "--data", str(data_dir), "--port", "0", "--hub-port", "0"]
    argv += ["--no-user-config", *extra_args]
    if store_url:
        argv += ["--store", store_url]
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    log_file = data_dir.parent / f"{data_dir.name}-cloud.log"
    with log_file.open("wb") as log_out:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_out
        )
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(_wait_ready(proc.stdout), START_TIMEOUT_S)
        yield CloudProcess(proc.pid, data_dir, data_dir / "admin.yaml", log_file)
    except BaseException:
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        if tail:
            log(f"cloud log tail:\n{tail}")
        raise
    finally:
        await _stop(proc)


async def _wait_ready(stdout: asyncio.StreamReader) -> None:
    while True:
        line = await stdout.readline()
        if not line:
            raise RuntimeError("the cloud exited before it listened")
        if line.decode(errors="replace").startswith(READY_LINE):
            return
