"""Credentials the cloud hands out: the admin API token and short-lived join tokens.

A join token is ``<ca-sha256-hex>.<payload-b64url>.<hmac-b64url>`` (the KubeEdge
``sha256(CA).JWT`` idea): the first part pins the cluster CA so a joining node can check the CA
it downloads, the payload is JSON ``{"exp": unix-seconds, "jti": random, "node"?: name}``, and
the HMAC-SHA256 covers the pin and payload with a secret kept in the data dir
(``join-secret``, 0600). Time comes from an injected clock.

This module must not do I/O beyond reading or creating that one secret file, must not compare
secrets with ``==``, and does not remember which tokens were used (callers may track ``jti``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeweave.errors import ConfigError, InvalidObject, Unauthorized
from edgeweave.transport.certs import FINGERPRINT_PREFIX, load_or_create_hex_key, parse_ca_pin

ADMIN_TOKEN_PREFIX = "ew_"  # noqa: S105 (a prefix, not a secret)
JOIN_SECRET_FILE = "join-secret"  # noqa: S105 (a file name)
MIN_SECRET_BYTES = 16
MAX_TTL_S = 7 * 24 * 3600

_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def generate_admin_token() -> str:
    """A new random admin token, ``ew_`` + 43 url-safe characters (256 bits)."""
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenChecker:
    """Checks a presented bearer token against the expected one in constant time."""

    def __init__(self, expected: str) -> None:
        if not expected:
            raise ConfigError("the admin token must not be empty")
        self._expected = expected.encode("utf-8")

    def check(self, presented: str | None) -> bool:
        """True when ``presented`` is the expected token (constant-time comparison)."""
        if presented is None:
            return False
        return hmac.compare_digest(self._expected, presented.encode("utf-8", "surrogatepass"))

    def require(self, presented: str | None) -> None:
        """Raise :class:`Unauthorized` unless ``presented`` is the expected token."""
        if not presented:
            raise Unauthorized("missing bearer token")
        if not self.check(presented):
            raise Unauthorized("invalid bearer token")


def load_or_create_join_secret(data_dir: Path) -> bytes:
    """The HMAC key in ``data_dir/join-secret`` (hex text, 0600), made on first use."""
    return load_or_create_hex_key(data_dir / JOIN_SECRET_FILE, what="join secret")


@dataclass(frozen=True)
class JoinClaims:
    """What a verified join token grants: any node (``node`` None) or one named node."""

    exp: int
    jti: str
    node: str | None = None

    def allows(self, node_name: str) -> bool:
        return self.node is None or self.node == node_name


class JoinTokenIssuer:
    """Creates and verifies join tokens for one cluster CA."""

    def __init__(
        self,
        secret: bytes,
        ca_fingerprint: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"the join secret must be at least {MIN_SECRET_BYTES} bytes")
        pin = ca_fingerprint.strip().lower().removeprefix(FINGERPRINT_PREFIX)
        if not _HEX64.fullmatch(pin):
            raise ConfigError(f"not a sha256 CA fingerprint: {ca_fingerprint!r}")
        self._secret = secret
        self._pin_hex = pin
        self._clock = clock

    def create(self, ttl_s: int, node: str | None = None) -> str:
        """A token valid for ``ttl_s`` seconds, for any node or only ``node``."""
        if not 0 < ttl_s <= MAX_TTL_S:
            raise InvalidObject(f"ttl_s must be in 1..{MAX_TTL_S}", field="ttl_s")
        if node is not None and not node:
            raise InvalidObject("node must be a name or None", field="node")
        claims: dict[str, object] = {
            "exp": int(self._clock()) + ttl_s,
            "jti": secrets.token_urlsafe(12),
        }
        if node is not None:
            claims["node"] = node
        payload = _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{self._pin_hex}.{payload}.{self._mac(payload)}"

    def verify(self, token: str) -> JoinClaims:
        """The token's claims; :class:`Unauthorized` if malformed, signed by someone else,
        issued for another CA, or expired."""
        pin = parse_ca_pin(token).removeprefix(FINGERPRINT_PREFIX)
        _, payload, signature = token.strip().split(".")
        if not _B64URL.fullmatch(payload) or not _B64URL.fullmatch(signature):
            raise Unauthorized("malformed join token: payload or signature is not base64url")
        if not hmac.compare_digest(pin, self._pin_hex):
            raise Unauthorized("join token was issued for a different cluster CA (wrong CA pin)")
        expected = self._mac(payload).encode()
        if not hmac.compare_digest(signature.encode(), expected):
            raise Unauthorized("join token signature is invalid")
        claims = _decode_claims(payload)
        if self._clock() >= claims.exp:
            raise Unauthorized("join token has expired")
        return claims

    def _mac(self, payload_b64: str) -> str:
        message = f"{self._pin_hex}.{payload_b64}".encode("ascii")
        return _b64encode(hmac.new(self._secret, message, hashlib.sha256).digest())


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode_claims(payload_b64: str) -> JoinClaims:
    try:
        raw = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as e:
        raise Unauthorized("malformed join token: payload is not base64url JSON") from e
    if not isinstance(data, dict):
        raise Unauthorized("malformed join token: payload is not an object")
    exp, jti, node = data.get("exp"), data.get("jti"), data.get("node")
    if not isinstance(exp, int) or isinstance(exp, bool) or not isinstance(jti, str):
        raise Unauthorized("malformed join token: exp or jti missing")
    if node is not None and not isinstance(node, str):
        raise Unauthorized("malformed join token: node is not a string")
    return JoinClaims(exp=exp, jti=jti, node=node)
