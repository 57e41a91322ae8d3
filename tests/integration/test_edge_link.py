"""The agent's side of the link against a scripted cloud, over the in-memory link twin.

Real local store and outbox (SQLite files in tmp), real codec; the "cloud" is this test
speaking the protocol. Checks persist-then-ack, resync, upstream replay after a refusal, and
certificate renewal (decided from the expiry recorded in node.yaml, or the certificate itself
when an older node.yaml lacks it).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgeweave.cloud.pki import CertificateAuthority
from edgeweave.config.edge import LinkSettings
from edgeweave.edge.identity import (
    NodeIdentity,
    identity_file,
    load_identity,
    recorded_cert_not_after,
    save_identity,
)
from edgeweave.edge.link import LinkSession, LinkState
from edgeweave.edge.logs import LogStreams
from edgeweave.edge.outbox import Outbox, open_outbox
from edgeweave.edge.store import EdgeStore, open_edge_store
from edgeweave.edge.sync import Sync
from edgeweave.errors import LinkBroken
from edgeweave.protocol import codec
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import ResourceRef, Versioned, held_digest
from edgeweave.transport.certs import cert_not_after, generate_key_and_csr
from edgeweave.transport.memory import MemoryLink, memory_link_pair

WAIT_S = 10.0


@dataclass
class Rig:
    cloud: MemoryLink
    session: LinkSession
    store: EdgeStore
    outbox: Outbox
    identity: NodeIdentity
    task: asyncio.Task[None]

    async def recv(self) -> m.Message:
        async with asyncio.timeout(WAIT_S):
            return codec.decode(await self.cloud.recv(), direction="up")

    async def until(self, kind: type[m.Message]) -> m.Message:
        while True:
            msg = await self.recv()
            if isinstance(msg, kind):
                return msg

    async def send(self, msg: m.Message) -> None:
        await self.cloud.send(codec.encode(msg))


def make_identity(tmp: Path, ca: CertificateAuthority, valid_days: int) -> NodeIdentity:
    pki = tmp / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    key, csr = generate_key_and_csr("edge-1")
    (pki / "node.key").write_bytes(key)
    (pki / "node.crt").write_bytes(ca.sign_csr(csr, node_name="edge-1", valid_days=valid_days))
    (pki / "ca.crt").write_bytes(ca.cert_pem)
    return NodeIdentity(tmp, "edge-1", "wss://cloud.invalid/link", "https://cloud.invalid")


@pytest.fixture
async def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "ca")


async def open_rig(
    tmp: Path, ca: CertificateAuthority, valid_days: int = 90, max_frame_bytes: int = 1 << 20
) -> Rig:
    identity = make_identity(tmp, ca, valid_days)
    store = await open_edge_store(tmp / "state.db", secret_key=b"k" * 32)
    outbox = await open_outbox(tmp / "outbox.db")
    edge_end, cloud_end = memory_link_pair(max_frame_bytes)
    session = LinkSession(
        edge_end,
        identity,
        LinkSettings(upstream_in_flight=2, max_frame_bytes=max_frame_bytes),
        Sync(store),
        outbox,
        lambda ns, name: tmp / "apps" / ns / name / "app.log",
        LinkState(),
        lambda: (0, 0),
        "boot-1",
    )
    task = asyncio.create_task(session.run(), name="test-session")
    return Rig(cloud_end, session, store, outbox, identity, task)


@pytest.fixture
async def rig(tmp_path: Path, ca: CertificateAuthority) -> AsyncIterator[Rig]:
    r = await open_rig(tmp_path, ca)
    try:
        yield r
    finally:
        await close_rig(r)


async def close_rig(r: Rig) -> None:
    try:
        await r.cloud.aclose()
        with pytest.raises((LinkBroken, ExceptionGroup, asyncio.CancelledError)):
            await asyncio.wait_for(r.task, WAIT_S)
    finally:
        await r.outbox.aclose()
        await r.store.aclose()


def upsert(name: str, rv: int) -> m.Upsert:
    obj = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": name},
    }
    return m.Upsert(ref=ResourceRef("ConfigMap", "default", name), rv=rv, object=obj)


def welcome(committed: int = 0) -> m.Welcome:
    return m.Welcome(
        session="s", heartbeat_interval_s=60, upstream_committed_seq=committed, server_time=0
    )


async def test_hello_then_objects_are_persisted_before_they_are_acked(rig: Rig) -> None:
    hello = await rig.until(m.Hello)
    assert isinstance(hello, m.Hello) and hello.held_count == 0
    assert hello.held_digest == held_digest([])
    await rig.send(welcome())
    await rig.send(upsert("a", 5))
    await rig.send(upsert("b", 6))
    ack = await rig.until(m.Ack)
    assert isinstance(ack, m.Ack)
    acked = {(v.ref.name, v.rv) for v in ack.items}
    while acked != {("a", 5), ("b", 6)}:  # the two may arrive in one batch or two
        more = await rig.until(m.Ack)
        assert isinstance(more, m.Ack)
        acked |= {(v.ref.name, v.rv) for v in more.items}
    held = {(v.ref.name, v.rv) for v in await rig.store.held()}
    assert held == {("a", 5), ("b", 6)}  # on disk by the time the ack was sent


async def test_resync_sends_the_held_set(rig: Rig) -> None:
    await rig.store.apply_batch(
        [(ResourceRef("ConfigMap", "default", "x"), 3, upsert("x", 3).object)], []
    )
    await rig.until(m.Hello)
    await rig.send(welcome())
    await rig.send(m.Resync())
    held = await rig.until(m.Held)
    assert isinstance(held, m.Held) and held.last
    assert list(held.items) == [Versioned(ResourceRef("ConfigMap", "default", "x"), 3)]


async def test_upstream_entries_go_in_order_and_leave_only_when_committed(rig: Rig) -> None:
    for i in range(3):
        await rig.outbox.append("event", {"i": i})
    await rig.until(m.Hello)
    await rig.send(welcome(committed=1))  # the cloud already has seq 1
    batch = await rig.until(m.Upstream)
    assert isinstance(batch, m.Upstream)
    assert [e.seq for e in batch.entries] == [2, 3]
    await rig.send(m.UpstreamAck(committed_seq=3, parent_id=batch.id))
    async with asyncio.timeout(WAIT_S):
        while rig.outbox.statistics().entries:
            await asyncio.sleep(0.01)


async def test_a_refused_upstream_batch_ends_the_session_so_it_replays(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    r = await open_rig(tmp_path, ca)
    try:
        await r.outbox.append("event", {"i": 1})
        await r.until(m.Hello)
        await r.send(welcome())
        batch = await r.until(m.Upstream)
        await r.send(m.Error(reason="TooManyRequests", message="busy", parent_id=batch.id))
        with pytest.raises(ExceptionGroup) as info:
            await asyncio.wait_for(r.task, WAIT_S)
        assert info.group_contains(LinkBroken)
        assert r.outbox.statistics().entries == 1  # kept for the next session
    finally:
        await r.cloud.aclose()
        await r.outbox.aclose()
        await r.store.aclose()


async def test_a_certificate_near_expiry_is_renewed_over_the_link(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    r = await open_rig(tmp_path, ca, valid_days=10)  # inside the 30-day renewal window
    try:
        old_expiry = cert_not_after(r.identity.cert_path.read_bytes())
        await r.until(m.Hello)
        await r.send(welcome())
        renew = await r.until(m.Renew)
        assert isinstance(renew, m.Renew)
        fresh = ca.sign_csr(renew.csr.encode(), node_name="edge-1", valid_days=90)
        await r.send(m.Renewed(certificate=fresh.decode(), parent_id=renew.id))
        async with asyncio.timeout(WAIT_S):
            while r.identity.cert_path.read_bytes() != fresh:
                await asyncio.sleep(0.01)
        assert cert_not_after(fresh) - old_expiry > timedelta(days=70)
        r.identity.ssl_context()  # the new key and certificate belong together
    finally:
        await close_rig(r)


async def test_the_recorded_expiry_decides_and_a_renewal_records_the_new_one(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    r = await open_rig(tmp_path, ca, valid_days=90)  # the certificate itself is not due ...
    save_identity(r.identity, datetime.now(UTC) + timedelta(days=10))  # ... node.yaml says so
    try:
        await r.until(m.Hello)
        await r.send(welcome())
        renew = await r.until(m.Renew)
        assert isinstance(renew, m.Renew)
        fresh = ca.sign_csr(renew.csr.encode(), node_name="edge-1", valid_days=120)
        await r.send(m.Renewed(certificate=fresh.decode(), parent_id=renew.id))
        async with asyncio.timeout(WAIT_S):
            while (recorded := recorded_cert_not_after(tmp_path)) is None or (
                recorded < datetime.now(UTC) + timedelta(days=100)
            ):
                await asyncio.sleep(0.01)
        assert r.identity.cert_path.read_bytes() == fresh
        assert abs(recorded - cert_not_after(fresh)) < timedelta(seconds=1)
        assert json.loads(identity_file(tmp_path).read_text())["node"] == "edge-1"
    finally:
        await close_rig(r)


async def test_no_renewal_while_the_recorded_expiry_is_far(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    r = await open_rig(tmp_path, ca, valid_days=10)  # the certificate is due, but the agent
    save_identity(r.identity, datetime.now(UTC) + timedelta(days=90))  # reads only node.yaml
    try:
        await r.until(m.Hello)
        await r.send(welcome())
        await r.until(m.Heartbeat)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await r.until(m.Renew)
    finally:
        await close_rig(r)


async def test_an_older_node_yaml_gets_the_expiry_recorded(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    r = await open_rig(tmp_path, ca, valid_days=90)
    old = {"node": "edge-1", "hubUrl": r.identity.hub_url, "apiUrl": r.identity.api_url}
    identity_file(tmp_path).write_text(json.dumps(old))  # no certNotAfter
    try:
        await r.until(m.Hello)
        await r.send(welcome())
        async with asyncio.timeout(WAIT_S):
            while (recorded := recorded_cert_not_after(tmp_path)) is None:
                await asyncio.sleep(0.01)
        expected = cert_not_after(r.identity.cert_path.read_bytes())
        assert abs(recorded - expected) < timedelta(seconds=1)
    finally:
        await close_rig(r)


# --- frame sizes, log streams, renewal crashes ------------------------------------------------

SMALL_FRAMES = 64 * 1024


def configmap(name: str, rv: int) -> tuple[ResourceRef, int, dict[str, object]]:
    msg = upsert(name, rv)
    return msg.ref, msg.rv, msg.object


async def test_a_held_set_of_long_names_is_sent_in_frames_under_the_limit(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    r = await open_rig(tmp_path, ca, max_frame_bytes=SMALL_FRAMES)
    try:
        names = [f"{i:05d}-" + "n" * 240 for i in range(1000)]  # ~290 KB of refs
        await r.store.apply_batch([configmap(n, 1) for n in names], [])
        await r.until(m.Hello)
        await r.send(welcome())
        await r.send(m.Resync())
        received: list[Versioned] = []
        frames = 0
        while True:
            held = await r.until(m.Held)
            assert isinstance(held, m.Held)
            frames += 1
            received += held.items
            if held.last:
                break
        assert frames > 1 and sorted(v.ref.name for v in received) == names
        assert not r.cloud.closed  # no frame was over the limit (that closes with 1009)
    finally:
        await close_rig(r)


def write_log(tmp: Path, lines: list[str], ns: str = "default", name: str = "demo") -> Path:
    path = tmp / "apps" / ns / name / "app.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


async def read_stream(r: Rig, stream_id: str) -> list[str]:
    lines: list[str] = []
    while True:
        data = await r.until(m.LogsData)
        assert isinstance(data, m.LogsData) and data.stream_id == stream_id
        lines += data.lines
        if data.eof:
            return lines


async def test_long_log_lines_are_sent_in_frames_under_the_limit(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    r = await open_rig(tmp_path, ca, max_frame_bytes=SMALL_FRAMES)
    try:
        long_lines = [f"{i:03d}" + "\u00e9\u0001" * 8000 for i in range(40)]  # escapes, UTF-8
        write_log(tmp_path, long_lines)
        await r.until(m.Hello)
        await r.send(welcome())
        app = m.AppName(namespace="default", name="demo")
        await r.send(m.LogsRequest(stream_id="s1", app=app, tail_lines=500))
        got = await read_stream(r, "s1")
        assert len(got) == len(long_lines)
        assert all(g and line.startswith(g) for g, line in zip(got, long_lines, strict=True))
        await r.send(m.LogsRequest(stream_id="s2", app=app, tail_lines=0))
        assert await read_stream(r, "s2") == []
        assert not r.cloud.closed
    finally:
        await close_rig(r)


@pytest.mark.parametrize(
    ("namespace", "name"), [("..", ".."), ("default", "../../pki"), ("a/b", "demo"), ("", "x")]
)
async def test_a_log_request_for_a_bad_app_name_is_refused(
    tmp_path: Path, ca: CertificateAuthority, namespace: str, name: str
) -> None:
    r = await open_rig(tmp_path / "node", ca)
    write_log(tmp_path, ["outside the apps dir"], ns="x", name="y")
    try:
        await r.until(m.Hello)
        await r.send(welcome())
        req = m.LogsRequest(stream_id="s1", app=m.AppName(namespace=namespace, name=name))
        await r.send(req)
        error = await r.until(m.Error)
        assert isinstance(error, m.Error) and error.parent_id == req.id
        assert error.reason == "Invalid"
        assert r.session.logs.active == 0
    finally:
        await close_rig(r)


async def test_log_streams_end_with_their_session(tmp_path: Path, ca: CertificateAuthority) -> None:
    r = await open_rig(tmp_path, ca)
    write_log(tmp_path, ["one"])
    try:
        await r.until(m.Hello)
        await r.send(welcome())
        app = m.AppName(namespace="default", name="demo")
        await r.send(m.LogsRequest(stream_id="f1", app=app, tail_lines=10, follow=True))
        data = await r.until(m.LogsData)
        assert isinstance(data, m.LogsData) and data.lines == ("one",)
        assert r.session.logs.active == 1
    finally:
        await close_rig(r)
    assert r.session.logs.active == 0  # cancelled and awaited when run() ended


async def test_a_log_stream_whose_link_died_ends_quietly(tmp_path: Path) -> None:
    write_log(tmp_path, ["one", "two"])
    streams = LogStreams(lambda ns, name: tmp_path / "apps" / ns / name / "app.log")
    sent: list[m.Message] = []

    async def dead_link(msg: m.Message) -> None:
        sent.append(msg)
        raise LinkBroken("link closed (1006 )")

    app = m.AppName(namespace="default", name="demo")
    await streams.start(m.LogsRequest(stream_id="s1", app=app, follow=True), dead_link)
    task = next(t for t in asyncio.all_tasks() if t.get_name() == "logs-s1")
    await task  # returns, does not raise
    assert len(sent) == 1 and streams.active == 0


async def test_a_crash_during_renewal_leaves_a_matching_key_and_certificate(
    tmp_path: Path, ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    crashed: list[str] = []

    def crash_after_first_swap(src: object, dst: object) -> None:
        real_replace(src, dst)  # type: ignore[arg-type]
        if not crashed and Path(str(dst)).name in ("node.key", "node.crt"):
            crashed.append(Path(str(dst)).name)
            raise OSError("power lost")

    r = await open_rig(tmp_path, ca, valid_days=10)  # inside the 30-day renewal window
    save_identity(r.identity, datetime.now(UTC) + timedelta(days=10))
    try:
        await r.until(m.Hello)
        await r.send(welcome())
        renew = await r.until(m.Renew)
        assert isinstance(renew, m.Renew)
        fresh = ca.sign_csr(renew.csr.encode(), node_name="edge-1", valid_days=90)
        monkeypatch.setattr(os, "replace", crash_after_first_swap)
        await r.send(m.Renewed(certificate=fresh.decode(), parent_id=renew.id))
        with pytest.raises(ExceptionGroup) as info:
            await asyncio.wait_for(r.task, WAIT_S)
        assert info.group_contains(OSError) and crashed
        monkeypatch.setattr(os, "replace", real_replace)
    finally:
        await close_rig(r)
    identity = load_identity(tmp_path)  # the next start finishes the interrupted swap
    identity.ssl_context()  # raises if the key and the certificate do not belong together
    assert identity.cert_path.read_bytes() == fresh
