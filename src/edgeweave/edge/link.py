"""The agent's side of the cloud link: connect, say hello, sync, heartbeat, drain the outbox.

One :class:`LinkSession` per connection; :func:`run_link` reconnects forever with capped
exponential backoff and full jitter. Downstream frames are persisted (via :class:`Sync`) before
they are acked; upstream entries leave the outbox only after the cloud acked their commit. A
lost link loses nothing: the next session resumes from what both sides have committed.

Must not: touch the runtime directly (sync does), block the receive loop on slow work (it
hands off to tasks), or trust anything but the TLS identity for who we are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgeweave import __version__
from edgeweave.aio.backoff import Backoff
from edgeweave.config.edge import LinkSettings
from edgeweave.edge.hostinfo import capacity, local_addresses
from edgeweave.edge.identity import (
    NodeIdentity,
    pending_path,
    record_cert_not_after,
    recorded_cert_not_after,
)
from edgeweave.edge.logs import LogStreams
from edgeweave.edge.outbox import Outbox
from edgeweave.edge.sync import Sync
from edgeweave.errors import (
    ConfigError,
    EdgeweaveError,
    InvalidObject,
    LinkBroken,
    LinkError,
    ProtocolError,
)
from edgeweave.protocol import codec
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import Versioned
from edgeweave.transport.certs import (
    cert_not_after,
    generate_key_and_csr,
    write_file_atomic,
)
from edgeweave.transport.link import Link

log = logging.getLogger(__name__)

RENEW_BEFORE_DAYS = 30
HELD_CHUNK_MAX = 5000  # items per held frame, whatever their size
_HELD_ENVELOPE_BYTES = 256  # a held frame's envelope, generously
RECV_QUEUE = 1024
DOWNSTREAM_BATCH = 1000


@dataclass
class LinkState:
    """What the rest of the agent may read about the link (for status and requests)."""

    state: str = "connecting"
    detail: str = ""
    connects: int = 0
    heartbeat_rtt_ms: float | None = None
    on_change: Callable[[LinkState], None] = field(default=lambda s: None)

    def set(self, state: str, detail: str = "") -> None:
        self.state, self.detail = state, detail
        self.on_change(self)


Dialer = Callable[[], contextlib.AbstractAsyncContextManager[Link]]


class LinkSession:
    """One connected session. ``run()`` returns (or raises LinkError) when the link ends."""

    def __init__(
        self,
        link: Link,
        identity: NodeIdentity,
        settings: LinkSettings,
        sync: Sync,
        outbox: Outbox,
        log_path: Callable[[str, str], Path],
        state: LinkState,
        heartbeat_info: Callable[[], tuple[int, int]],
        boot_id: str,
        *,
        advertise_address: str = "",
        on_relay_open: Callable[[m.RelayOpen, Callable[[m.Message], Awaitable[None]]], None]
        | None = None,
    ) -> None:
        self.link = link
        self.identity = identity
        self.settings = settings
        self.sync = sync
        self.outbox = outbox
        # this session's log streams: they end with it (run() closes them)
        self.logs = LogStreams(log_path, max_frame_bytes=settings.max_frame_bytes)
        self.state = state
        self.heartbeat_info = heartbeat_info
        self.boot_id = boot_id
        self.advertise_address = advertise_address
        self.on_relay_open = on_relay_open  # the mesh's relay target
        self.welcomed = asyncio.Event()
        self._pending: dict[str, asyncio.Future[m.Message]] = {}
        self._window = asyncio.Semaphore(settings.upstream_in_flight)
        self._sent_upto = 0
        self._upstream_ids: set[str] = set()
        self._heartbeat_interval_s = 15.0
        self._hb_seq = 0
        self._hb_sent: dict[str, float] = {}
        self._new_key: bytes | None = None

    # -- sending -------------------------------------------------------------------------

    async def send(self, msg: m.Message) -> None:
        await self.link.send(codec.encode(msg))

    async def request(self, msg: m.Message, timeout_s: float = 30.0) -> m.Message:
        """Send and wait for the message whose parent_id is ours (or an error)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[m.Message] = loop.create_future()
        self._pending[msg.id] = fut
        try:
            await self.send(msg)
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            self._pending.pop(msg.id, None)

    # -- the session -----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self.logs.aclose()

    async def _run(self) -> None:
        digest, count = await self.sync.held_summary()
        await self.send(
            m.Hello(
                agent_version=__version__,
                boot_id=self.boot_id,
                held_count=count,
                held_digest=digest,
                capacity=m.Capacity(**capacity()),
                addresses=tuple(m.Address(**a) for a in local_addresses(self.advertise_address)),
                labels=self.identity.labels,
            )
        )
        inbox: asyncio.Queue[m.Message] = asyncio.Queue(RECV_QUEUE)
        async with asyncio.TaskGroup() as tg:
            receiver = tg.create_task(self._receive(inbox), name="link-receive")
            worker = tg.create_task(self._process(inbox), name="link-process")
            await self.welcomed.wait()
            tg.create_task(self._heartbeats(), name="link-heartbeat")
            tg.create_task(self._upstream(), name="link-upstream")
            tg.create_task(self._maybe_renew(), name="link-renew")
            # the receive loop ends by raising LinkError; the TaskGroup then cancels the rest
            await asyncio.gather(receiver, worker)

    async def _receive(self, inbox: asyncio.Queue[m.Message]) -> None:
        max_bytes = self.settings.max_frame_bytes
        while True:
            frame = await self.link.recv()
            try:
                msg = codec.decode(frame, direction="down", max_bytes=max_bytes)
            except ProtocolError as e:
                log.warning("dropping a bad frame from the cloud: %s", e)
                continue
            pending = self._pending.get(msg.parent_id or "")
            if pending is not None and not pending.done():
                pending.set_result(msg)
                continue
            if isinstance(msg, m.HeartbeatAck):
                sent = self._hb_sent.pop(msg.parent_id or "", None)
                if sent is not None:
                    self.state.heartbeat_rtt_ms = (asyncio.get_running_loop().time() - sent) * 1e3
                continue
            if isinstance(msg, m.UpstreamAck):
                self._upstream_ids.discard(msg.parent_id or "")
                await self.outbox.ack(msg.committed_seq)
                self._window.release()
                continue
            if isinstance(msg, m.Error) and msg.parent_id in self._upstream_ids:
                # a refused batch: start over from what the cloud committed (on reconnect)
                raise LinkBroken(
                    f"the cloud refused an upstream batch: {msg.reason}: {msg.message}"
                )
            await inbox.put(msg)

    async def _process(self, inbox: asyncio.Queue[m.Message]) -> None:
        pending: m.Message | None = None
        while True:
            msg = pending if pending is not None else await inbox.get()
            pending = None
            if not isinstance(msg, (m.Upsert, m.Delete)):
                await self._handle(msg)
                continue
            # gather a batch: one durable commit (an fsync) for many objects, not one each. No
            # timer and no extra loop turn: the reader queues every frame already received
            # before this task runs, and what arrives while a batch is being written is taken
            # at once after it, so a burst batches itself and a single change is not held back
            batch: list[m.Upsert | m.Delete] = [msg]
            while len(batch) < DOWNSTREAM_BATCH:
                try:
                    nxt = inbox.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if not isinstance(nxt, (m.Upsert, m.Delete)):
                    pending = nxt
                    break
                batch.append(nxt)
            acked = await self.sync.persist(batch)  # persist, then ack
            await self.send(m.Ack(items=tuple(acked)))

    async def _handle(self, msg: m.Message) -> None:
        if isinstance(msg, m.Welcome):
            self._heartbeat_interval_s = msg.heartbeat_interval_s
            await self.outbox.ack(msg.upstream_committed_seq)
            self._sent_upto = msg.upstream_committed_seq
            self.state.connects += 1
            self.state.set("syncing", self.identity.hub_url)
            self.welcomed.set()
        elif isinstance(msg, m.Resync):
            items = await self.sync.held()
            chunks = held_chunks(items, self.settings.max_frame_bytes // 2)
            for i, chunk in enumerate(chunks):
                await self.send(m.Held(items=chunk, last=i == len(chunks) - 1))
        elif isinstance(msg, m.SyncDone):
            self.state.set("connected", self.identity.hub_url)
        elif isinstance(msg, m.Renewed):
            self._store_renewed(msg.certificate)
        elif isinstance(msg, m.LogsRequest):
            await self.logs.start(msg, self.send)
        elif isinstance(msg, m.LogsCancel):
            self.logs.cancel(msg.stream_id)
        elif isinstance(msg, m.RelayOpen):
            if self.on_relay_open is not None:
                self.on_relay_open(msg, self.send)
            else:
                text = "the mesh is not enabled on this node"
                await self.send(
                    m.Error(reason="ServiceUnavailable", message=text, parent_id=msg.id)
                )
        elif isinstance(msg, m.Error):
            log.warning("the cloud reports %s: %s", msg.reason, msg.message)

    async def _heartbeats(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._hb_seq += 1
            running, failed = self.heartbeat_info()
            hb = m.Heartbeat(seq=self._hb_seq, apps_running=running, apps_failed=failed)
            self._hb_sent = {hb.id: loop.time()}  # only the newest matters
            await self.send(hb)
            await asyncio.sleep(self._heartbeat_interval_s)

    async def _upstream(self) -> None:
        s = self.settings
        while True:
            await self._window.acquire()
            entries = await self.outbox.wait_peek(
                self._sent_upto,
                max_entries=s.upstream_batch_entries,
                max_bytes=s.upstream_batch_bytes,
                unflushed=True,  # sending overlaps the fsync (the outbox reserves the seqs)
            )
            self._sent_upto = entries[-1].seq
            head = m.Upstream(entries=())
            self._upstream_ids.add(head.id)
            # the outbox keeps each entry as JSON text: splice it, never decode and re-encode
            await self.link.send(codec.encode_upstream(head, [e.to_json() for e in entries]))

    def _renewal_due(self) -> bool:
        """From the expiry recorded in node.yaml: no X.509 parsing (no ``cryptography``) on
        a connect that renews nothing. A node.yaml from before the expiry was recorded gets
        the certificate parsed once, and the expiry recorded for the next start."""
        before = timedelta(days=RENEW_BEFORE_DAYS)
        expires = recorded_cert_not_after(self.identity.data_dir)
        if expires is not None:
            return datetime.now(UTC) >= expires - before
        expires = cert_not_after(self.identity.cert_path.read_bytes())
        try:
            record_cert_not_after(self.identity.data_dir, expires)
        except ConfigError as e:  # only an optimisation for the next start
            log.warning("cannot record the certificate expiry: %s", e)
        return datetime.now(UTC) >= expires - before

    async def _maybe_renew(self) -> None:
        if not self._renewal_due():
            return
        key_pem, csr_pem = generate_key_and_csr(self.identity.node)
        self._new_key = key_pem
        await self.send(m.Renew(csr=csr_pem.decode()))

    def _store_renewed(self, certificate: str) -> None:
        if self._new_key is None:
            return
        try:
            expires = cert_not_after(certificate.encode())
        except InvalidObject:
            log.warning("the renewed certificate from the cloud is not PEM; keeping the old one")
            return
        key_path, cert_path = self.identity.key_path, self.identity.cert_path
        # stage both, then replace the key, then the certificate: load_identity finishes a
        # swap a crash interrupted (finish_renewal), so the pair in place always matches
        write_file_atomic(pending_path(key_path), self._new_key)
        write_file_atomic(pending_path(cert_path), certificate.encode(), mode=0o644)
        os.replace(pending_path(key_path), key_path)
        os.replace(pending_path(cert_path), cert_path)
        self._new_key = None
        # after the certificate: a crash in between leaves the old expiry, so the next
        # connect renews once more (harmless), never the other way round
        record_cert_not_after(self.identity.data_dir, expires)
        log.info("node certificate renewed; used from the next connection")


def _held_item_bytes(item: Versioned) -> int:
    """An upper bound of ``item``'s encoded size in a held frame (with its comma)."""
    ref = item.ref
    parts = (ref.kind, ref.namespace, ref.name)
    # {"ref":{"kind":K,"namespace":N,"name":M},"rv":R}, — strings as the codec writes them
    return 48 + sum(len(json.dumps(p, ensure_ascii=False).encode()) for p in parts) + 20


def held_chunks(items: Sequence[Versioned], budget_bytes: int) -> list[tuple[Versioned, ...]]:
    """``items`` cut into held frames of at most ``budget_bytes`` each (at least one frame,
    empty when nothing is held)."""
    budget = budget_bytes - _HELD_ENVELOPE_BYTES
    chunks: list[tuple[Versioned, ...]] = []
    chunk: list[Versioned] = []
    used = 0
    for item in items:
        size = _held_item_bytes(item)
        if chunk and (used + size > budget or len(chunk) >= HELD_CHUNK_MAX):
            chunks.append(tuple(chunk))
            chunk, used = [], 0
        chunk.append(item)
        used += size
    chunks.append(tuple(chunk))
    return chunks


async def run_link(
    dial: Dialer,
    make_session: Callable[[Link], LinkSession],
    settings: LinkSettings,
    state: LinkState,
    on_session: Callable[[LinkSession | None], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Keep a session up forever; reconnect with backoff + jitter after any failure.

    Whatever ends a session — a broken link, or a bug (any other exception, logged with its
    traceback) — the loop backs off and dials again: the link task never dies while the agent
    runs. Only cancellation ends it.
    """
    backoff = Backoff(base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s)
    while True:
        state.set("connecting", "")
        try:
            async with dial() as link:
                session = make_session(link)
                on_session(session)
                try:
                    backoff_reset = asyncio.create_task(_reset_when_welcomed(session, backoff))
                    try:
                        await session.run()
                    finally:
                        backoff_reset.cancel()
                finally:
                    on_session(None)
        except* Exception as group:
            err = _first_leaf(group)
            state.set("disconnected", str(err) or type(err).__name__)
            if isinstance(err, (LinkError, ProtocolError, OSError)):
                log.info("cloud link down: %s", err)
            elif isinstance(err, EdgeweaveError):
                log.warning("cloud link down: %s", err)
            else:  # a bug: keep the traceback, and keep the node connected
                log.error("cloud link session failed; reconnecting", exc_info=err)
        await sleep(backoff.next_delay())


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


async def _reset_when_welcomed(session: LinkSession, backoff: Backoff) -> None:
    await session.welcomed.wait()
    backoff.reset()


def new_boot_id() -> str:
    return uuid.uuid4().hex[:16]
