"""The mesh's DNS responder: service names answered from the catalog, the rest forwarded.

- ``<service>.<namespace>`` and ``<service>.<namespace>.svc.<domain>`` get an A (or AAAA)
  record pointing at the proxy address (one address for all, or one per service from a
  function), authoritative, with a short TTL so catalog changes show quickly.
- Unknown names under ``svc.<domain>`` get NXDOMAIN: the mesh owns that zone.
- Everything else is forwarded as it is to the upstream resolver (default: the first
  ``nameserver`` of /etc/resolv.conf) and its answer relayed; no answer within
  ``upstream_timeout_s``, or too many forwards in flight, gives SERVFAIL.

Hostile input: packets over ``max_packet_bytes`` and packets that are themselves responses are
dropped; a query dnslib cannot parse gets FORMERR when its header is readable, else is dropped.
Nothing a client sends may end the server.

This is the dnslib adapter: the only module that imports dnslib, and dnslib's errors do not leave
it. It must not know where the catalog's contents come from.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal, cast

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord

from edgeweave.aio.tasks import Supervisor, open_supervisor
from edgeweave.errors import ConfigError, ProtocolError
from edgeweave.mesh.catalog import Catalog, ServiceEntry

logger = logging.getLogger(__name__)

HostPort = tuple[str, int]
AddressFor = Callable[[ServiceEntry], str]

_HEADER = struct.Struct("!HHHHHH")
_QR = 0x8000
_OPCODE_MASK = 0x7800
_RD = 0x0100
_CLASSIC_UDP_BYTES = 512


def system_upstream(resolv_conf: Path = Path("/etc/resolv.conf")) -> HostPort | None:
    """The first ``nameserver`` of a resolv.conf, on port 53; None when there is none."""
    try:
        text = resolv_conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            return (fields[1], 53)
    return None


def decode_query(packet: bytes) -> DNSRecord:
    """dnslib's parse with every failure turned into ``ProtocolError``."""
    try:
        return DNSRecord.parse(packet)
    except Exception as e:  # dnslib raises DNSError, but also ValueError/UnicodeError on junk
        raise ProtocolError(f"malformed DNS packet: {e}") from e


def error_reply(packet: bytes, rcode: int) -> bytes | None:
    """A bare reply carrying ``rcode`` for a query we could not parse (None: not answerable)."""
    if len(packet) < _HEADER.size:
        return None
    query_id, flags = struct.unpack_from("!HH", packet)
    if flags & _QR:
        return None
    return _HEADER.pack(query_id, _QR | (flags & (_OPCODE_MASK | _RD)) | rcode, 0, 0, 0, 0)


class Responder:
    """Turns one query into a local answer or a verdict to forward (no sockets here)."""

    def __init__(self, catalog: Catalog, address: str | AddressFor, ttl_s: int) -> None:
        self.catalog = catalog
        self.ttl_s = ttl_s
        if isinstance(address, str):
            _check_ip(address)
            fixed = address
            self._address: AddressFor = lambda _entry: fixed
        else:
            self._address = address

    def answer(self, packet: bytes) -> bytes | None:
        """The reply to send; None means "forward this packet upstream"."""
        try:
            query = decode_query(packet)
        except ProtocolError:
            return error_reply(packet, RCODE.FORMERR)
        if query.header.qr:
            return b""  # a response sent to us: never answer (no reflection loops)
        if query.header.opcode != 0:
            return self._finish(query, query.reply(), RCODE.NOTIMP)
        if len(query.questions) != 1:
            return self._finish(query, query.reply(), RCODE.FORMERR)
        question = query.questions[0]
        name = str(question.qname)
        entry = self.catalog.lookup(name)
        if entry is None:
            if self.catalog.in_cluster_domain(name):
                return self._finish(query, query.reply(), RCODE.NXDOMAIN)
            return None
        reply = query.reply()
        try:
            ip = ipaddress.ip_address(self._address(entry))
        except ValueError:
            logger.warning("no valid proxy address for %s.%s", entry.name, entry.namespace)
            return self._finish(query, reply, RCODE.SERVFAIL)
        if question.qtype == QTYPE.A and ip.version == 4:
            reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(str(ip)), ttl=self.ttl_s))
        elif question.qtype == QTYPE.AAAA and ip.version == 6:
            reply.add_answer(RR(question.qname, QTYPE.AAAA, rdata=AAAA(str(ip)), ttl=self.ttl_s))
        return self._finish(query, reply, RCODE.NOERROR)

    def _finish(self, query: DNSRecord, reply: DNSRecord, rcode: int) -> bytes:
        reply.header.rcode = rcode
        try:
            data = bytes(reply.pack())
        except Exception as e:  # names dnslib parsed but cannot re-encode
            logger.debug("cannot encode a reply: %s", e)
            return error_reply(_header_of(query), RCODE.SERVFAIL) or b""
        if len(data) > _udp_limit(query):
            reply.rr = []
            reply.header.tc = 1
            data = bytes(reply.pack())
        return data


def _header_of(query: DNSRecord) -> bytes:
    return _HEADER.pack(query.header.id, query.header.bitmap, 0, 0, 0, 0)


def _udp_limit(query: DNSRecord) -> int:
    for rr in query.ar:
        if rr.rtype == QTYPE.OPT:
            return max(_CLASSIC_UDP_BYTES, int(rr.rclass))
    return _CLASSIC_UDP_BYTES


def _check_ip(address: str) -> None:
    try:
        ipaddress.ip_address(address)
    except ValueError as e:
        raise ConfigError(f"mesh DNS proxy address {address!r} is not an IP address") from e


class _Server(asyncio.DatagramProtocol):
    def __init__(
        self,
        responder: Responder,
        supervisor: Supervisor,
        upstream: HostPort | None,
        upstream_timeout_s: float,
        max_packet_bytes: int,
        max_forwards: int,
    ) -> None:
        self._responder = responder
        self._supervisor = supervisor
        self._upstream = upstream
        self._timeout_s = upstream_timeout_s
        self._max_bytes = max_packet_bytes
        self._max_forwards = max_forwards
        self._forwarding = 0
        self._ids = itertools.count()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) > self._max_bytes or self.transport is None:
            return
        try:
            reply = self._responder.answer(data)
        except Exception:  # a bug must cost one query, never the server
            logger.exception("DNS responder failed on a %d-byte packet", len(data))
            reply = error_reply(data, RCODE.SERVFAIL)
        if reply is None:
            if self._upstream is None:
                reply = error_reply(data, RCODE.REFUSED)
            elif self._forwarding >= self._max_forwards:
                reply = error_reply(data, RCODE.SERVFAIL)
            else:
                self._forwarding += 1
                name = f"forward-{next(self._ids)}"
                self._supervisor.start(self._forward(data, addr, self._upstream), name=name)
                return
        if reply:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("DNS socket error: %s", exc)

    async def _forward(self, data: bytes, addr: Any, upstream: HostPort) -> None:
        reply: bytes | None
        try:
            reply = await forward(data, upstream, self._timeout_s, self._max_bytes)
        except Exception as e:  # timeouts, unreachable upstream, bad address: all SERVFAIL
            logger.debug("forwarding to %s:%d failed: %r", *upstream, e)
            reply = error_reply(data, RCODE.SERVFAIL)
        finally:
            self._forwarding -= 1
        if reply and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class _UpstreamAnswer(asyncio.DatagramProtocol):
    def __init__(self, query_id: bytes, max_bytes: int) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._query_id = query_id
        self._max_bytes = max_bytes

    def datagram_received(self, data: bytes, addr: Any) -> None:
        # a stray or oversized datagram is ignored; we keep waiting for ours until the timeout
        if data[:2] == self._query_id and len(data) <= self._max_bytes and not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def forward(packet: bytes, upstream: HostPort, timeout_s: float, max_bytes: int) -> bytes:
    """Send ``packet`` to ``upstream`` from a fresh socket and return the matching answer."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _UpstreamAnswer(packet[:2], max_bytes), remote_addr=upstream
        )
        try:
            transport.sendto(packet)
            return await protocol.answer
        finally:
            transport.close()


@contextlib.asynccontextmanager
async def open_dns_server(
    catalog: Catalog,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    proxy_address: str | AddressFor = "127.0.0.1",
    upstream: HostPort | Literal["system"] | None = "system",
    upstream_timeout_s: float = 2.0,
    ttl_s: int = 5,
    max_packet_bytes: int = 4096,
    max_forwards: int = 256,
) -> AsyncIterator[HostPort]:
    """Serve DNS on ``host:port`` (UDP) until the block ends; yields the bound address.

    ``upstream=None`` answers REFUSED instead of forwarding.
    """
    responder = Responder(catalog, proxy_address, ttl_s)
    resolved = system_upstream() if upstream == "system" else upstream
    loop = asyncio.get_running_loop()
    async with open_supervisor("mesh-dns") as supervisor:
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Server(
                    responder,
                    supervisor,
                    resolved,
                    upstream_timeout_s,
                    max_packet_bytes,
                    max_forwards,
                ),
                local_addr=(host, port),
            )
        except OSError as e:
            raise ConfigError(f"mesh DNS cannot listen on {host}:{port}: {e}") from e
        try:
            sockname = transport.get_extra_info("sockname")
            yield (sockname[0], sockname[1])
        finally:
            transport.close()
