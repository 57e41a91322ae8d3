"""The cloud CA, server and node certificates, and the shared TLS helpers (no sockets)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from edgeweave.cloud.pki import CertificateAuthority
from edgeweave.errors import ConfigError, Forbidden, InvalidObject, Unauthorized
from edgeweave.transport.certs import (
    cert_fingerprint,
    cert_not_after,
    generate_key_and_csr,
    needs_rotation,
    ssl_client_context,
    ssl_server_context,
    verify_ca_pin,
    write_file_atomic,
)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "ca")


def node_cert(ca: CertificateAuthority, name: str = "edge-1") -> tuple[bytes, bytes]:
    key_pem, csr_pem = generate_key_and_csr(name)
    return key_pem, ca.sign_csr(csr_pem, node_name=name)


def test_loading_the_ca_again_gives_the_same_fingerprint(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path)
    again = CertificateAuthority.load_or_create(tmp_path, common_name="ignored")
    assert again.fingerprint == first.fingerprint
    assert again.cert_pem == first.cert_pem
    assert first.fingerprint.startswith("sha256:") and len(first.fingerprint) == 7 + 64
    assert first.fingerprint == cert_fingerprint((tmp_path / "ca.crt").read_bytes())


def test_the_ca_key_file_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path)
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600


def test_the_ca_certificate_is_a_ca_with_the_given_name(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path, common_name="my-ca", valid_days=10)
    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "my-ca"
    assert timedelta(days=9) < ca.not_after - datetime.now(UTC) <= timedelta(days=10)


def test_a_ca_directory_with_only_one_of_the_two_files_is_a_config_error(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path)
    (tmp_path / "ca.key").unlink()
    with pytest.raises(ConfigError, match="incomplete"):
        CertificateAuthority.load_or_create(tmp_path)


def test_a_ca_key_that_does_not_match_the_certificate_is_a_config_error(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path / "a")
    CertificateAuthority.load_or_create(tmp_path / "b")
    (tmp_path / "a" / "ca.key").write_bytes((tmp_path / "b" / "ca.key").read_bytes())
    with pytest.raises(ConfigError, match="does not match"):
        CertificateAuthority.load_or_create(tmp_path / "a")


def test_the_server_certificate_covers_the_hosts_and_the_loopback_names(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert_path, key_path = ca.issue_server_cert(
        tmp_path, hosts=["cloud.example.com", "10.0.0.7", "[fd00::1]"]
    )
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName))
    ips = set(san.get_values_for_type(x509.IPAddress))
    assert {"cloud.example.com", "localhost"} <= names
    assert socket.gethostname().lower() in names
    assert {ipaddress.ip_address(a) for a in ("10.0.0.7", "fd00::1", "127.0.0.1", "::1")} <= ips
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_the_server_certificate_verifies_against_the_ca(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert_path, _ = ca.issue_server_cert(tmp_path, hosts=["cloud.example.com"])
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    root = x509.load_pem_x509_certificate(ca.cert_pem)
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(datetime.now(UTC))
        .build_server_verifier(x509.DNSName("cloud.example.com"))
    )
    chain = verifier.verify(leaf, [])
    assert chain[-1] == root
    ip_verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    )
    ip_verifier.verify(leaf, [])


def test_the_server_certificate_is_reused_while_it_still_fits(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert_path, _ = ca.issue_server_cert(tmp_path, hosts=["a.example"])
    first = cert_path.read_bytes()
    ca.issue_server_cert(tmp_path, hosts=["A.example."])
    assert cert_path.read_bytes() == first
    ca.issue_server_cert(tmp_path, hosts=["a.example", "b.example"])
    assert cert_path.read_bytes() != first


def test_the_server_certificate_is_reissued_when_it_nears_expiry(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert_path, _ = ca.issue_server_cert(tmp_path, hosts=[], valid_days=20)
    first = cert_path.read_bytes()
    ca.issue_server_cert(tmp_path, hosts=[])
    assert cert_path.read_bytes() != first
    assert cert_not_after(cert_path.read_bytes()) - datetime.now(UTC) > timedelta(days=300)


def test_a_server_certificate_from_another_ca_is_replaced(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    other = CertificateAuthority.load_or_create(tmp_path / "other")
    cert_path, _ = other.issue_server_cert(tmp_path / "srv", hosts=[])
    ca.issue_server_cert(tmp_path / "srv", hosts=[])
    assert cert_fingerprint(cert_path.read_bytes()) != ""
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))


def test_bad_host_names_are_invalid(ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(InvalidObject):
        ca.issue_server_cert(tmp_path, hosts=["not a host!"])


def test_a_csr_with_the_node_name_gets_a_client_certificate(ca: CertificateAuthority) -> None:
    _, cert_pem = node_cert(ca, "edge-1")
    cert = x509.load_pem_x509_certificate(cert_pem)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "edge-1"
    assert ca.verify_client_cert(cert_pem) == "edge-1"


def test_serial_numbers_are_random(ca: CertificateAuthority) -> None:
    a = x509.load_pem_x509_certificate(node_cert(ca)[1]).serial_number
    b = x509.load_pem_x509_certificate(node_cert(ca)[1]).serial_number
    assert a != b and a.bit_length() > 64


def test_a_csr_for_another_node_name_is_forbidden(ca: CertificateAuthority) -> None:
    _, csr_pem = generate_key_and_csr("edge-2")
    with pytest.raises(Forbidden, match="CN=edge-1"):
        ca.sign_csr(csr_pem, node_name="edge-1")


def test_garbage_instead_of_a_csr_is_invalid(ca: CertificateAuthority) -> None:
    with pytest.raises(InvalidObject, match="certificate signing request"):
        ca.sign_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nxx\n", node_name="edge-1")


def test_a_client_certificate_from_another_ca_is_unauthorized(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    # same CA name, different key: only the signature tells them apart
    other = CertificateAuthority.load_or_create(tmp_path / "other")
    _, cert_pem = node_cert(other)
    with pytest.raises(Unauthorized, match="not issued by"):
        ca.verify_client_cert(cert_pem)


def test_an_expired_client_certificate_is_unauthorized(tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=200)
    old_ca = CertificateAuthority.load_or_create(tmp_path, clock=lambda: past)
    _, cert_pem = node_cert(old_ca)
    assert old_ca.verify_client_cert(cert_pem) == "edge-1"  # fine back then
    with pytest.raises(Unauthorized, match="expired"):
        CertificateAuthority.load_or_create(tmp_path).verify_client_cert(cert_pem)


def test_a_server_certificate_is_not_accepted_as_a_client_certificate(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert_path, _ = ca.issue_server_cert(tmp_path, hosts=[])
    with pytest.raises(Unauthorized, match="client authentication"):
        ca.verify_client_cert(cert_path.read_bytes())


def test_garbage_instead_of_a_client_certificate_is_unauthorized(ca: CertificateAuthority) -> None:
    with pytest.raises(Unauthorized):
        ca.verify_client_cert(b"hello")


def test_rotation_is_due_only_near_the_end_of_validity(ca: CertificateAuthority) -> None:
    _, cert_pem = node_cert(ca)  # 90 days
    now = datetime.now(UTC)
    assert not needs_rotation(cert_pem, before=timedelta(days=30))
    assert needs_rotation(cert_pem, before=timedelta(days=91))
    assert needs_rotation(cert_pem, before=timedelta(days=30), now=now + timedelta(days=61))
    assert abs(cert_not_after(cert_pem) - (now + timedelta(days=90))) < timedelta(minutes=1)


def test_a_client_certificate_never_outlives_the_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path, valid_days=10)
    _, cert_pem = node_cert(ca)
    assert cert_not_after(cert_pem) <= ca.not_after


def test_the_edge_accepts_the_pinned_ca_and_refuses_another(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    verify_ca_pin(ca.cert_pem, ca.fingerprint)
    other = CertificateAuthority.load_or_create(tmp_path / "other")
    with pytest.raises(Unauthorized, match="does not match"):
        verify_ca_pin(other.cert_pem, ca.fingerprint)
    with pytest.raises(Unauthorized):
        verify_ca_pin(b"not pem", ca.fingerprint)


def test_exclusive_writes_keep_the_first_file(tmp_path: Path) -> None:
    assert write_file_atomic(tmp_path / "f", b"one", exclusive=True)
    assert not write_file_atomic(tmp_path / "f", b"two", exclusive=True)
    assert (tmp_path / "f").read_bytes() == b"one"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, host: str) -> ssl.SSLObject:
    """Run a TLS handshake over memory buffers (no sockets); return the server side."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for name, obj in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return s
    raise AssertionError("handshake did not finish")


def test_tls_contexts_complete_a_mutual_handshake_in_memory(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert_path, key_path = ca.issue_server_cert(tmp_path, hosts=["cloud.example.com"])
    key_pem, node_pem = node_cert(ca, "edge-7")
    write_file_atomic(tmp_path / "node.key", key_pem)
    write_file_atomic(tmp_path / "node.crt", node_pem)
    server = ssl_server_context(
        cert_path, key_path, client_ca_pem=ca.cert_pem, require_client_cert=True
    )
    client = ssl_client_context(
        ca.cert_pem, cert_path=tmp_path / "node.crt", key_path=tmp_path / "node.key"
    )
    s = _handshake(client, server, "cloud.example.com")
    peer = s.getpeercert(binary_form=True)
    assert peer is not None
    der = x509.load_der_x509_certificate(peer)
    # the hub names the node from the certificate the handshake presented
    assert ca.verify_client_cert(der.public_bytes(Encoding.PEM)) == "edge-7"


def test_a_client_trusting_another_ca_refuses_the_server(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert_path, key_path = ca.issue_server_cert(tmp_path, hosts=[])
    other = CertificateAuthority.load_or_create(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(
            ssl_client_context(other.cert_pem), ssl_server_context(cert_path, key_path), "localhost"
        )


def test_tls_context_builders_report_bad_material_as_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ssl_client_context(b"not a cert")
    with pytest.raises(ConfigError):
        ssl_server_context(tmp_path / "missing.crt", tmp_path / "missing.key")
    with pytest.raises(ConfigError):
        ssl_client_context(b"", cert_path=tmp_path / "x.crt")
