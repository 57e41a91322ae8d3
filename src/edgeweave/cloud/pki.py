"""The cloud's certificate authority: CA, server certificate, node client certificates.

The CA is created once in the cloud's data directory (``ca.crt``, ``ca.key`` with mode 0600;
creating again keeps the first) and its fingerprint is the pin a join token carries. It
signs the hub's server certificate and, at join and rotation, each node's client
certificate (``CN`` = node name, clientAuth), and it checks the certificates nodes present.

This is the adapter module for ``cryptography`` on the cloud side: its errors become
:mod:`edgeweave.errors` types here. It must not open sockets, keep a revocation list, or
decide who may join (that is the token's job, see :mod:`edgeweave.cloud.tokens`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeweave.errors import ConfigError, Forbidden, InvalidObject, Unauthorized
from edgeweave.transport.certs import cert_fingerprint, load_certificate, write_file_atomic

Clock = Callable[[], datetime]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NodePublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
SERVER_CERT_FILE = "server.crt"
SERVER_KEY_FILE = "server.key"
DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")

CERT_BACKDATE_S = 300  # certificates start this early: small clock skew between cloud and nodes
_BACKDATE = timedelta(seconds=CERT_BACKDATE_S)
_DNS_NAME = re.compile(
    r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_ec_key(pem: bytes, path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path} is not an unencrypted PEM private key") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} is not an ECDSA private key")
    return key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e}") from e


class CertificateAuthority:
    """The cluster CA; build it with :meth:`load_or_create` (or :meth:`from_pem`)."""

    def __init__(
        self,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        *,
        clock: Clock = _utcnow,
    ) -> None:
        if _public_der(key.public_key()) != cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise ConfigError("the CA private key does not match the CA certificate")
        self._cert = cert
        self._key = key
        self._clock = clock
        self._cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._fingerprint = cert_fingerprint(self._cert_pem)

    @classmethod
    def from_pem(
        cls, cert_pem: bytes, key_pem: bytes, *, clock: Clock = _utcnow
    ) -> CertificateAuthority:
        try:
            cert = load_certificate(cert_pem)
        except InvalidObject as e:
            raise ConfigError("the CA certificate is not PEM") from e
        return cls(cert, _load_ec_key(key_pem, Path(CA_KEY_FILE)), clock=clock)

    @classmethod
    def load_or_create(
        cls,
        dir: Path,
        *,
        common_name: str = "edgeweave-ca",
        valid_days: int = 3650,
        clock: Clock = _utcnow,
    ) -> CertificateAuthority:
        """Load ``dir/ca.crt`` + ``dir/ca.key``, creating both first if neither exists."""
        cert_path, key_path = dir / CA_CERT_FILE, dir / CA_KEY_FILE
        if not cert_path.exists() and not key_path.exists():
            key = _new_key()
            cert = _self_signed_ca(key, common_name, valid_days, clock())
            # key first: a CA certificate on disk always has its key beside it
            if write_file_atomic(key_path, _key_pem(key), mode=0o600, exclusive=True):
                pem = cert.public_bytes(serialization.Encoding.PEM)
                write_file_atomic(cert_path, pem, mode=0o644, exclusive=True)
        if not cert_path.exists() or not key_path.exists():
            raise ConfigError(
                f"incomplete CA in {dir}: {CA_CERT_FILE} and {CA_KEY_FILE} must both exist "
                "(restore the missing file or remove both to make a new CA)"
            )
        try:
            cert = load_certificate(_read(cert_path))
        except InvalidObject as e:
            raise ConfigError(f"{cert_path} is not a PEM certificate") from e
        return cls(cert, _load_ec_key(_read(key_path), key_path), clock=clock)

    @property
    def cert_pem(self) -> bytes:
        return self._cert_pem

    @property
    def fingerprint(self) -> str:
        """``"sha256:<hex>"`` of the CA certificate DER: the pin in join tokens."""
        return self._fingerprint

    @property
    def not_after(self) -> datetime:
        return self._cert.not_valid_after_utc

    def issue_server_cert(
        self,
        dir: Path,
        *,
        hosts: list[str],
        valid_days: int = 365,
        renew_before: timedelta = timedelta(days=30),
    ) -> tuple[Path, Path]:
        """``(server.crt, server.key)`` in ``dir`` covering ``hosts`` plus the loopback names
        and this machine's hostname; existing files are kept while they cover every host, are
        signed by this CA and stay valid for more than ``renew_before``."""
        cert_path, key_path = dir / SERVER_CERT_FILE, dir / SERVER_KEY_FILE
        ips, names = _normalize_hosts([*hosts, *DEFAULT_HOSTS])
        machine = socket.gethostname().lower().rstrip(".")
        if machine not in names and _DNS_NAME.fullmatch(machine):
            names.append(machine)  # skipped when the hostname is not a valid DNS name
        if self._server_cert_reusable(cert_path, key_path, ips, names, renew_before):
            return cert_path, key_path
        key = _new_key()
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        sans += [x509.IPAddress(ip) for ip in ips]
        builder = self._leaf_builder(names[0], key.public_key(), valid_days)
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        cert = self._sign(builder)
        write_file_atomic(key_path, _key_pem(key), mode=0o600)
        write_file_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        return cert_path, key_path

    def sign_csr(self, csr_pem: bytes, *, node_name: str, valid_days: int = 90) -> bytes:
        """A client certificate (PEM) for ``node_name`` from the node's CSR.

        Only the CSR's public key is used; its subject must be exactly ``CN=node_name``
        (:class:`Forbidden` otherwise) and any extensions it asks for are ignored.
        """
        if valid_days <= 0:
            raise InvalidObject("valid_days must be positive", field="valid_days")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except (ValueError, TypeError) as e:
            raise InvalidObject("not a PEM certificate signing request", field="csr") from e
        if not csr.is_signature_valid:
            raise InvalidObject("the CSR signature does not verify", field="csr")
        try:
            public_key = csr.public_key()
        except (ValueError, TypeError) as e:
            raise InvalidObject(f"unsupported CSR public key: {e}", field="csr") from e
        public_key = _check_node_key(public_key)
        common_names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if len(csr.subject) != 1 or common_names != [node_name]:
            raise Forbidden(
                f"CSR subject {csr.subject.rfc4514_string()!r} is not CN={node_name}: "
                "a node may only request a certificate for its own name"
            )
        builder = self._leaf_builder(node_name, public_key, valid_days)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        return self._sign(builder).public_bytes(serialization.Encoding.PEM)

    def verify_client_cert(self, cert_pem: bytes) -> str:
        """The node name (CN) of a client certificate this CA issued and that is valid now;
        :class:`Unauthorized` otherwise."""
        try:
            cert = load_certificate(cert_pem)
        except InvalidObject as e:
            raise Unauthorized("client certificate is not a PEM certificate") from e
        try:
            cert.verify_directly_issued_by(self._cert)
        except (ValueError, TypeError, InvalidSignature) as e:
            raise Unauthorized("client certificate was not issued by this cluster's CA") from e
        now = self._clock()
        if now < cert.not_valid_before_utc:
            raise Unauthorized("client certificate is not valid yet")
        if now > cert.not_valid_after_utc:
            raise Unauthorized(
                f"client certificate expired at {cert.not_valid_after_utc.isoformat()}"
            )
        try:
            usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound as e:
            raise Unauthorized("client certificate has no extended key usage") from e
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            raise Unauthorized("certificate is not for client authentication")
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(names) != 1 or not isinstance(names[0].value, str) or not names[0].value:
            raise Unauthorized("client certificate has no single common name")
        return names[0].value

    def _leaf_builder(
        self, common_name: str, public_key: NodePublicKey, days: int
    ) -> x509.CertificateBuilder:
        now = self._clock()
        not_after = min(now + timedelta(days=days), self._cert.not_valid_after_utc)
        try:
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        except ValueError as e:
            raise InvalidObject(f"bad common name {common_name!r}: {e}", field="name") from e
        ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
        )

    def _sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        try:
            return builder.sign(self._key, hashes.SHA256())
        except (ValueError, TypeError) as e:
            raise InvalidObject(f"cannot sign certificate: {e}") from e

    def _server_cert_reusable(
        self,
        cert_path: Path,
        key_path: Path,
        ips: list[IPAddress],
        names: list[str],
        renew_before: timedelta,
    ) -> bool:
        if not cert_path.exists() or not key_path.exists():
            return False
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert.verify_directly_issued_by(self._cert)
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            return False  # unreadable, foreign or incomplete: reissue
        if not isinstance(key, ec.EllipticCurvePrivateKey) or _public_der(
            key.public_key()
        ) != cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            return False
        have_ips = set(san.get_values_for_type(x509.IPAddress))
        have_names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
        if not set(ips) <= have_ips or not set(names) <= have_names:
            return False
        return cert.not_valid_after_utc - self._clock() > renew_before


def _self_signed_ca(
    key: ec.EllipticCurvePrivateKey, common_name: str, valid_days: int, now: datetime
) -> x509.Certificate:
    if valid_days <= 0:
        raise ConfigError("CA valid_days must be positive")
    try:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgeweave"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
    except ValueError as e:
        raise ConfigError(f"cannot create the CA certificate: {e}") from e


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _check_node_key(public_key: object) -> NodePublicKey:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ("secp256r1", "secp384r1"):
            raise InvalidObject(f"unsupported curve {public_key.curve.name}", field="csr")
        return public_key
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise InvalidObject("RSA keys must be at least 2048 bits", field="csr")
        return public_key
    raise InvalidObject("node keys must be ECDSA (P-256/P-384) or RSA", field="csr")


def _normalize_hosts(hosts: list[str]) -> tuple[list[IPAddress], list[str]]:
    """Split ``hosts`` into IP addresses and lower-cased DNS names, in first-seen order."""
    ips: list[IPAddress] = []
    names: list[str] = []
    for raw in hosts:
        host = raw.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host:
            raise InvalidObject("empty host name", field="hosts")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            name = host.lower().rstrip(".")
            if len(name) > 253 or not _DNS_NAME.fullmatch(name):
                raise InvalidObject(
                    f"not an IP address or DNS name: {raw!r}", field="hosts"
                ) from None
            if name not in names:
                names.append(name)
        else:
            if ip not in ips:
                ips.append(ip)
    return ips, names
