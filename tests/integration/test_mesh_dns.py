"""The mesh DNS server over real UDP on loopback, with dnslib as the client."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from edgeweave.mesh.catalog import Catalog
from edgeweave.mesh.dns import open_dns_server
from edgeweave.models.services import Service

TIMEOUT_S = 5.0


def catalog() -> Catalog:
    cat = Catalog()
    cat.apply_service(
        Service.model_validate(
            {
                "apiVersion": "edgeweave.io/v1",
                "kind": "Service",
                "metadata": {"name": "counter", "namespace": "default"},
                "spec": {"selector": {"app": "c"}, "ports": [{"port": 80}]},
            }
        )
    )
    return cat


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)


@contextlib.asynccontextmanager
async def udp_client(server: tuple[str, int]) -> AsyncIterator[tuple[Any, _Client]]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        _Client, remote_addr=server
    )
    try:
        yield transport, protocol
    finally:
        transport.close()


async def query(server: tuple[str, int], name: str, qtype: str = "A") -> DNSRecord:
    """A real query from dnslib's own client (blocking, so on a thread)."""
    raw = await asyncio.to_thread(
        DNSRecord.question(name, qtype).send, server[0], server[1], timeout=TIMEOUT_S
    )
    return DNSRecord.parse(raw)


class _FakeUpstream(asyncio.DatagramProtocol):
    """Answers every A query with 192.0.2.99 — or nothing at all when ``silent``."""

    def __init__(self, silent: bool = False) -> None:
        self.silent = silent
        self.seen: list[str] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        q = DNSRecord.parse(data)
        self.seen.append(str(q.q.qname))
        if self.silent:
            return
        reply = q.reply(aa=0)
        reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("192.0.2.99"), ttl=30))
        self.transport.sendto(reply.pack(), addr)


@contextlib.asynccontextmanager
async def fake_upstream(
    silent: bool = False,
) -> AsyncIterator[tuple[tuple[str, int], _FakeUpstream]]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _FakeUpstream(silent), local_addr=("127.0.0.1", 0)
    )
    try:
        yield transport.get_extra_info("sockname")[:2], protocol
    finally:
        transport.close()


async def test_service_name_resolves_to_the_proxy_address() -> None:
    async with open_dns_server(catalog(), upstream=None, proxy_address="127.0.0.9") as addr:
        assert addr[0] == "127.0.0.1" and addr[1] > 0
        for name in ("counter.default", "counter.default.svc.cluster.local"):
            reply = await query(addr, name)
            assert reply.header.rcode == RCODE.NOERROR
            assert [str(rr.rdata) for rr in reply.rr] == ["127.0.0.9"]


async def test_unknown_cluster_name_is_nxdomain() -> None:
    async with open_dns_server(catalog(), upstream=None) as addr:
        reply = await query(addr, "missing.default.svc.cluster.local")
        assert reply.header.rcode == RCODE.NXDOMAIN and reply.rr == []


async def test_catalog_changes_show_in_the_next_answer() -> None:
    cat = catalog()
    async with open_dns_server(cat, upstream=None) as addr:
        assert (await query(addr, "counter.default.svc.cluster.local")).rr
        cat.delete_service("default", "counter")
        reply = await query(addr, "counter.default.svc.cluster.local")
        assert reply.header.rcode == RCODE.NXDOMAIN


async def test_other_names_are_forwarded_to_the_upstream() -> None:
    async with (
        fake_upstream() as (upstream, fake),
        open_dns_server(catalog(), upstream=upstream) as addr,
    ):
        reply = await query(addr, "example.com")
        assert reply.header.rcode == RCODE.NOERROR
        assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.99"]
        assert fake.seen == ["example.com."]
        await query(addr, "counter.default")
        assert fake.seen == ["example.com."]  # mesh names never leave the node


async def test_a_silent_upstream_gives_servfail_after_the_timeout() -> None:
    async with (
        fake_upstream(silent=True) as (upstream, _),
        open_dns_server(catalog(), upstream=upstream, upstream_timeout_s=0.2) as addr,
    ):
        reply = await query(addr, "example.com")
        assert reply.header.rcode == RCODE.SERVFAIL


async def test_without_an_upstream_other_names_are_refused() -> None:
    async with open_dns_server(catalog(), upstream=None) as addr:
        assert (await query(addr, "example.com")).header.rcode == RCODE.REFUSED


async def test_malformed_packets_are_answered_or_dropped_and_the_server_stays_up() -> None:
    rng = random.Random(6)
    valid = bytes(DNSRecord.question("counter.default").pack())
    junk: list[bytes] = [b"", b"\x00", b"\xff" * 11, b"\x00" * 5000, valid[:15]]
    for _ in range(200):
        packet = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        junk.append(bytes(packet))
    junk += [rng.randbytes(rng.randint(1, 600)) for _ in range(200)]
    async with open_dns_server(catalog(), upstream=None, max_packet_bytes=1024) as addr:
        async with udp_client(addr) as (transport, client):
            # in small batches, each followed by a probe, so loopback buffers never overflow
            for batch, start in enumerate(range(0, len(junk), 20), start=1):
                for sent in junk[start : start + 20]:
                    transport.sendto(sent)
                reply = await probe(transport, client, probe_id=60000 + batch)
                assert reply.header.rcode == RCODE.NOERROR and reply.rr
        assert (await query(addr, "counter.default")).rr


async def probe(transport: Any, client: _Client, probe_id: int) -> DNSRecord:
    """Send a valid query and skip every other reply until its answer arrives."""
    question = DNSRecord.question("counter.default")
    question.header.id = probe_id
    transport.sendto(question.pack())
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            raw = await client.replies.get()
            assert len(raw) <= 1024
            if raw[:2] == probe_id.to_bytes(2, "big") and raw[2] & 0x80:
                reply = DNSRecord.parse(raw)
                if str(reply.q.qname) == "counter.default.":
                    return reply


async def test_oversized_packets_are_dropped() -> None:
    async with open_dns_server(catalog(), upstream=None, max_packet_bytes=512) as addr:
        async with udp_client(addr) as (transport, client):
            big = DNSRecord.question("counter.default")
            big.header.id = 1
            transport.sendto(big.pack() + b"\x00" * 600)
            probe = DNSRecord.question("counter.default")
            probe.header.id = 2
            transport.sendto(probe.pack())
            async with asyncio.timeout(TIMEOUT_S):
                first = DNSRecord.parse(await client.replies.get())
        assert first.header.id == 2
