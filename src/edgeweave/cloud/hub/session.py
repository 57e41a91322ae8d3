"""One node's session on the hub: the receive loop and the sync state of one connection.

The node's identity is given (the certificate's CN, checked by the server); nothing in a
message can change it. Frames are decoded in exactly one place (``codec.decode(...,
direction="up")``); a frame that does not decode gets an ``error`` and the link is closed with
1008 — the session ends, the hub does not.

Flow (docs/design/edge-link.md §3): ``hello`` → ``welcome``; when the node's ``held_digest``
equals the digest of its recorded acks the difference is computed against those acks,
otherwise ``resync`` → ``held`` chunks → the acks are replaced → the difference. Desired state
then flows through the :class:`SendQueue` (upserts, deletes, one ``sync_done`` after the
initial difference, live changes afterwards). ``ack`` is recorded through the committer;
``heartbeat`` is answered at once on this task (never queued, never behind a commit);
``upstream`` goes to the committer which answers ``upstream_ack`` after the commit;
``artifact_url`` is signed only for digests an App assigned to this node lists (else
``Forbidden``), ``commit_url`` only for the commit a Copier placed on this node names, and
``merge_url`` only for a Merger placed on this node; ``renew`` signs a new certificate;
``logs_data`` feeds relayed log streams.

Per-session state is small: what was sent (ref → rv), acks, deletes in flight, open log
streams. This module must not import websockets (the server adapts the connection to
:class:`Conn`) and must not write objects other than through the committer and the store's
ack tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import orjson

from edgeweave.cloud.hub.dispatch import Dispatcher
from edgeweave.cloud.hub.index import SECRET
from edgeweave.cloud.hub.lifecycle import Lifecycle
from edgeweave.cloud.hub.logs import LogStream
from edgeweave.cloud.hub.sendq import SendQueue
from edgeweave.cloud.hub.upstream import Committer
from edgeweave.cloud.hub.urls import answer_url_request
from edgeweave.cloud.store.base import AckItem, CloudStore, JSONObject
from edgeweave.config.settings import HubSettings
from edgeweave.errors import (
    APIError,
    EdgeweaveError,
    LinkClosed,
    LinkError,
    PayloadTooLarge,
    ProtocolError,
    TooManyRequests,
    error_for_reason,
)
from edgeweave.protocol import codec
from edgeweave.protocol.messages import (
    Ack,
    AppName,
    ArtifactUrlRequest,
    CommitUrlRequest,
    Delete,
    Error,
    Heartbeat,
    HeartbeatAck,
    Held,
    Hello,
    LogsCancel,
    LogsData,
    LogsRequest,
    MergeUrlRequest,
    Message,
    OutputUrlRequest,
    Renew,
    Renewed,
    Resync,
    SyncDone,
    Upsert,
    Upstream,
    Welcome,
    new_message_id,
)
from edgeweave.protocol.refs import ResourceRef, Versioned, held_digest

log = logging.getLogger(__name__)

CLOSE_PROTOCOL_ERROR = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013
CLOSE_REPLACED = 4000
CLOSE_UNKNOWN_NODE = 4003
MAX_HELD_ITEMS = 1_000_000


class Conn(Protocol):
    """The link as the session sees it; errors are :class:`LinkError`."""

    async def recv(self) -> str | bytes: ...

    async def send(self, frame: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True)
class SessionDeps:
    store: CloudStore
    settings: HubSettings
    dispatcher: Dispatcher
    committer: Committer
    lifecycle: Lifecycle
    sign_url: Callable[[str, str], tuple[str, float]] | None
    sign_commit_url: Callable[[str, str], tuple[str, float]] | None
    sign_merge_url: Callable[[ResourceRef, str], tuple[str, float]] | None
    sign_output_url: Callable[[ResourceRef, str], tuple[str, float]] | None
    renew_cert: Callable[[str, bytes], bytes] | None
    decode_secret: Callable[[JSONObject], JSONObject]
    relay_refused: Callable[[str, Error], bool] = lambda node, error: False
    """The mesh relay's hook: a node's ``error`` answering a ``relay_open``."""


def _ack_item(ref: ResourceRef, rv: int) -> AckItem:
    return (ref.kind, ref.namespace, ref.name, rv)


class Session:
    def __init__(self, node: str, conn: Conn, deps: SessionDeps) -> None:
        self.node = node
        self.id = new_message_id()
        self._conn = conn
        self._deps = deps
        self._sent: dict[ResourceRef, int] = {}  # what the node holds or was sent
        self._deleting: dict[ResourceRef, int] = {}  # deletes sent, not acked yet
        self._acked: dict[ResourceRef, int] = {}
        self._held: list[Versioned] | None = None  # collecting during a resync
        self._streams: dict[str, LogStream] = {}
        self._closer: asyncio.Task[None] | None = None
        self.closed = False
        self.sendq = SendQueue(
            max_control=deps.settings.send_queue_max,
            send=conn.send,
            frame_for_ref=self._frame_for_ref,
            on_drained=self._sync_done,
        )

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve the link until it closes; never raises for what the peer does."""
        writer = asyncio.create_task(self._write(), name=f"hub-writer-{self.node}")
        try:
            await self._receive()
        except LinkError:
            pass
        except EdgeweaveError as e:
            log.warning("session of node %s failed: %s", self.node, e)
            await self._close(CLOSE_INTERNAL, e.reason)
        except Exception:
            log.exception("session of node %s failed", self.node)
            await self._close(CLOSE_INTERNAL, "internal error")
        finally:
            self.closed = True
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            for stream in self._streams.values():
                stream.fail(LinkClosed(f"the link to node {self.node} closed"))
            if self._closer is not None:
                await self._closer

    def request_close(self, code: int, reason: str) -> None:
        """Close the link soon (from code that cannot await)."""
        if self._closer is None and not self.closed:
            self._closer = asyncio.create_task(
                self._close(code, reason), name=f"hub-close-{self.node}"
            )

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(LinkError):
            await self._conn.close(code, reason[:120])

    async def _write(self) -> None:
        try:
            await self.sendq.run()
        except LinkError:
            pass
        except Exception:
            log.exception("sending to node %s failed", self.node)
            self.request_close(CLOSE_INTERNAL, "internal error")

    async def _fail(self, code: int, error: EdgeweaveError) -> None:
        """Tell the peer what was wrong, then close the link."""
        with contextlib.suppress(LinkError):
            await self._conn.send(codec.encode(Error(reason=error.reason, message=error.message)))
        await self._close(code, error.message)

    # ------------------------------------------------------------ receiving

    def _decode(self, data: str | bytes) -> Message:
        return codec.decode(
            data, direction="up", max_bytes=self._deps.settings.max_frame_bytes, loads=orjson.loads
        )

    async def _receive(self) -> None:
        try:
            try:
                async with asyncio.timeout(self._deps.settings.open_timeout_s):
                    first = self._decode(await self._conn.recv())
            except TimeoutError:
                raise ProtocolError("no hello in time") from None
            if not isinstance(first, Hello):
                raise ProtocolError(f"the first message must be hello, not {first.type}")
            await self._on_hello(first)
            while True:
                await self._handle(self._decode(await self._conn.recv()))
        except PayloadTooLarge as e:
            await self._fail(CLOSE_TOO_BIG, e)
        except ProtocolError as e:
            log.info("node %s: %s", self.node, e.message)
            await self._fail(CLOSE_PROTOCOL_ERROR, e)

    async def _handle(self, msg: Message) -> None:
        if isinstance(msg, Heartbeat):
            self._deps.lifecycle.heartbeat(self.node, msg)
            await self._conn.send(codec.encode(HeartbeatAck(parent_id=msg.id)))
        elif isinstance(msg, Upstream):
            self._deps.committer.submit_upstream(self.node, msg, self.send_control)
        elif isinstance(msg, Ack):
            self._on_ack(msg)
        elif isinstance(msg, Held):
            await self._on_held(msg)
        elif isinstance(
            msg, ArtifactUrlRequest | CommitUrlRequest | MergeUrlRequest | OutputUrlRequest
        ):
            index = self._deps.dispatcher.index
            self.send_control(answer_url_request(index, self._deps, self.node, msg))
        elif isinstance(msg, Renew):
            self._on_renew(msg)
        elif isinstance(msg, LogsData):
            self._on_logs_data(msg)
        elif isinstance(msg, Error):
            stream = self._streams.get(msg.parent_id or "")
            if stream is not None:  # the node refused a log request
                cls = error_for_reason(msg.reason) or APIError
                stream.fail(cls(f"node {self.node}: {msg.message or msg.reason}"))
            elif self._deps.relay_refused(self.node, msg):
                pass  # the node refused a relayed stream; its consumer is told why
            else:
                log.info("node %s reported %s: %s", self.node, msg.reason, msg.message)
        else:  # a second hello
            raise ProtocolError(f"unexpected {msg.type} message")

    def send_control(self, msg: Message) -> None:
        """Queue ``msg``; a full queue closes the link (the node reconnects and resyncs)."""
        if self.closed:
            return
        try:
            self.sendq.put_nowait(codec.encode(msg))
        except TooManyRequests as e:
            log.warning("node %s: %s; closing the link", self.node, e)
            self.request_close(CLOSE_TRY_AGAIN, e.message)

    # ------------------------------------------------------------ downstream sync

    async def _on_hello(self, hello: Hello) -> None:
        deps = self._deps
        committed = await deps.store.upstream_committed_seq(self.node)
        deps.committer.set_committed(self.node, committed)
        deps.lifecycle.connected(self.node, self, hello)
        acked = {
            ResourceRef(*key): rv
            for key, rv in (await deps.store.acked_versions(self.node)).items()
        }
        self.send_control(
            Welcome(
                session=self.id,
                heartbeat_interval_s=deps.settings.heartbeat_interval_s,
                upstream_committed_seq=committed,
                server_time=time.time(),
                parent_id=hello.id,
            )
        )
        if held_digest(Versioned(ref, rv) for ref, rv in acked.items()) == hello.held_digest:
            self._start_sync(acked)
        else:
            self._held = []
            self.send_control(Resync(parent_id=hello.id))

    async def _on_held(self, msg: Held) -> None:
        if self._held is None:
            raise ProtocolError("held was not asked for (no resync pending)")
        self._held.extend(msg.items)
        if len(self._held) > MAX_HELD_ITEMS:
            raise ProtocolError(f"held set larger than {MAX_HELD_ITEMS} objects")
        if not msg.last:
            return
        acked = {v.ref: v.rv for v in self._held}
        self._held = None
        await self._deps.store.replace_acks(
            self.node, [_ack_item(ref, rv) for ref, rv in acked.items()]
        )
        self._start_sync(acked)

    def _start_sync(self, acked: dict[ResourceRef, int]) -> None:
        self._acked = dict(acked)
        self._sent = dict(acked)
        desired = self._deps.dispatcher.index.desired_refs(self.node)
        wanted = set(desired)
        self.sendq.start_refs([*desired, *(ref for ref in acked if ref not in wanted)])

    def mark(self, refs: set[ResourceRef]) -> None:
        self.sendq.mark(refs)

    def held_refs(self) -> list[ResourceRef]:
        return list(self._sent)

    def _frame_for_ref(self, ref: ResourceRef) -> str | None:
        index = self._deps.dispatcher.index
        entry = index.desired(self.node, ref)
        if entry is not None:
            if self._sent.get(ref) == entry.rv:
                return None
            body = entry.body
            if ref.kind == SECRET:
                try:
                    body = self._deps.decode_secret(body)
                except EdgeweaveError as e:
                    log.error("cannot decrypt %s for node %s: %s", ref, self.node, e)
                    return None
            frame = codec.encode(Upsert(ref=ref, rv=entry.rv, object=body))
            if len(frame) > self._deps.settings.max_frame_bytes:
                log.error("%s does not fit a frame; not sent to node %s", ref, self.node)
                return None
            self._sent[ref] = entry.rv
            self._deleting.pop(ref, None)
            return frame
        if ref not in self._sent:
            return None
        del self._sent[ref]
        self._deleting[ref] = index.rv
        return codec.encode(Delete(ref=ref, rv=index.rv))

    def _sync_done(self) -> None:
        self.send_control(SyncDone(rv=self._deps.dispatcher.index.rv))

    def _on_ack(self, msg: Ack) -> None:
        items: list[AckItem] = []
        deleted = False
        for v in msg.items:
            ref = v.ref
            if self._deleting.get(ref) == v.rv:
                del self._deleting[ref]
                self._acked.pop(ref, None)
                deleted = True
            elif self._sent.get(ref) == v.rv:
                self._acked[ref] = v.rv
            else:
                continue  # not something this session sent at that version
            items.append(_ack_item(ref, v.rv))
        if items:
            # a delete ack of an object that still exists cannot be expressed as a row
            # update; replacing the node's whole (small) acked set is exact
            snapshot = self._ack_snapshot if deleted else None
            self._deps.committer.submit_acks(self.node, items, snapshot)

    def _ack_snapshot(self) -> list[AckItem]:
        return [_ack_item(ref, rv) for ref, rv in self._acked.items()]

    # ------------------------------------------------------------ requests

    def _on_renew(self, msg: Renew) -> None:
        reply: Message
        if self._deps.renew_cert is None:
            reply = Error(reason="ServiceUnavailable", message="renewal is off", parent_id=msg.id)
        else:
            try:
                cert = self._deps.renew_cert(self.node, msg.csr.encode())
            except EdgeweaveError as e:
                reply = Error(reason=e.reason, message=e.message, parent_id=msg.id)
            else:
                reply = Renewed(certificate=cert.decode("ascii"), parent_id=msg.id)
        self.send_control(reply)

    def _on_logs_data(self, msg: LogsData) -> None:
        stream = self._streams.get(msg.stream_id)
        if stream is None:
            return  # cancelled already
        if not stream.feed(list(msg.lines), msg.eof):
            self.send_control(LogsCancel(stream_id=msg.stream_id))

    @contextlib.asynccontextmanager
    async def open_log_stream(
        self, namespace: str, name: str, tail_lines: int | None, follow: bool
    ) -> AsyncIterator[AsyncIterable[list[str]]]:
        """Ask the node for an app's log; iterate the result for chunks of lines."""
        if self.closed:
            raise LinkClosed(f"node {self.node} is not connected")
        stream = LogStream(new_message_id(), self._deps.settings.log_stream_buffer)
        self._streams[stream.stream_id] = stream
        self.send_control(
            LogsRequest(
                id=stream.stream_id,  # so the node's refusal (its parent_id) finds the stream
                stream_id=stream.stream_id,
                app=AppName(namespace=namespace, name=name),
                tail_lines=tail_lines,
                follow=follow,
            )
        )
        try:
            yield stream
        finally:
            del self._streams[stream.stream_id]
            if not stream.finished:
                self.send_control(LogsCancel(stream_id=stream.stream_id))
