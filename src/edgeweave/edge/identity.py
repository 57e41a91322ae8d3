"""The node's identity on disk: who it is, where the cloud is, and its TLS material.

Layout under the agent's data dir (written by `edgeweave edge join`)::

    node.yaml        {node, hubUrl, apiUrl, labels, certNotAfter}
    pki/ca.crt       the cloud CA (pinned by the join token)
    pki/node.key     the node's private key (0600)
    pki/node.crt     the node's client certificate (CN = node name)

``node.yaml`` is written as JSON (which is valid YAML) and read with :mod:`json`; a file that is
not JSON (edited by hand) is read with yaml, imported only then. ``certNotAfter`` is when
``pki/node.crt`` expires (ISO 8601, UTC), recorded when the certificate is written so the agent
decides on renewal without parsing X.509 (and without loading ``cryptography``); files from
before it was recorded lack it.

Must not: parse certificates or talk to the network; the join flow (:mod:`.cloudapi`) and the
link's renewal (:mod:`.link`) decide what to write.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeweave.errors import ConfigError
from edgeweave.transport.certs import ssl_client_context, write_file_atomic

CERT_NOT_AFTER = "certNotAfter"


@dataclass(frozen=True)
class NodeIdentity:
    data_dir: Path
    node: str
    hub_url: str
    api_url: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def ca_path(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    @property
    def key_path(self) -> Path:
        return self.data_dir / "pki" / "node.key"

    @property
    def cert_path(self) -> Path:
        return self.data_dir / "pki" / "node.crt"

    def ca_pem(self) -> bytes:
        return self.ca_path.read_bytes()

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts only the cloud CA and presents the node certificate."""
        return ssl_client_context(self.ca_pem(), cert_path=self.cert_path, key_path=self.key_path)


def identity_file(data_dir: Path) -> Path:
    return data_dir / "node.yaml"


def _read_doc(path: Path) -> Any:
    """The parsed ``node.yaml``: JSON as written by the agent, else YAML (edited by hand)."""
    text = path.read_text()
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml  # a hand-edited file only

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot read {path}: {e}") from e


def _write_doc(path: Path, doc: dict[str, Any]) -> None:
    write_file_atomic(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o644)


def save_identity(identity: NodeIdentity, cert_not_after: datetime) -> None:
    """Write ``node.yaml`` for ``identity`` whose certificate expires at ``cert_not_after``."""
    doc = {
        "node": identity.node,
        "hubUrl": identity.hub_url,
        "apiUrl": identity.api_url,
        "labels": identity.labels,
        CERT_NOT_AFTER: format_timestamp(cert_not_after),
    }
    _write_doc(identity_file(identity.data_dir), doc)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: ``2026-01-31T12:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_cert_not_after(data_dir: Path, cert_not_after: datetime) -> bool:
    """Record a renewed certificate's expiry in ``node.yaml`` (other keys kept); False when
    there is no readable ``node.yaml`` to update."""
    path = identity_file(data_dir)
    try:
        doc = _read_doc(path)
    except (OSError, ConfigError):
        return False
    if not isinstance(doc, dict):
        return False
    doc[CERT_NOT_AFTER] = format_timestamp(cert_not_after)
    _write_doc(path, doc)
    return True


def recorded_cert_not_after(data_dir: Path) -> datetime | None:
    """The certificate expiry recorded in ``node.yaml``; None when it is not recorded (a file
    from an older version, or none) or not a timestamp."""
    try:
        doc = _read_doc(identity_file(data_dir))
    except (OSError, ConfigError):
        return None
    value = doc.get(CERT_NOT_AFTER) if isinstance(doc, dict) else None
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as one
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def pending_path(path: Path) -> Path:
    """Where a renewal stages the new ``path`` (``node.key.new``, ``node.crt.new``)."""
    return path.with_name(path.name + ".new")


def finish_renewal(key_path: Path, cert_path: Path) -> None:
    """Complete (or discard) a certificate renewal a crash interrupted, so the key and the
    certificate in place always belong together.

    A renewal writes ``node.key.new`` and ``node.crt.new``, then replaces the key, then the
    certificate. So: only the key staged means the certificate never arrived (discard it);
    both staged means nothing was replaced yet (replace both); only the certificate staged
    means the key was replaced already (replace the certificate).
    """
    new_key, new_cert = pending_path(key_path), pending_path(cert_path)
    try:
        if not new_cert.exists():
            new_key.unlink(missing_ok=True)
            return
        if new_key.exists():
            os.replace(new_key, key_path)
        os.replace(new_cert, cert_path)
    except OSError as e:
        raise ConfigError(f"cannot finish the certificate renewal in {key_path.parent}: {e}") from e


def load_identity(data_dir: Path) -> NodeIdentity:
    path = identity_file(data_dir)
    try:
        doc = _read_doc(path)
    except FileNotFoundError as e:
        raise ConfigError(
            f"{data_dir} holds no node identity; run `edgeweave edge join --data {data_dir} "
            "--server URL --token TOKEN --name NODE` first"
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    if not isinstance(doc, dict) or not all(k in doc for k in ("node", "hubUrl", "apiUrl")):
        raise ConfigError(f"{path} is damaged: expected node, hubUrl and apiUrl")
    identity = NodeIdentity(
        data_dir=data_dir,
        node=str(doc["node"]),
        hub_url=str(doc["hubUrl"]),
        api_url=str(doc["apiUrl"]),
        labels={str(k): str(v) for k, v in (doc.get("labels") or {}).items()},
    )
    finish_renewal(identity.key_path, identity.cert_path)
    for p in (identity.ca_path, identity.key_path, identity.cert_path):
        if not p.exists():
            raise ConfigError(f"{p} is missing; join the node again")
    return identity
