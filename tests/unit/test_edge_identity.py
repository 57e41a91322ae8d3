"""node.yaml: written as JSON with the certificate's expiry, read with json (yaml fallback)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgeweave.edge.identity import (
    NodeIdentity,
    identity_file,
    load_identity,
    record_cert_not_after,
    recorded_cert_not_after,
    save_identity,
)
from edgeweave.errors import ConfigError

EXPIRY = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


def make_pki(data: Path) -> None:
    pki = data / "pki"
    pki.mkdir(parents=True)
    for name in ("ca.crt", "node.key", "node.crt"):
        (pki / name).write_text("x")


def test_save_writes_json_with_the_expiry_and_load_reads_it(tmp_path: Path) -> None:
    make_pki(tmp_path)
    identity = NodeIdentity(tmp_path, "edge-1", "wss://h:1/link", "https://h:2", {"role": "cam"})
    save_identity(identity, EXPIRY)
    doc = json.loads(identity_file(tmp_path).read_text())
    assert doc["certNotAfter"] == "2031-05-06T07:08:09Z"
    assert load_identity(tmp_path) == identity
    assert recorded_cert_not_after(tmp_path) == EXPIRY


def test_a_hand_edited_yaml_file_is_still_read(tmp_path: Path) -> None:
    make_pki(tmp_path)
    identity_file(tmp_path).write_text(
        "# edited by hand\nnode: edge-2\nhubUrl: wss://h:1/link\napiUrl: https://h:2\n"
        "labels: {zone: a}\ncertNotAfter: 2031-05-06T07:08:09Z\n"
    )
    identity = load_identity(tmp_path)
    assert (identity.node, identity.labels) == ("edge-2", {"zone": "a"})
    assert recorded_cert_not_after(tmp_path) == EXPIRY  # YAML made it a datetime


def test_an_older_file_has_no_expiry_until_one_is_recorded(tmp_path: Path) -> None:
    identity_file(tmp_path).write_text(
        "node: edge-3\nhubUrl: wss://h:1/link\napiUrl: https://h:2\nlabels: {}\n"
    )
    assert recorded_cert_not_after(tmp_path) is None
    assert record_cert_not_after(tmp_path, EXPIRY)
    doc = json.loads(identity_file(tmp_path).read_text())  # rewritten as JSON, keys kept
    assert doc["node"] == "edge-3" and doc["certNotAfter"] == "2031-05-06T07:08:09Z"
    assert recorded_cert_not_after(tmp_path) == EXPIRY


def test_no_file_and_damaged_files(tmp_path: Path) -> None:
    assert recorded_cert_not_after(tmp_path) is None
    assert not record_cert_not_after(tmp_path, EXPIRY)
    with pytest.raises(ConfigError, match="holds no node identity"):
        load_identity(tmp_path)
    identity_file(tmp_path).write_text("node: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_identity(tmp_path)
    identity_file(tmp_path).write_text('{"node": "n"}')
    with pytest.raises(ConfigError, match="damaged"):
        load_identity(tmp_path)
    identity_file(tmp_path).write_text('{"certNotAfter": "soon"}')
    assert recorded_cert_not_after(tmp_path) is None


@pytest.mark.parametrize(
    ("staged", "expected"),
    [
        # crashed after staging the key only: the old pair stays
        ({"node.key.new": "new-key"}, ("old-key", "old-cert")),
        # crashed after staging both: the new pair is put in place
        ({"node.key.new": "new-key", "node.crt.new": "new-cert"}, ("new-key", "new-cert")),
        # crashed after replacing the key: the certificate follows
        ({"node.crt.new": "new-cert"}, ("new-key", "new-cert")),
    ],
)
def test_an_interrupted_renewal_is_finished_so_key_and_certificate_match(
    tmp_path: Path, staged: dict[str, str], expected: tuple[str, str]
) -> None:
    make_pki(tmp_path)
    save_identity(NodeIdentity(tmp_path, "n1", "wss://h/link", "https://h"), EXPIRY)
    pki = tmp_path / "pki"
    (pki / "node.crt").write_text("old-cert")
    (pki / "node.key").write_text("new-key" if staged.keys() == {"node.crt.new"} else "old-key")
    for name, text in staged.items():
        (pki / name).write_text(text)
    identity = load_identity(tmp_path)
    assert (identity.key_path.read_text(), identity.cert_path.read_text()) == expected
    assert not list(pki.glob("*.new"))
