"""`edge join` against an in-memory cloud (httpx.MockTransport): the URLs written to node.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgeweave.cloud.pki import CertificateAuthority
from edgeweave.edge.cloudapi import join, reachable_url
from edgeweave.edge.identity import load_identity
from edgeweave.transport.certs import cert_fingerprint


@pytest.mark.parametrize(
    ("url", "server", "expected"),
    [
        (
            "wss://127.0.0.1:7443/link",
            "https://cloud.example:6443",
            "wss://cloud.example:7443/link",
        ),
        ("wss://localhost:7443/link", "https://10.0.0.5:6443", "wss://10.0.0.5:7443/link"),
        (
            "wss://[::1]:7443/link?x=1",
            "https://[2001:db8::1]:6443",
            "wss://[2001:db8::1]:7443/link?x=1",
        ),
        ("https://127.0.0.1/api", "https://cloud.example", "https://cloud.example/api"),
        # left alone: a non-loopback answer, or a user who joined over loopback too
        (
            "wss://hub.example:7443/link",
            "https://cloud.example:6443",
            "wss://hub.example:7443/link",
        ),
        ("wss://127.0.0.1:7443/link", "https://localhost:6443", "wss://127.0.0.1:7443/link"),
        ("wss://127.0.0.1:7443/link", "https://127.0.0.1:6443", "wss://127.0.0.1:7443/link"),
    ],
)
def test_a_loopback_url_from_the_cloud_gets_the_server_host(
    url: str, server: str, expected: str
) -> None:
    assert reachable_url(url, server) == expected


def _fake_cloud(ca: CertificateAuthority, answer: dict[str, Any]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/ca":
            return httpx.Response(200, content=ca.cert_pem)
        body = json.loads(request.content)
        cert = ca.sign_csr(body["csr"].encode(), node_name=body["node"], valid_days=90)
        return httpx.Response(200, json={**answer, "certificate": cert.decode()})

    return httpx.MockTransport(handle)


async def test_join_writes_reachable_urls_when_the_cloud_knows_itself_as_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    transport = _fake_cloud(
        ca, {"hubUrl": "wss://127.0.0.1:7443/link", "apiUrl": "https://localhost:6443"}
    )
    real_client = httpx.AsyncClient

    def client(**kwargs: Any) -> httpx.AsyncClient:
        kwargs.pop("verify", None)
        return real_client(transport=transport, **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", client)
    token = cert_fingerprint(ca.cert_pem).split(":", 1)[1] + ".payload.mac"
    data = tmp_path / "edge"
    await join("https://cloud.example:6443/", token, "edge-1", data)
    identity = load_identity(data)
    assert identity.hub_url == "wss://cloud.example:7443/link"
    assert identity.api_url == "https://cloud.example:6443"
