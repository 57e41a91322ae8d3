"""TLS material helpers shared by the cloud and the edge: keys, CSRs, pins, SSL contexts.

What both ends of the link need and nothing more: a node makes its key and certificate
signing request, reads when its certificate expires, checks a downloaded CA against the pin
in its join token; either side builds an :class:`ssl.SSLContext` that trusts only the
cluster CA. The cloud's signing authority lives in :mod:`edgeweave.cloud.pki`.

This is the adapter for ``cryptography`` on the edge side: its errors become
:mod:`edgeweave.errors` types here. ``cryptography`` is imported by the functions that use it,
not by this module: the running agent needs only the SSL contexts, and loading ``cryptography``
would cost it several MB for as long as it lives. It must not import :mod:`edgeweave.cloud` or
:mod:`edgeweave.edge`, open sockets, or hold state; files are written only by
:func:`write_file_atomic`, on request.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import ssl
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from edgeweave.errors import ConfigError, InvalidObject, Unauthorized

if TYPE_CHECKING:
    from cryptography import x509

FINGERPRINT_PREFIX = "sha256:"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_TOKEN_CHARS = 4096


def load_certificate(pem: bytes) -> x509.Certificate:
    """The first certificate in ``pem``; :class:`InvalidObject` when there is none."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as e:
        raise InvalidObject("not a PEM X.509 certificate", field="certificate") from e


def generate_key_and_csr(node_name: str) -> tuple[bytes, bytes]:
    """A fresh ECDSA P-256 private key (PKCS#8 PEM) and a CSR with ``CN=node_name`` (PEM)."""
    if not node_name or len(node_name) > 64:
        raise InvalidObject("node name must be 1-64 characters", field="node_name")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    try:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_name)]))
            .sign(key, hashes.SHA256())
        )
    except ValueError as e:
        raise InvalidObject(f"cannot build a CSR for {node_name!r}: {e}", field="node_name") from e
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def cert_fingerprint(pem: bytes) -> str:
    """``"sha256:" + hex(sha256(DER))`` of the first certificate in ``pem``."""
    from cryptography.hazmat.primitives import serialization

    der = load_certificate(pem).public_bytes(serialization.Encoding.DER)
    return FINGERPRINT_PREFIX + hashlib.sha256(der).hexdigest()


def cert_not_after(pem: bytes) -> datetime:
    """The end of the certificate's validity, as an aware UTC datetime."""
    return load_certificate(pem).not_valid_after_utc


def needs_rotation(pem: bytes, *, before: timedelta, now: datetime | None = None) -> bool:
    """True when the certificate expires within ``before`` of ``now`` (or already has)."""
    current = now if now is not None else datetime.now(UTC)
    return current >= cert_not_after(pem) - before


def parse_ca_pin(token: str) -> str:
    """The CA pin (``"sha256:<hex>"``) a join token carries; :class:`Unauthorized` if malformed.

    Only the first dot-separated part is read: this does not check the token's signature or
    expiry (the cloud does), it tells a joining node which CA to trust.
    """
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        raise Unauthorized("malformed join token")
    parts = token.strip().split(".")
    if len(parts) != 3 or not _HEX64.fullmatch(parts[0]):
        raise Unauthorized("malformed join token: expected <ca-sha256-hex>.<payload>.<signature>")
    return FINGERPRINT_PREFIX + parts[0]


def verify_ca_pin(ca_pem: bytes, pin: str) -> None:
    """Raise :class:`Unauthorized` unless the CA certificate's fingerprint equals ``pin``."""
    try:
        actual = cert_fingerprint(ca_pem)
    except InvalidObject as e:
        raise Unauthorized("the CA the cloud sent is not a PEM certificate") from e
    if not hmac.compare_digest(actual.encode(), pin.strip().lower().encode()):
        raise Unauthorized(f"CA certificate {actual} does not match the pinned {pin}")


def write_file_atomic(
    path: Path, data: bytes, *, mode: int = 0o600, exclusive: bool = False
) -> bool:
    """Write ``data`` to ``path`` atomically with ``mode``; return False if ``exclusive`` and
    the file already exists (it is then left untouched)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if exclusive:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
            else:
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e}") from e
    return True


def ssl_server_context(
    cert_path: Path,
    key_path: Path,
    *,
    client_ca_pem: bytes | None = None,
    require_client_cert: bool = False,
) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``client_ca_pem`` it asks for client certificates
    signed by that CA (optional, so joining nodes without one can connect, unless
    ``require_client_cert``)."""
    if require_client_cert and client_ca_pem is None:
        raise ConfigError("require_client_cert needs client_ca_pem")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load TLS certificate {cert_path} / key {key_path}: {e}") from e
    if client_ca_pem is not None:
        _trust_only(ctx, client_ca_pem)
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def ssl_client_context(
    ca_pem: bytes,
    *,
    cert_path: Path | None = None,
    key_path: Path | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context that trusts only ``ca_pem`` (no system roots), presenting
    the node certificate when ``cert_path``/``key_path`` are given."""
    if (cert_path is None) != (key_path is None):
        raise ConfigError("give both cert_path and key_path, or neither")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    _trust_only(ctx, ca_pem)
    if cert_path is not None and key_path is not None:
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(
                f"cannot load node certificate {cert_path} / key {key_path}: {e}"
            ) from e
    return ctx


def _trust_only(ctx: ssl.SSLContext, ca_pem: bytes) -> None:
    try:
        ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
    except (UnicodeDecodeError, ValueError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the CA certificate: {e}") from e


def load_or_create_hex_key(
    path: Path, *, what: str, nbytes: int = 32, exact: bool = False
) -> bytes:
    """A random key kept as hex text in ``path`` (mode 0600), made on first use; a file that
    does not hold at least (``exact``: exactly) ``nbytes`` bytes is a :class:`ConfigError`
    naming ``what`` and the file."""
    write_file_atomic(path, secrets.token_hex(nbytes).encode() + b"\n", mode=0o600, exclusive=True)
    try:
        key = bytes.fromhex(path.read_text("ascii").strip())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the {what} {path}: {e}") from e
    if len(key) < nbytes or (exact and len(key) != nbytes):
        raise ConfigError(f"the {what} {path} must hold {nbytes} bytes ({2 * nbytes} hex digits)")
    return key
