"""The node's identity on disk: who it is, where the cloud is, and its TLS material.

Layout under the agent's data dir (written by `edgeweave edge join`)::

    node.yaml        {node, hubUrl, apiUrl, labels}
    pki/ca.crt       the cloud CA (pinned by the join token)
    pki/node.key     the node's private key (0600)
    pki/node.crt     the node's client certificate (CN = node name)

Reading only; the join flow (:mod:`.cloudapi`) writes it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgeweave.errors import ConfigError
from edgeweave.transport.certs import ssl_client_context


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


def load_identity(data_dir: Path) -> NodeIdentity:
    path = identity_file(data_dir)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(
            f"{data_dir} holds no node identity; run `edgeweave edge join --data {data_dir} "
            "--server URL --token TOKEN --name NODE` first"
        ) from e
    except (OSError, yaml.YAMLError) as e:
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
    for p in (identity.ca_path, identity.key_path, identity.cert_path):
        if not p.exists():
            raise ConfigError(f"{p} is missing; join the node again")
    return identity
