"""Health probes (exec / http / tcp) and the loop that turns their results into health.

A probe returns "" on success or a short reason. :func:`probe_loop` runs one every
``periodSeconds`` after ``initialDelaySeconds`` and calls ``on_result(ok, reason)`` with the
current health: healthy after a success, unhealthy after ``failureThreshold`` consecutive
failures. The HTTP probe is a plain GET over asyncio streams (2xx/3xx is healthy) so the edge
agent needs no HTTP library for it.

This module must not restart or kill the app; the caller decides what a failure means.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from edgeweave.edge.runtime import process
from edgeweave.edge.runtime.spec import AppPort, HealthCheck

DEFAULT_PERIOD_S = 10.0
DEFAULT_TIMEOUT_S = 1.0
DEFAULT_FAILURE_THRESHOLD = 3
PROBE_HOST = "127.0.0.1"


def _port(value: int | str, ports: Sequence[AppPort]) -> int:
    if isinstance(value, int):
        return value
    return next(p.port for p in ports if p.name == value)


async def _tcp(port: int) -> str:
    try:
        _, writer = await asyncio.open_connection(PROBE_HOST, port)
    except OSError as e:
        return f"tcp {PROBE_HOST}:{port}: {e.strerror or e}"
    writer.close()
    await writer.wait_closed()
    return ""


async def _http(port: int, path: str) -> str:
    try:
        reader, writer = await asyncio.open_connection(PROBE_HOST, port)
    except OSError as e:
        return f"http GET :{port}{path}: {e.strerror or e}"
    try:
        writer.write(
            f"GET {path} HTTP/1.0\r\nHost: {PROBE_HOST}:{port}\r\n"
            "User-Agent: edgeweave-probe\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await reader.readline()
    except OSError as e:
        return f"http GET :{port}{path}: {e.strerror or e}"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return f"http GET :{port}{path}: no HTTP status line"
    status = int(parts[1])
    return "" if 200 <= status < 400 else f"http GET :{port}{path} answered {status}"


async def _exec(argv: list[str], cwd: Path, env: Mapping[str, str], timeout_s: float) -> str:
    try:
        pid = process.spawn(argv, cwd=cwd, env=env, log_path=None)
    except OSError as e:
        return f"exec {argv[0]}: {e.strerror or e}"
    watched = process.Watched(pid)
    try:
        if not await watched.wait(timeout_s):
            await process.stop_group(watched, 0.0)
            return f"exec {argv[0]}: timed out after {timeout_s:g} s"
        code = watched.exit.result()
    finally:
        if not watched.exit.done():  # cancelled while waiting
            process.signal_group(pid, signal.SIGKILL)
            await watched.wait()
        watched.close()
    return "" if code == 0 else f"exec {argv[0]}: {process.describe_exit(code)}"


async def run_probe(
    check: HealthCheck, ports: Sequence[AppPort], cwd: Path, env: Mapping[str, str]
) -> str:
    """One probe attempt bounded by ``timeoutSeconds``; "" when healthy."""
    timeout_s = float(check.timeoutSeconds or DEFAULT_TIMEOUT_S)
    if check.exec is not None:
        return await _exec(check.exec.command, cwd, env, timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            if check.http is not None:
                return await _http(_port(check.http.port, ports), check.http.path)
            assert check.tcp is not None
            return await _tcp(_port(check.tcp.port, ports))
    except TimeoutError:
        return f"probe timed out after {timeout_s:g} s"


async def probe_loop(
    check: HealthCheck,
    ports: Sequence[AppPort],
    cwd: Path,
    env: Mapping[str, str],
    on_result: Callable[[bool, str], None],
) -> None:
    """Probe forever (until cancelled), reporting health changes through ``on_result``."""
    period_s = float(check.periodSeconds or DEFAULT_PERIOD_S)
    threshold = check.failureThreshold or DEFAULT_FAILURE_THRESHOLD
    await asyncio.sleep(float(check.initialDelaySeconds or 0))
    failures = 0
    while True:
        reason = await run_probe(check, ports, cwd, env)
        if not reason:
            failures = 0
            on_result(True, "")
        else:
            failures += 1
            if failures >= threshold:
                on_result(False, f"health check failed {failures} times: {reason}")
        await asyncio.sleep(period_s)
