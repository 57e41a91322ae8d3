"""The mesh relay end to end on loopback: the real hub (TLS, websockets, SQLite store) between
the agent's relay client (consumer) and relay target, each with its own node certificate.

The target node's link is a bare websockets client speaking the protocol, handing
``relay_open`` to the real :class:`RelayTarget`, as the agent's link does. Checks the bytes
(both ways, with a half-close), who may open streams, and what a consumer hears when a stream
cannot be opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from edgeweave.aio.tasks import Supervisor, open_supervisor
from edgeweave.cloud.hub import Hub, HubDeps, HubSettings, open_hub
from edgeweave.cloud.pki import CertificateAuthority
from edgeweave.cloud.store.base import CloudStore
from edgeweave.cloud.store.factory import open_store
from edgeweave.edge.mesh.relay import RelayClient, RelayTarget
from edgeweave.edge.mesh.serve import relay_url
from edgeweave.errors import Forbidden, LinkError, NotFound
from edgeweave.mesh.catalog import Endpoint, ServicePortRef
from edgeweave.protocol import codec
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import held_digest
from edgeweave.transport.certs import generate_key_and_csr, ssl_client_context
from edgeweave.transport.ws import WsOptions

WAIT_S = 10.0
PORT = 80
REF = ServicePortRef("default", "web", PORT)


@dataclass
class Env:
    tmp: Path
    store: CloudStore
    ca: CertificateAuthority
    hub: Hub
    supervisor: Supervisor
    echo_port: int

    def ssl_for(self, node: str) -> Callable[[], ssl.SSLContext]:
        key_pem, csr = generate_key_and_csr(node)
        d = self.tmp / "nodes" / node
        d.mkdir(parents=True, exist_ok=True)
        (d / "node.key").write_bytes(key_pem)
        (d / "node.crt").write_bytes(self.ca.sign_csr(csr, node_name=node))
        ctx = ssl_client_context(
            self.ca.cert_pem, cert_path=d / "node.crt", key_path=d / "node.key"
        )
        return lambda: ctx

    def start(self, coro: Any, name: str) -> None:
        self.supervisor.start(coro, name=name)

    def client(self, node: str, timeout_s: float = WAIT_S) -> RelayClient:
        url = relay_url(self.hub.url)
        return RelayClient(
            url, self.ssl_for(node), WsOptions(), self.start, open_timeout_s=timeout_s
        )


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echoes until EOF, then says ``bye`` and closes: a half-close must arrive."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write(b"bye")
    await writer.drain()
    writer.close()


def obj(kind: str, name: str, namespace: str = "default", **fields: Any) -> dict[str, Any]:
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": "edgeweave.io/v1", "kind": kind, "metadata": meta, **fields}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = await open_store("", tmp_path)
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    cert, key = ca.issue_server_cert(tmp_path / "pki", hosts=["127.0.0.1"])
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    echo_port = server.sockets[0].getsockname()[1]
    for node in ("consumer", "target", "stranger"):
        await store.create(obj("Node", node, namespace="", spec={}))
    run = {"lifecycle": {"run": ["python3", "x.py"]}}
    await store.create(obj("App", "web", spec={"nodeNames": ["target"], **run}))
    await store.create(obj("App", "client", spec={"nodeNames": ["consumer"], **run}))
    await store.create(
        obj("Service", "web", spec={"selector": {"app": "web"}, "ports": [{"port": PORT}]})
    )
    endpoint = {"node": "target", "app": "web", "address": "", "ready": True}
    ports = [{"port": PORT, "targetPort": echo_port}]
    await store.create(obj("Endpoints", "web", endpoints=[{**endpoint, "ports": ports}]))
    deps = HubDeps(
        store=store,
        ca=ca,
        server_cert=cert,
        server_key=key,
        settings=HubSettings(
            relay_open_timeout_s=2.0, relay_max_streams_per_node=2, lifecycle_sweep_s=3600
        ),
    )
    try:
        async with open_hub(deps) as hub, open_supervisor("test-relay") as supervisor:
            yield Env(tmp_path, store, ca, hub, supervisor, echo_port)
    finally:
        server.close()
        await server.wait_closed()
        await store.aclose()


@contextlib.asynccontextmanager
async def target_link(env: Env, answer: bool = True) -> AsyncIterator[RelayTarget]:
    """The target node's link: hello, then every ``relay_open`` to a real RelayTarget (or,
    with ``answer=False``, to nobody)."""
    target = RelayTarget(
        relay_url(env.hub.url),
        env.ssl_for("target"),
        WsOptions(),
        env.start,
        local_host="127.0.0.1",
        allowed=lambda msg: None,
        connect_timeout_s=WAIT_S,
    )
    async with connect(env.hub.url, ssl=env.ssl_for("target")(), compression=None) as ws:

        async def reply(msg: m.Message) -> None:
            await ws.send(codec.encode(msg))

        hello = m.Hello(
            agent_version="t",
            boot_id="b",
            held_count=0,
            held_digest=held_digest([]),
            capacity=m.Capacity(cpu=1, memory_bytes=1),
        )
        await reply(hello)

        async def receive() -> None:
            async for frame in ws:
                msg = codec.decode(frame, direction="down")
                if isinstance(msg, m.RelayOpen) and answer:
                    target.on_open(msg, reply)

        task = asyncio.create_task(receive(), name="target-link")
        try:
            async with asyncio.timeout(WAIT_S):
                while "target" not in env.hub.sessions:
                    await asyncio.sleep(0.01)
            yield target
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def endpoint(target_port: int) -> Endpoint:
    return Endpoint("target", "", target_port)


async def test_relay_carries_bytes_both_ways_and_passes_on_a_half_close(env: Env) -> None:
    async with target_link(env):
        reader, writer = await env.client("consumer").open(REF, endpoint(env.echo_port))
        payload = bytes(range(256)) * 4096  # 1 MiB
        writer.write(payload)
        writer.write_eof()
        async with asyncio.timeout(WAIT_S):
            got = await reader.read()
        writer.close()
        await writer.wait_closed()
    assert got == payload + b"bye"
    stats = env.hub.statistics()
    assert stats["relay_streams_opened"] == 1
    assert stats["relay_bytes"] >= 2 * len(payload)


async def test_a_node_that_does_not_receive_the_service_may_not_open_streams_to_it(
    env: Env,
) -> None:
    async with target_link(env):
        with pytest.raises(Forbidden, match="4403"):
            await env.client("stranger").open(REF, endpoint(env.echo_port))
        with pytest.raises(NotFound, match="no endpoint on node target for port 80"):
            await env.client("consumer").open(REF, endpoint(22))  # not a listed endpoint
    assert env.hub.statistics()["relay_streams_refused"] == 2


async def test_the_targets_refusal_and_silence_reach_the_consumer_with_a_reason(env: Env) -> None:
    with pytest.raises(LinkError, match="not connected") as info:
        await env.client("consumer").open(REF, endpoint(env.echo_port))
    assert info.value.close_code == 1013
    await env.store.update(
        obj(
            "Endpoints",
            "web",
            endpoints=[
                {
                    "node": "target",
                    "app": "web",
                    "ready": True,
                    "ports": [
                        {"port": PORT, "targetPort": env.echo_port},
                        {"port": 81, "targetPort": 1},
                    ],
                }
            ],
        )
    )
    closed_port = ServicePortRef("default", "web", 81)
    async with target_link(env) as target:
        async with asyncio.timeout(WAIT_S):  # the hub's index has the new Endpoints
            while True:
                try:
                    await env.client("consumer").open(closed_port, endpoint(1))
                except NotFound:
                    await asyncio.sleep(0.01)
                    continue
                except LinkError as e:
                    assert e.close_code == 4502 and "cannot connect to the app" in e.message
                    break
        assert target.refused == 1
    async with target_link(env, answer=False):
        with pytest.raises(LinkError, match="did not open the stream in time"):
            await env.client("consumer").open(REF, endpoint(env.echo_port))


async def test_one_node_may_hold_only_its_share_of_the_relay(env: Env) -> None:
    async with target_link(env):
        client = env.client("consumer")
        held = [await client.open(REF, endpoint(env.echo_port)) for _ in range(2)]
        with pytest.raises(LinkError, match="2 relayed streams already") as info:
            await client.open(REF, endpoint(env.echo_port))
        assert info.value.close_code == 1013
        for _, writer in held:
            writer.close()
            await writer.wait_closed()
        async with asyncio.timeout(WAIT_S):  # the hub sees them end, then takes a new one
            while True:
                try:
                    reader, writer = await client.open(REF, endpoint(env.echo_port))
                    break
                except LinkError:
                    await asyncio.sleep(0.01)
        writer.write_eof()
        async with asyncio.timeout(WAIT_S):
            assert await reader.read() == b"bye"
        writer.close()
        await writer.wait_closed()
