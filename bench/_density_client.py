"""Simulated edge agents for ``bench/hub_density.py``: many links from ONE process.

Not a benchmark on its own: ``hub_density.py`` runs this as a separate process (so the agents'
CPU is not the server's) and drives it over stdin/stdout with JSON lines.

Each simulated agent dials ``--url`` over TLS with its own client certificate
(``CERTS/<name>.crt``, all sharing the one key ``--key``), speaks the real link protocol through
``edgeweave.protocol.codec``: ``hello`` (nothing held: ``held_count`` 0 and the digest of the
empty set), waits for ``sync_done`` while acking every ``upsert`` (``--mode hub``) or for the
echoed hello (``--mode echo``, the floor server echoes every frame), then sends a ``heartbeat``
every ``--interval-s`` starting at a uniformly random offset within the first interval, and
times heartbeat → ``heartbeat_ack`` (hub) or heartbeat → the echoed heartbeat (echo).

Protocol with the driver. Out (stdout, one JSON object per line): ``{"event": "connected",
...}`` once every agent is connected or has given up, ``{"event": "window", ...}`` after each
``stop``, ``{"event": "bye"}`` after ``quit``. In (stdin lines): ``start`` opens a measurement
window, ``stop`` closes it and reports the heartbeat latencies of the heartbeats sent inside
it, ``quit`` closes every link and exits. Progress goes to stderr. This module must not start
or measure servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import ssl
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from edgeweave import __version__
from edgeweave.errors import ProtocolError
from edgeweave.protocol import codec
from edgeweave.protocol.messages import (
    Ack,
    Address,
    Capacity,
    Heartbeat,
    HeartbeatAck,
    Held,
    Hello,
    Resync,
    SyncDone,
    Upsert,
)
from edgeweave.protocol.refs import Versioned, held_digest
from edgeweave.transport.certs import ssl_client_context

MAX_FRAME_BYTES = 1 << 20  # the hub's default link.max_frame_bytes
PING_INTERVAL_S = 20.0  # the agent's defaults (transport/ws.py)
PING_TIMEOUT_S = 20.0
OPEN_TIMEOUT_S = 30.0  # generous: a connect storm queues handshakes on the server
CLOSE_TIMEOUT_S = 5.0
SYNC_TIMEOUT_S = 60.0
CONNECT_ATTEMPTS = 5
RETRY_DELAY_S = 1.0
STOP_GRACE_S = 5.0
LAG_PROBE_S = 0.05
QUIT_CLOSE_TIMEOUT_S = 30.0


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def progress(message: str) -> None:
    print(f"[client {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Fleet:
    """Every simulated agent of this process, and the measurement window."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ca_pem = Path(args.ca).read_bytes()
        self.key = Path(args.key)
        self.certs = Path(args.certs)
        self.names = [f"{args.prefix}{i:05d}" for i in range(args.first, args.first + args.count)]
        self.rng = random.Random(args.seed)
        self.slots = asyncio.Semaphore(args.connect_concurrency)
        self.all_settled = asyncio.Event()
        self.links: dict[str, ClientConnection] = {}
        self.connected = 0
        self.failed = 0
        self.retries = 0
        self.dropped = 0
        self.errors: dict[str, int] = {}
        self.connect_started = 0.0
        self.connect_s: list[float] = []  # per link: first dial -> synced
        self.upserts_acked = 0
        # the window: heartbeat id -> (sent at, sent inside the window)
        self.pending: dict[str, tuple[float, bool]] = {}
        self.in_window = False
        self.window_samples_s: list[float] = []
        self.window_sent = 0
        self.window_lag_s: list[float] = []
        self.window_gc_s: list[float] = []
        self._gc_started = 0.0
        self.window_outstanding = 0  # sent inside the window, not answered yet
        self.window_drained = asyncio.Event()
        self.unexpected = 0

    # ------------------------------------------------------------ one agent

    def _context(self, name: str) -> ssl.SSLContext:
        return ssl_client_context(
            self.ca_pem, cert_path=self.certs / f"{name}.crt", key_path=self.key
        )

    def _hello(self) -> str:
        return codec.encode(
            Hello(
                agent_version=__version__,
                boot_id=uuid.uuid4().hex[:16],
                held_count=0,
                held_digest=held_digest([]),
                capacity=Capacity(cpu=2.0, memory_bytes=1 << 30),
                addresses=(Address(type="InternalIP", address="127.0.0.1"),),
            )
        )

    async def _dial(self, name: str) -> ClientConnection:
        return await connect(
            self.args.url,
            ssl=self._context(name),
            compression=None,
            max_size=MAX_FRAME_BYTES,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_TIMEOUT_S,
            open_timeout=OPEN_TIMEOUT_S,
            close_timeout=CLOSE_TIMEOUT_S,
        )

    async def _sync(self, ws: ClientConnection) -> None:
        """Until the initial difference is done (hub) or the hello came back (echo)."""
        await ws.send(self._hello())
        async with asyncio.timeout(SYNC_TIMEOUT_S):
            while True:
                frame = await ws.recv()
                if self.args.mode == "echo":
                    codec.decode(frame, direction="up", max_bytes=MAX_FRAME_BYTES)
                    return
                msg = codec.decode(frame, direction="down", max_bytes=MAX_FRAME_BYTES)
                if isinstance(msg, SyncDone):
                    return
                await self._answer(ws, msg)

    async def _answer(self, ws: ClientConnection, msg: Any) -> None:
        """What an agent must answer outside heartbeats: acks for upserts, held for resync."""
        if isinstance(msg, Upsert):
            await ws.send(codec.encode(Ack(items=(Versioned(msg.ref, msg.rv),))))
            self.upserts_acked += 1
        elif isinstance(msg, Resync):
            await ws.send(codec.encode(Held(items=(), last=True)))

    def _note_error(self, e: BaseException) -> None:
        kind = type(e).__name__
        self.errors[kind] = self.errors.get(kind, 0) + 1

    async def agent(self, name: str) -> None:
        started = time.monotonic()
        ws: ClientConnection | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            async with self.slots:
                try:
                    ws = await self._dial(name)
                    await self._sync(ws)
                    break
                except (OSError, WebSocketException, TimeoutError, ProtocolError) as e:
                    self._note_error(e)
                    if ws is not None:
                        with contextlib.suppress(Exception):
                            await ws.close()
                    ws = None
            if attempt + 1 < CONNECT_ATTEMPTS:
                self.retries += 1
                await asyncio.sleep(RETRY_DELAY_S * (attempt + 1) * self.rng.random())
        if ws is None:
            self.failed += 1
            self._settled()
            return
        self.connect_s.append(time.monotonic() - started)
        self.links[name] = ws
        self.connected += 1
        self._settled()
        beats = asyncio.create_task(self._heartbeats(ws), name=f"beats-{name}")
        try:
            await self._receive(ws)
        except ConnectionClosed:
            self.dropped += 1
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await beats
            self.links.pop(name, None)

    def _settled(self) -> None:
        if self.connected + self.failed == len(self.names):
            self.all_settled.set()

    async def _heartbeats(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        interval = self.args.interval_s
        due = loop.time() + self.rng.uniform(0.0, interval)
        seq = 0
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            seq += 1
            hb = Heartbeat(seq=seq)
            frame = codec.encode(hb)
            self.pending[hb.id] = (loop.time(), self.in_window)
            if self.in_window:
                self.window_sent += 1
                self.window_outstanding += 1
            await ws.send(frame)
            due += interval

    def _answered(self, hb_id: str | None) -> None:
        sent = self.pending.pop(hb_id or "", None)
        if sent is None:
            self.unexpected += 1
            return
        at, in_window = sent
        if in_window:
            self.window_samples_s.append(asyncio.get_running_loop().time() - at)
            self.window_outstanding -= 1
            if self.window_outstanding == 0 and not self.in_window:
                self.window_drained.set()

    async def _receive(self, ws: ClientConnection) -> None:
        echo = self.args.mode == "echo"
        while True:
            frame = await ws.recv()
            if echo:
                up = codec.decode(frame, direction="up", max_bytes=MAX_FRAME_BYTES)
                self._answered(up.id if isinstance(up, Heartbeat) else None)
                continue
            msg = codec.decode(frame, direction="down", max_bytes=MAX_FRAME_BYTES)
            if isinstance(msg, HeartbeatAck):
                self._answered(msg.parent_id)
            else:
                await self._answer(ws, msg)

    # ------------------------------------------------------------ the window

    async def lag_probe(self) -> None:
        """How late this process's event loop wakes up: the client's share of any latency."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            if self.in_window:
                self.window_lag_s.append(loop.time() - before - LAG_PROBE_S)

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """Time this process's own collections: a pause here delays every reply it reads."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self.in_window:
            self.window_gc_s.append(time.perf_counter() - self._gc_started)

    def start_window(self) -> None:
        self.window_samples_s = []
        self.window_lag_s = []
        self.window_gc_s = []
        self.window_sent = 0
        self.window_outstanding = 0
        self.window_drained.clear()
        self.in_window = True

    async def stop_window(self) -> dict[str, Any]:
        self.in_window = False
        if self.window_outstanding > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE_S):
                    await self.window_drained.wait()
        unanswered = sum(1 for _, w in self.pending.values() if w)
        for hb_id in [k for k, (_, w) in self.pending.items() if w]:
            self.pending.pop(hb_id, None)
        return {
            "heartbeats_sent": self.window_sent,
            "unanswered": unanswered,
            "latencies_ms": [round(s * 1000.0, 3) for s in self.window_samples_s],
            "loop_lag_ms": [round(s * 1000.0, 3) for s in self.window_lag_s],
            "gc_collections": len(self.window_gc_s),
            "gc_max_ms": round(max(self.window_gc_s, default=0.0) * 1000.0, 3),
            "links_open": len(self.links),
            "dropped": self.dropped,
        }

    async def close_all(self) -> None:
        links = list(self.links.values())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(QUIT_CLOSE_TIMEOUT_S):
                await asyncio.gather(*(ws.close() for ws in links), return_exceptions=True)


async def read_commands() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True, help="the CA certificate (PEM) to trust")
    parser.add_argument("--key", required=True, help="the one private key every node shares")
    parser.add_argument("--certs", required=True, help="directory of <name>.crt files")
    parser.add_argument("--prefix", default="bench-node-")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--mode", choices=("hub", "echo"), default="hub")
    parser.add_argument("--interval-s", type=float, default=15.0)
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    fleet = Fleet(args)
    commands = await read_commands()
    probe = asyncio.create_task(fleet.lag_probe(), name="lag-probe")
    progress(f"dialing {args.count} links ({args.mode}, {args.connect_concurrency} at a time)")
    fleet.connect_started = time.monotonic()
    agents = [asyncio.create_task(fleet.agent(name), name=f"agent-{name}") for name in fleet.names]
    try:
        await fleet.all_settled.wait()
        connect_wall_s = time.monotonic() - fleet.connect_started
        ordered = sorted(fleet.connect_s)
        emit(
            "connected",
            connected=fleet.connected,
            failed=fleet.failed,
            retries=fleet.retries,
            errors=fleet.errors,
            connect_wall_s=round(connect_wall_s, 3),
            per_link_p50_s=round(ordered[len(ordered) // 2], 3) if ordered else None,
            per_link_max_s=round(ordered[-1], 3) if ordered else None,
            upserts_acked=fleet.upserts_acked,
        )
        progress(f"{fleet.connected} connected, {fleet.failed} failed in {connect_wall_s:.1f} s")
        # the links' objects live until the end: out of the collector's way, so that this
        # process's full collections (hundreds of ms with 10,000 links) do not pose as
        # server latency; collections that still happen are timed and reported
        gc.collect()
        gc.freeze()
        gc.callbacks.append(fleet.on_gc)
        while line := await commands.readline():
            command = line.decode().strip()
            if command == "start":
                fleet.start_window()
            elif command == "stop":
                emit("window", **await fleet.stop_window())
            elif command == "quit":
                break
        await fleet.close_all()
    finally:
        for task in [*agents, probe]:
            task.cancel()
        await asyncio.gather(*agents, probe, return_exceptions=True)
    emit("bye", unexpected_frames=fleet.unexpected)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
