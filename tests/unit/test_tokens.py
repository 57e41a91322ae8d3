"""Admin tokens and KubeEdge-style join tokens: creation, verification, tampering, expiry."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeweave.cloud.tokens import (
    JoinTokenIssuer,
    TokenChecker,
    generate_admin_token,
    load_or_create_join_secret,
)
from edgeweave.errors import ConfigError, InvalidObject, Unauthorized
from edgeweave.transport.certs import parse_ca_pin

PIN = "sha256:" + "ab" * 32
OTHER_PIN = "sha256:" + "cd" * 32
SECRET = b"s" * 32


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def issuer(
    clock: FakeClock | None = None, pin: str = PIN, secret: bytes = SECRET
) -> JoinTokenIssuer:
    return JoinTokenIssuer(secret, pin, clock or FakeClock())


def test_admin_tokens_are_prefixed_random_and_long() -> None:
    a, b = generate_admin_token(), generate_admin_token()
    assert a.startswith("ew_") and len(a) >= 40
    assert a != b


def test_token_checker_accepts_only_the_expected_token() -> None:
    token = generate_admin_token()
    checker = TokenChecker(token)
    checker.require(token)
    assert checker.check(token)
    assert not checker.check(token + "x")
    assert not checker.check("é-not-ascii")
    assert not checker.check(None)
    with pytest.raises(Unauthorized, match="missing"):
        checker.require(None)
    with pytest.raises(Unauthorized, match="invalid"):
        checker.require(token[:-1])


def test_token_checker_refuses_an_empty_expected_token() -> None:
    with pytest.raises(ConfigError):
        TokenChecker("")


def test_a_fresh_token_verifies_and_carries_its_claims() -> None:
    clock = FakeClock()
    iss = issuer(clock)
    claims = iss.verify(iss.create(600, node="edge-1"))
    assert claims.node == "edge-1"
    assert claims.exp == int(clock.now) + 600
    assert claims.jti
    assert claims.allows("edge-1") and not claims.allows("edge-2")


def test_a_token_without_a_node_allows_any_node() -> None:
    iss = issuer()
    claims = iss.verify(iss.create(60))
    assert claims.node is None and claims.allows("anything")


def test_two_tokens_have_distinct_ids() -> None:
    iss = issuer()
    assert iss.verify(iss.create(60)).jti != iss.verify(iss.create(60)).jti


def test_a_token_is_refused_once_the_clock_passes_its_expiry() -> None:
    clock = FakeClock()
    iss = issuer(clock)
    token = iss.create(60)
    clock.now += 59
    iss.verify(token)
    clock.now += 1
    with pytest.raises(Unauthorized, match="expired"):
        iss.verify(token)


def test_a_tampered_payload_fails_the_signature_check() -> None:
    iss = issuer()
    pin, payload, sig = iss.create(60, node="edge-1").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["node"] = "edge-evil"
    claims["exp"] += 10_000
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthorized, match="signature"):
        iss.verify(f"{pin}.{forged}.{sig}")


def test_a_token_signed_with_another_secret_fails_the_signature_check() -> None:
    token = issuer(secret=b"x" * 32).create(60)
    with pytest.raises(Unauthorized, match="signature"):
        issuer().verify(token)


def test_a_token_for_another_ca_is_refused_as_a_wrong_pin() -> None:
    token = issuer(pin=OTHER_PIN).create(60)
    with pytest.raises(Unauthorized, match="CA pin"):
        issuer().verify(token)


def test_swapping_the_pin_of_a_valid_token_is_refused() -> None:
    _, payload, sig = issuer(pin=OTHER_PIN).create(60).split(".")
    with pytest.raises(Unauthorized, match="signature"):
        issuer().verify(f"{PIN.removeprefix('sha256:')}.{payload}.{sig}")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b.c",
        "ab" * 32 + "..",
        "ab" * 32 + ".!!.??",
        "ab" * 32 + ".e30.x.y",
        "." * 5000,
    ],
)
def test_malformed_tokens_are_refused_as_malformed(token: str) -> None:
    with pytest.raises(Unauthorized, match="malformed"):
        issuer().verify(token)


@given(st.text(max_size=300))
def test_any_text_is_refused_with_unauthorized_and_nothing_else(text: str) -> None:
    with pytest.raises(Unauthorized):
        issuer().verify(text)


@given(st.text(alphabet="abcdefABCDEF0123456789_-.=", max_size=200))
def test_token_shaped_text_is_refused_with_unauthorized_and_nothing_else(text: str) -> None:
    with pytest.raises(Unauthorized):
        issuer().verify(PIN.removeprefix("sha256:") + "." + text)


def test_the_edge_reads_the_ca_pin_from_a_token() -> None:
    assert parse_ca_pin(issuer().create(60)) == PIN
    with pytest.raises(Unauthorized, match="malformed"):
        parse_ca_pin("nothex.a.b")


def test_create_rejects_nonpositive_ttls_and_empty_node_names() -> None:
    with pytest.raises(InvalidObject):
        issuer().create(0)
    with pytest.raises(InvalidObject):
        issuer().create(60, node="")


def test_an_issuer_needs_a_real_fingerprint_and_a_long_enough_secret() -> None:
    with pytest.raises(ConfigError):
        JoinTokenIssuer(SECRET, "sha256:nothex")
    with pytest.raises(ConfigError):
        JoinTokenIssuer(b"short", PIN)


def test_the_join_secret_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_join_secret(tmp_path)
    assert load_or_create_join_secret(tmp_path) == first
    assert len(first) == 32
    assert stat.S_IMODE((tmp_path / "join-secret").stat().st_mode) == 0o600


def test_a_corrupt_join_secret_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "join-secret").write_text("zz")
    with pytest.raises(ConfigError):
        load_or_create_join_secret(tmp_path)
