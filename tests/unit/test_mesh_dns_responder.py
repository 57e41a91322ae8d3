"""The DNS responder's decisions, without sockets: answer, NXDOMAIN, forward, malformed input."""

from __future__ import annotations

from pathlib import Path

import pytest
from dnslib import RCODE, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.errors import ConfigError, ProtocolError
from edgeweave.mesh.catalog import Catalog
from edgeweave.mesh.dns import Responder, decode_query, error_reply, system_upstream
from edgeweave.models.services import Service


def catalog() -> Catalog:
    cat = Catalog(domain="cluster.local")
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


def ask(responder: Responder, name: str, qtype: str = "A") -> DNSRecord:
    raw = responder.answer(DNSRecord.question(name, qtype).pack())
    assert raw
    return DNSRecord.parse(raw)


def test_service_names_get_an_authoritative_a_record() -> None:
    responder = Responder(catalog(), "169.254.20.10", ttl_s=5)
    for name in ("counter.default", "counter.default.svc.cluster.local"):
        reply = ask(responder, name)
        assert reply.header.rcode == RCODE.NOERROR and reply.header.aa
        assert [(str(rr.rdata), rr.ttl) for rr in reply.rr] == [("169.254.20.10", 5)]


def test_aaaa_for_a_v4_proxy_is_an_empty_answer_and_v6_proxies_get_aaaa() -> None:
    reply = ask(Responder(catalog(), "127.0.0.1", 5), "counter.default", "AAAA")
    assert reply.header.rcode == RCODE.NOERROR and reply.rr == []
    reply = ask(Responder(catalog(), "::1", 5), "counter.default", "AAAA")
    assert [str(rr.rdata) for rr in reply.rr] == ["::1"]


def test_per_service_addresses_come_from_the_function() -> None:
    responder = Responder(catalog(), lambda entry: f"127.0.{len(entry.name)}.1", 5)
    assert str(ask(responder, "counter.default").rr[0].rdata) == "127.0.7.1"
    broken = Responder(catalog(), lambda entry: "not-an-ip", 5)
    assert ask(broken, "counter.default").header.rcode == RCODE.SERVFAIL


def test_unknown_cluster_names_are_nxdomain_and_others_are_forwarded() -> None:
    responder = Responder(catalog(), "127.0.0.1", 5)
    assert ask(responder, "nope.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
    assert responder.answer(DNSRecord.question("example.com").pack()) is None
    assert responder.answer(DNSRecord.question("nope.default").pack()) is None


def test_responses_and_other_opcodes_are_not_answered_normally() -> None:
    responder = Responder(catalog(), "127.0.0.1", 5)
    response = DNSRecord.question("counter.default").reply()
    assert responder.answer(response.pack()) == b""
    notify = DNSRecord.question("counter.default")
    notify.header.opcode = 4
    assert DNSRecord.parse(responder.answer(notify.pack()) or b"").header.rcode == RCODE.NOTIMP


def test_malformed_packets_get_formerr_or_nothing() -> None:
    responder = Responder(catalog(), "127.0.0.1", 5)
    assert responder.answer(b"\x12") is None or responder.answer(b"\x12") == b""
    junk = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff"
    reply = DNSRecord.parse(responder.answer(junk) or b"")
    assert reply.header.id == 0xABCD and reply.header.rcode == RCODE.FORMERR
    with pytest.raises(ProtocolError):
        decode_query(junk)
    assert error_reply(b"short", RCODE.FORMERR) is None


def test_bad_proxy_address_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not an IP address"):
        Responder(catalog(), "localhost", 5)


def test_system_upstream_reads_the_first_nameserver(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch lan\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n")
    assert system_upstream(conf) == ("192.0.2.53", 53)
    conf.write_text("search lan\n")
    assert system_upstream(conf) is None
    assert system_upstream(tmp_path / "missing") is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    out = Responder(catalog(), "127.0.0.1", 5).answer(data)
    assert out is None or isinstance(out, bytes)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 60))
def test_mutated_queries_never_raise(noise: bytes, at: int) -> None:
    base = bytearray(DNSRecord.question("counter.default", "A").pack())
    base[at % len(base) : at % len(base) + len(noise)] = noise
    out = Responder(catalog(), "127.0.0.1", 5).answer(bytes(base))
    assert out is None or isinstance(out, bytes)
