"""The agent's mesh host on loopback, fed from a real local store, with no cloud at all.

What a node can do on its own (DESIGN.md §4): answer service names, proxy to endpoints on this
node and to reachable ones elsewhere, give apps their environment, follow store changes, and
move on from an endpoint it cannot reach when the relay (the cloud) is not there either.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dnslib import RCODE, DNSRecord

from edgeweave.config.edge import MeshSettings
from edgeweave.edge.mesh import MeshHost, open_mesh_host
from edgeweave.edge.store import EdgeStore, open_edge_store
from edgeweave.mesh.dns import forward
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import ResourceRef
from edgeweave.transport.ws import WsOptions

WAIT_S = 10.0
SERVICE_PORT = 18080


class Backend:
    """Answers every connection with its name, then closes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.name.encode())
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> Backend:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def service_obj(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
        },
    }


def endpoints_obj(*entries: tuple[str, str, int], name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": "default"},
        "endpoints": [
            {
                "node": node,
                "app": name,
                "address": address,
                "ready": True,
                "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": port}],
            }
            for node, address, port in entries
        ],
    }


class Rig:
    def __init__(self, store: EdgeStore, host: MeshHost, reported: list[dict[str, str]]) -> None:
        self.store = store
        self.host = host
        self.reported = reported
        self.rv = 0

    async def put(self, *objects: dict[str, Any]) -> None:
        upserts = []
        for obj in objects:
            self.rv += 1
            upserts.append((ResourceRef.of(obj), self.rv, obj))
        await self.store.apply_batch(upserts, [])
        await self.host.refresh()

    async def delete(self, kind: str, name: str) -> None:
        self.rv += 1
        from edgeweave.protocol.refs import Versioned

        await self.store.apply_batch([], [Versioned(ResourceRef(kind, "default", name), self.rv)])
        await self.host.refresh()

    async def dns(self, name: str, qtype: str = "A") -> DNSRecord:
        assert self.host.dns_address is not None
        query = DNSRecord.question(name, qtype).pack()
        return DNSRecord.parse(await forward(query, self.host.dns_address, WAIT_S, 4096))

    def listen(self, name: str = "web") -> tuple[str, int]:
        assert self.host.listeners is not None
        from edgeweave.mesh.catalog import ServicePortRef

        bound = self.host.listeners.address_of(ServicePortRef("default", name, SERVICE_PORT))
        assert bound is not None
        return bound


async def call(address: tuple[str, int]) -> str:
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection(*address)
        try:
            return (await reader.read()).decode()
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = await open_edge_store(tmp_path / "state.db", secret_key=b"k" * 32)
    reported: list[dict[str, str]] = []
    settings = MeshSettings(
        dns_listen="127.0.0.1:0",
        dns_upstream="none",
        service_cidr="127.121.0.0/24",
        direct_connect_timeout_s=0.5,
        relay_open_timeout_s=1.0,
    )
    try:
        async with open_mesh_host(
            settings,
            "me",
            store,
            hub_url="wss://127.0.0.1:9/link",  # no cloud: the relay cannot open
            ssl_context=ssl.create_default_context,
            ws_options=WsOptions(open_timeout_s=1.0),
            report_paths=lambda paths: reported.append(dict(paths)),
            on_status=lambda status: None,
        ) as (host, _target):
            yield Rig(store, host, reported)
    finally:
        await store.aclose()


async def test_names_resolve_to_the_service_address_and_connections_spread_over_endpoints(
    rig: Rig,
) -> None:
    async with Backend("one") as one, Backend("two") as two:
        await rig.put(
            service_obj(), endpoints_obj(("me", "10.9.9.9", one.port), ("me", "", two.port))
        )
        address = rig.host.pool.address_of("default", "web")
        assert address is not None and address.startswith("127.121.0.")
        for name in ("web.default", "WEB.default.", "web.default.svc.cluster.local"):
            answer = await rig.dns(name)
            assert [str(rr.rdata) for rr in answer.rr] == [address]
        assert (await rig.dns("nope.default.svc.cluster.local")).header.rcode == RCODE.NXDOMAIN
        assert (await rig.dns("web.default", "AAAA")).rr == []  # an IPv4 service: no AAAA answer

        assert rig.listen() == (address, SERVICE_PORT)
        answers = [await call(rig.listen()) for _ in range(6)]
        assert sorted(answers) == ["one"] * 3 + ["two"] * 3  # local endpoints: the local host

        env = rig.host.app_env("default")
        assert env["EDGEWEAVE_SERVICE_WEB"] == f"{address}:{SERVICE_PORT}"
        assert env["EDGEWEAVE_SERVICE_WEB_HTTP"] == f"{address}:{SERVICE_PORT}"
        assert rig.host.dns_address is not None
        assert env["EDGEWEAVE_DNS"] == f"127.0.0.1:{rig.host.dns_address[1]}"
        assert "EDGEWEAVE_SERVICE_WEB" not in rig.host.app_env("other")


async def test_store_changes_start_and_stop_listeners(rig: Rig) -> None:
    async with Backend("one") as one, Backend("api") as api:
        await rig.put(service_obj(), endpoints_obj(("me", "", one.port)))
        await rig.put(service_obj("api"), endpoints_obj(("me", "", api.port), name="api"))
        assert await call(rig.listen("api")) == "api"
        web = rig.listen("web")
        assert web[0] != rig.listen("api")[0]  # same port, each service its own address

        await rig.delete("Service", "web")
        with pytest.raises(OSError):
            await call(web)
        assert (await rig.dns("web.default.svc.cluster.local")).header.rcode == RCODE.NXDOMAIN
        assert await call(rig.listen("api")) == "api"


async def test_an_endpoint_nobody_reaches_without_the_cloud_is_passed_over(rig: Rig) -> None:
    async with Backend("here") as here:
        with socket.socket() as closed:  # a port that refuses: bound, never listening
            closed.bind(("127.0.0.1", 0))
            far_port = closed.getsockname()[1]
            await rig.put(
                service_obj(), endpoints_obj(("far", "127.0.0.1", far_port), ("me", "", here.port))
            )
            answers = {await call(rig.listen()) for _ in range(4)}
        assert answers == {"here"}
        assert rig.host.paths.by_node() == {"far": "relay"}
        assert rig.reported[-1] == {"far": "relay"}
        status = rig.host.status()
        paths = {e["node"]: e["path"] for e in status["services"][0]["ports"][0]["endpoints"]}
        assert paths == {"far": "relay", "me": "local"}


async def test_a_taken_port_falls_back_to_a_free_one_that_env_and_status_name(rig: Rig) -> None:
    address = rig.host.pool.allocate("default", "web")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((address, SERVICE_PORT))
        squatter.listen()
        async with Backend("one") as one:
            await rig.put(service_obj(), endpoints_obj(("me", "", one.port)))
            bound = rig.listen()
            assert bound[0] == address and bound[1] != SERVICE_PORT
            assert rig.host.app_env("default")["EDGEWEAVE_SERVICE_WEB"] == f"{address}:{bound[1]}"
            assert await call(bound) == "one"


async def test_relayed_streams_may_reach_only_this_nodes_own_endpoint_ports(rig: Rig) -> None:
    await rig.put(service_obj(), endpoints_obj(("me", "", 8080), ("other", "10.0.0.2", 8081)))

    def ask(port: int, target: int, name: str = "web") -> str | None:
        service = m.AppName(namespace="default", name=name)
        msg = m.RelayOpen(stream_id="s", service=service, port=port, target_port=target)
        return rig.host.relay_allowed(msg)

    assert ask(SERVICE_PORT, 8080) is None
    assert "not an endpoint" in (ask(SERVICE_PORT, 8081) or "")  # another node's
    assert "not an endpoint" in (ask(SERVICE_PORT, 22) or "")
    assert "does not know" in (ask(80, 8080) or "")
    assert "does not know" in (ask(SERVICE_PORT, 8080, "db") or "")
