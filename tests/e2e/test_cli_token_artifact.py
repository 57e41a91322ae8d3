"""``edgeweave token create`` and ``edgeweave artifact push`` as real commands against a real
``edgeweave cloud serve`` (the fixtures of test_cli.py: one cloud per module, always stopped).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from test_cli import cloud, ew  # noqa: F401 - the cloud fixture is shared with test_cli

from edgeweave.transport.certs import parse_ca_pin, verify_ca_pin

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """test_cli's environment, plus a free hub port (8444 may be taken on a shared machine)."""
    home = tmp_path_factory.mktemp("home")
    out = {k: v for k, v in os.environ.items() if not k.startswith("EDGEWEAVE_")}
    out.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), NO_COLOR="1")
    out["EDGEWEAVE_SERVER__HUB_PORT"] = "0"
    return out


def test_token_create_prints_only_the_token(cloud: Path, env: dict[str, str]) -> None:  # noqa: F811
    made = ew(env, cloud, "token", "create", "--ttl", "30m", "--node", "cam-9")
    assert made.returncode == 0, made
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and token.count(".") == 2
    assert "expires at" in made.stderr
    ca_pem = (cloud.parent / "pki" / "ca.crt").read_bytes()
    verify_ca_pin(ca_pem, parse_ca_pin(token))


def test_token_create_refuses_a_bad_ttl(cloud: Path, env: dict[str, str]) -> None:  # noqa: F811
    bad = ew(env, cloud, "token", "create", "--ttl", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr, bad


def test_artifact_push_prints_the_digest_and_dedups(
    cloud: Path,  # noqa: F811
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "counter.py"
    path.write_text("print('hello')\n" * 1000)
    expected = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    first = ew(env, cloud, "artifact", "push", str(path))
    assert (first.returncode, first.stdout) == (0, expected + "\n"), first
    assert "already stored" not in first.stderr
    again = ew(env, cloud, "artifact", "push", str(path))
    assert (again.returncode, again.stdout) == (0, expected + "\n"), again
    assert "(already stored)" in again.stderr
    stored = cloud.parent / "objects" / "sha256" / expected[7:9] / expected[7:]
    assert stored.read_bytes() == path.read_bytes()
    missing = ew(env, cloud, "artifact", "push", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "is not a file" in missing.stderr
