"""The hub's WebSocket server: TLS with required client certificates, one session per node.

The adapter module for ``websockets`` on the cloud side: its connection errors become
:class:`LinkClosed` here, so sessions never see a foreign exception. :func:`open_hub` lists the
desired state, starts the supervised tasks (store watch, upstream committer, lifecycle
sweeper, status pruner, twin history pruner, adoption of twin desired values set on the
edge) and listens on ``wss://HOST:PORT/link``:

- TLS demands a client certificate signed by the cloud CA (a node without one, or with one from
  another CA, fails the handshake); the node's name is the certificate's CN, checked again with
  :meth:`CertificateAuthority.verify_client_cert` (client-auth usage, validity). A ``hello``
  claiming anything else changes nothing: identity never comes from a message.
- No ``Node`` object → close 4003. A second connection of the same node replaces the first
  (closed with 4000).
- ``wss://HOST:PORT/relay`` carries the mesh relay's streams (``relay``), authenticated the
  same way; they never share a connection with a link.
- ``max_size`` = ``max_frame_bytes``: an oversize frame closes that link with 1009 and nothing
  else. Compression is off (per-connection zlib state would cost ~100 KiB for each of 10,000 links);
  websockets' ping/pong keeps links alive and finds half-open ones.

This module must not interpret messages (``session`` does) or decide what a node holds
(``index``); it must not import FastAPI/Starlette or anything from ``edgeweave.edge``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from edgeweave.cloud.hub.dispatch import Dispatcher
from edgeweave.cloud.hub.historyprune import HistoryPruner
from edgeweave.cloud.hub.index import APP, Marks
from edgeweave.cloud.hub.lifecycle import Lifecycle
from edgeweave.cloud.hub.prune import StatusPruner
from edgeweave.cloud.hub.relay import RELAY_PATH, RelayBroker
from edgeweave.cloud.hub.session import (
    CLOSE_REPLACED,
    CLOSE_UNKNOWN_NODE,
    Session,
    SessionDeps,
)
from edgeweave.cloud.hub.twinadopt import DesiredAdopter
from edgeweave.cloud.hub.upstream import Committer, RecordCommits, RecordJobs
from edgeweave.cloud.pki import CERT_BACKDATE_S, CertificateAuthority
from edgeweave.cloud.store.base import CloudStore, JSONObject
from edgeweave.config.settings import HubSettings
from edgeweave.errors import AuthError, LinkClosed, NotFound
from edgeweave.protocol.messages import Message
from edgeweave.protocol.refs import ResourceRef
from edgeweave.transport.certs import ssl_server_context

log = logging.getLogger(__name__)

LINK_PATH = "/link"
CLOSE_UNAUTHORIZED = 4001
LISTEN_BACKLOG = 4096  # a fleet reconnecting at once


def _identity(obj: JSONObject) -> JSONObject:
    return obj


@dataclass(frozen=True)
class HubDeps:
    """Everything the hub needs; the cloud's composition root builds it.

    ``sign_url(digest, node) -> (url, expires_at)`` presigns an artifact download;
    ``renew_cert(node, csr_pem) -> cert_pem`` signs a rotated certificate (default: the CA);
    ``decode_secret(obj) -> obj`` decrypts a stored Secret before it is sent (default: as is);
    ``record_jobs(node, reports)`` stores pipeline jobs nodes ran (default: not kept);
    ``record_commits(node, reports)`` commits of repos located on nodes (default: not kept);
    ``sign_commit_url(commit, node) -> (url, expires_at)`` presigns a Copier's commit fetch;
    ``sign_merge_url(pipeline, node) -> (url, expires_at)`` a node's deliveries to a Merger;
    ``sign_output_url(pipeline, node) -> (url, expires_at)`` a cloud worker's output pushes.
    """

    store: CloudStore
    ca: CertificateAuthority
    server_cert: Path
    server_key: Path
    settings: HubSettings = field(default_factory=HubSettings)
    host: str = "127.0.0.1"
    port: int = 0
    advertise_host: str | None = None  # the name nodes dial, when not the bind address
    replica_id: str = "hub"
    sign_url: Callable[[str, str], tuple[str, float]] | None = None
    renew_cert: Callable[[str, bytes], bytes] | None = None
    decode_secret: Callable[[JSONObject], JSONObject] = _identity
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    record_jobs: RecordJobs | None = None
    record_commits: RecordCommits | None = None
    sign_commit_url: Callable[[str, str], tuple[str, float]] | None = None
    sign_merge_url: Callable[[ResourceRef, str], tuple[str, float]] | None = None
    sign_output_url: Callable[[ResourceRef, str], tuple[str, float]] | None = None


class _WsConn:
    """A websockets connection as a session :class:`~edgeweave.cloud.hub.session.Conn`."""

    __slots__ = ("_ws",)

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws

    async def recv(self) -> str | bytes:
        try:
            return await self._ws.recv()
        except ConnectionClosed as e:
            raise LinkClosed("link closed", close_code=e.rcvd.code if e.rcvd else None) from e

    async def send(self, frame: str) -> None:
        try:
            await self._ws.send(frame)
        except ConnectionClosed as e:
            raise LinkClosed("link closed") from e

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)


def _only_link_path(conn: ServerConnection, request: Request) -> Response | None:
    if urlsplit(request.path).path not in (LINK_PATH, RELAY_PATH):
        return conn.respond(HTTPStatus.NOT_FOUND, f"the edge link is at {LINK_PATH}\n")
    return None


class Hub:
    """The running hub: ``url`` nodes dial, connected ``sessions``, the log relay."""

    def __init__(self, deps: HubDeps) -> None:
        self.deps = deps
        self.url = ""
        self.sessions: dict[str, Session] = {}
        settings = deps.settings
        self.dispatcher = Dispatcher(
            deps.store,
            on_marks=self._on_marks,
            on_node_deleted=self._on_node_deleted,
            on_rebuilt=self._on_rebuilt,
            on_device_deleted=self._on_device_deleted,
        )
        self.adopter = DesiredAdopter(deps.store, wall_clock=deps.wall_clock)
        self.committer = Committer(
            deps.store,
            lambda: self.dispatcher.index,
            entries_per_turn=settings.upstream_entries_per_turn,
            on_adoptions=self.adopter.wake,
            record_jobs=deps.record_jobs,
            record_commits=deps.record_commits,
        )
        self.pruner = StatusPruner(deps.store, lambda: self.dispatcher.index)
        self.history_pruner = HistoryPruner(deps.store)
        self.relay = RelayBroker(
            lambda: self.dispatcher.index,
            self._send_to_node,
            open_timeout_s=settings.relay_open_timeout_s,
            max_streams=settings.relay_max_streams,
            max_streams_per_node=settings.relay_max_streams_per_node,
        )
        self.lifecycle = Lifecycle(
            deps.store,
            replica_id=deps.replica_id,
            grace_s=settings.node_grace_s,
            refresh_s=settings.node_status_refresh_s,
            sweep_s=settings.lifecycle_sweep_s,
            clock=deps.clock,
            wall_clock=deps.wall_clock,
        )
        self._session_deps = SessionDeps(
            store=deps.store,
            settings=settings,
            dispatcher=self.dispatcher,
            committer=self.committer,
            lifecycle=self.lifecycle,
            sign_url=deps.sign_url,
            sign_commit_url=deps.sign_commit_url,
            sign_merge_url=deps.sign_merge_url,
            sign_output_url=deps.sign_output_url,
            renew_cert=deps.renew_cert or self._sign_with_ca,
            decode_secret=deps.decode_secret,
            relay_refused=self.relay.refuse,
        )

    def _send_to_node(self, node: str, msg: Message) -> bool:
        session = self.sessions.get(node)
        if session is None or session.closed:
            return False
        session.send_control(msg)
        return True

    def _sign_with_ca(self, node: str, csr_pem: bytes) -> bytes:
        return self.deps.ca.sign_csr(csr_pem, node_name=node)

    @contextlib.asynccontextmanager
    async def open_log_stream(
        self,
        node: str,
        app_namespace: str,
        app_name: str,
        tail_lines: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[AsyncIterable[list[str]]]:
        """Relay an app's log from ``node``: ``async with hub.open_log_stream(...) as chunks:
        async for lines in chunks: ...``. :class:`LinkClosed` when the node is not connected
        here or its link drops; leaving early cancels the stream on the node."""
        session = self.sessions.get(node)
        if session is None:
            raise LinkClosed(f"node {node} is not connected to this hub")
        async with session.open_log_stream(app_namespace, app_name, tail_lines, follow) as chunks:
            yield chunks

    def statistics(self) -> dict[str, int]:
        return {
            "sessions": len(self.sessions),
            "indexed_objects": len(self.dispatcher.index),
            "watch_events": self.dispatcher.events_applied,
            **self.committer.statistics(),
            **self.adopter.statistics(),
            **self.lifecycle.statistics(),
            **self.relay.statistics(),
            **{f"history_{k}": v for k, v in self.history_pruner.statistics().items()},
        }

    # ------------------------------------------------------------ dispatcher callbacks

    def _on_marks(self, marks: Marks) -> None:
        sessions = self.sessions
        index = self.dispatcher.index
        for node, refs in marks.items():
            session = sessions.get(node)
            if session is not None:
                session.mark(refs)
            for ref in refs:
                if ref.kind == APP and index.desired(node, ref) is None:
                    self.pruner.note(node, ref)  # the App left this node: drop its status

    def _on_rebuilt(self) -> None:
        index = self.dispatcher.index
        for node, session in self.sessions.items():
            session.mark({*index.desired_refs(node), *session.held_refs()})

    def _on_device_deleted(self, namespace: str, name: str) -> None:
        self.history_pruner.note(namespace, name)

    def _on_node_deleted(self, node: str) -> None:
        session = self.sessions.get(node)
        if session is not None:
            session.request_close(CLOSE_UNKNOWN_NODE, f"node {node} was deleted")

    # ------------------------------------------------------------ connections

    async def _node_refusal(self, node: str, issued_at: float) -> tuple[int, str] | None:
        """Why a certificate for ``node`` issued at ``issued_at`` may not connect, if it may
        not: the node is unknown, or the certificate predates the node's latest registration
        (a machine replaced by a re-join, or a node deleted and created again)."""
        try:
            obj = await self.deps.store.get("Node", "", node)
        except NotFound:
            return CLOSE_UNKNOWN_NODE, f"unknown node {node}: join first"
        registered = max(
            _seconds((obj.get("metadata") or {}).get("creationTimestamp")),
            _seconds((obj.get("status") or {}).get("joinedAt")),
        )
        if issued_at + 1 < registered:  # + 1: both sides are whole seconds
            return (
                CLOSE_UNKNOWN_NODE,
                f"certificate predates node {node}'s registration: join again",
            )
        return None

    async def handle(self, ws: ServerConnection) -> None:
        """One connection, from TLS-verified handshake to close."""
        ssl_object = ws.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            await ws.close(CLOSE_UNAUTHORIZED, "a client certificate is required")
            return
        try:
            node = self.deps.ca.verify_client_cert(ssl.DER_cert_to_PEM_cert(der).encode())
        except AuthError as e:
            await ws.close(CLOSE_UNAUTHORIZED, e.message[:120])
            return
        peer = ssl_object.getpeercert() or {}
        not_before = peer.get("notBefore")
        issued_at = ssl.cert_time_to_seconds(not_before) + CERT_BACKDATE_S if not_before else 0.0
        refusal = await self._node_refusal(node, issued_at)
        if refusal is not None:
            await ws.close(refusal[0], refusal[1][:120])
            return
        if ws.request is not None and urlsplit(ws.request.path).path == RELAY_PATH:
            await self.relay.handle(node, ws)
            return
        session = Session(node, _WsConn(ws), self._session_deps)
        previous = self.sessions.get(node)
        self.sessions[node] = session
        if previous is not None:
            previous.request_close(CLOSE_REPLACED, "replaced by a newer connection")
        try:
            await session.run()
        finally:
            if self.sessions.get(node) is session:
                del self.sessions[node]
            self.lifecycle.disconnected(node, session)


def _seconds(rfc3339: object) -> float:
    """Unix seconds of an RFC 3339 UTC timestamp (``...Z``); 0 when absent or unreadable."""
    if not isinstance(rfc3339, str):
        return 0.0
    try:
        return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


async def _supervised(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a hub task; a crash is logged and the task restarted (it holds no lost state)."""
    while True:
        try:
            await run()
            return
        except Exception:
            log.exception("hub task %s crashed; restarting", name)
            await asyncio.sleep(1.0)


@contextlib.asynccontextmanager
async def open_hub(deps: HubDeps) -> AsyncIterator[Hub]:
    """Start the hub; ``hub.url`` is the bound ``wss://HOST:PORT/link``. Leaving the context
    closes every link (1001) and stops the hub's tasks."""
    settings = deps.settings
    ssl_context = ssl_server_context(
        deps.server_cert,
        deps.server_key,
        client_ca_pem=deps.ca.cert_pem,
        require_client_cert=True,
    )
    hub = Hub(deps)
    await hub.dispatcher.load()
    hub.lifecycle.track_stored((await deps.store.list("Node")).items)
    tasks = [
        asyncio.create_task(_supervised("watch", hub.dispatcher.run), name="hub-watch"),
        asyncio.create_task(_supervised("committer", hub.committer.run), name="hub-committer"),
        asyncio.create_task(_supervised("lifecycle", hub.lifecycle.run), name="hub-lifecycle"),
        asyncio.create_task(_supervised("prune", hub.pruner.run), name="hub-status-prune"),
        asyncio.create_task(
            _supervised("history-prune", hub.history_pruner.run), name="hub-history-prune"
        ),
        asyncio.create_task(_supervised("twin-adopt", hub.adopter.run), name="hub-twin-adopt"),
    ]
    try:
        async with serve(
            hub.handle,
            deps.host,
            deps.port,
            ssl=ssl_context,
            process_request=_only_link_path,
            compression=None,
            max_size=settings.max_frame_bytes,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_timeout_s,
            open_timeout=settings.open_timeout_s,
            close_timeout=settings.close_timeout_s,
            backlog=LISTEN_BACKLOG,
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            host = deps.advertise_host or {
                "": "127.0.0.1",
                "0.0.0.0": "127.0.0.1",  # noqa: S104 - naming a reachable address for a wildcard
                "::": "::1",
            }.get(deps.host, deps.host)
            host = f"[{host}]" if ":" in host else host
            hub.url = f"wss://{host}:{port}{LINK_PATH}"
            yield hub
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
