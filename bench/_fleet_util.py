"""Helpers of the benchmarks that drive a real fleet (``edgeweave.cli.fleet.Fleet``).

- :class:`CountingProxy`: a TCP relay on loopback that counts the bytes crossing it in each
  direction, per connection, with the time each connection was accepted. An agent whose
  ``node.yaml`` ``hubUrl`` names the proxy's port talks to the hub through it; TLS passes
  through untouched (the hub's certificate names the host, not the port), so the counts are
  the real wire bytes: TLS records, handshakes and WebSocket framing included. The relay runs
  its own event loop on its own thread, so a benchmark may block (``Fleet`` calls are
  synchronous) without stalling the link it measures.
- :func:`point_agent_at`: rewrite an agent's ``hubUrl`` to go through a proxy.
- :func:`cpu_seconds`: user + system CPU a process used so far (``/proc/PID/stat``), so a
  benchmark can report CPU per unit of work, which a loaded machine distorts less than rates.

Never writes to stdout. A started proxy is stopped by :meth:`CountingProxy.stop` (use
try/finally); it closes its listener and every relayed connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

READ_BYTES = 256 * 1024
START_TIMEOUT_S = 10.0


@dataclass
class ConnStats:
    accepted_at: float  # time.perf_counter() when the agent's connection was accepted
    up_bytes: int = 0  # agent -> hub
    down_bytes: int = 0  # hub -> agent
    closed: bool = False


@dataclass
class WireTotals:
    connections: int
    up_bytes: int
    down_bytes: int
    first_accepted_at: float | None

    @property
    def total_bytes(self) -> int:
        return self.up_bytes + self.down_bytes


@dataclass
class CountingProxy:
    target_host: str
    target_port: int
    port: int = 0
    _conns: list[ConnStats] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    # -- control (any thread) ------------------------------------------------------------

    def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            try:
                asyncio.run(self._serve(ready))
            except BaseException as e:  # reported to start() or lost after stop()
                errors.append(e)
                ready.set()

        self._thread = threading.Thread(target=main, name="bench-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S) or errors:
            raise RuntimeError(f"the proxy did not start: {errors[:1]}")
        return self.port

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT_S)

    def mark(self) -> None:
        """Forget the connections so far: :meth:`totals` counts from here."""
        self._conns = []

    def totals(self) -> WireTotals:
        conns = list(self._conns)
        return WireTotals(
            connections=len(conns),
            up_bytes=sum(c.up_bytes for c in conns),
            down_bytes=sum(c.down_bytes for c in conns),
            first_accepted_at=min((c.accepted_at for c in conns), default=None),
        )

    # -- the relay (its own loop) ----------------------------------------------------------

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for writer in list(self._writers):
                writer.close()
            await server.wait_closed()

    async def _relay(self, agent_r: asyncio.StreamReader, agent_w: asyncio.StreamWriter) -> None:
        stats = ConnStats(accepted_at=time.perf_counter())
        self._conns.append(stats)
        self._writers.add(agent_w)
        try:
            hub_r, hub_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            agent_w.close()
            self._writers.discard(agent_w)
            return
        self._writers.add(hub_w)

        def count_up(n: int) -> None:
            stats.up_bytes += n

        def count_down(n: int) -> None:
            stats.down_bytes += n

        try:
            await asyncio.gather(_pipe(agent_r, hub_w, count_up), _pipe(hub_r, agent_w, count_down))
        finally:
            stats.closed = True
            for w in (agent_w, hub_w):
                self._writers.discard(w)
                w.close()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: Callable[[int], None]
) -> None:
    try:
        while data := await reader.read(READ_BYTES):
            count(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def point_agent_at(agent_dir: Path, port: int) -> str:
    """Make the agent in ``agent_dir`` dial the hub through ``127.0.0.1:port``; returns the
    new ``hubUrl`` (read by the agent when it starts)."""
    path = agent_dir / "node.yaml"
    doc = yaml.safe_load(path.read_text())
    parts = urlsplit(str(doc["hubUrl"]))
    doc["hubUrl"] = urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(doc["hubUrl"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")
