"""Joining nodes against a real cloud (TLS on port 0): CA download, tokens, join, errors."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from edgeweave.cloud.join import renew_node_certificate
from edgeweave.cloud.pki import CertificateAuthority
from edgeweave.cloud.tokens import JoinTokenIssuer, load_or_create_join_secret
from edgeweave.errors import Forbidden
from edgeweave.testing.cloud import TestCloud, open_test_cloud
from edgeweave.transport.certs import generate_key_and_csr, parse_ca_pin, verify_ca_pin


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[TestCloud]:
    async with open_test_cloud(tmp_path / "cloud") as c:
        yield c


@pytest.fixture
async def anon(cloud: TestCloud) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cloud.url, verify=cloud.ssl_context()) as client:
        yield client


def data_dir(cloud: TestCloud) -> Path:
    return cloud.admin_config.parent


async def new_token(cloud: TestCloud, **body: Any) -> str:
    answer = await cloud.http.post("/api/v1/tokens", json=body)
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


async def join(anon: httpx.AsyncClient, token: str, node: str, **extra: Any) -> httpx.Response:
    _, csr = generate_key_and_csr(node)
    return await anon.post(
        "/api/v1/join", json={"token": token, "node": node, "csr": csr.decode(), **extra}
    )


async def test_ca_is_public_and_matches_the_token_pin(
    cloud: TestCloud, anon: httpx.AsyncClient
) -> None:
    answer = await anon.get("/api/v1/ca")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-pem-file"
    token = await new_token(cloud)
    verify_ca_pin(answer.content, parse_ca_pin(token))


async def test_token_creation_needs_the_admin_token(anon: httpx.AsyncClient) -> None:
    answer = await anon.post("/api/v1/tokens", json={})
    assert answer.status_code == 401


async def test_join_signs_the_csr_and_registers_the_node(
    cloud: TestCloud, anon: httpx.AsyncClient
) -> None:
    created = await cloud.http.post("/api/v1/tokens", json={"ttlSeconds": 600})
    assert created.status_code == 201
    assert created.json()["expiresAt"].endswith("Z")
    answer = await join(
        anon,
        created.json()["token"],
        "cam-1",
        labels={"role": "camera"},
        addresses=[{"type": "InternalIP", "address": "10.0.0.5"}],
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) >= {"certificate", "ca", "hubUrl", "apiUrl", "node"}
    assert body["apiUrl"] == cloud.url and body["hubUrl"].startswith("wss://")
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    ca_cert = x509.load_pem_x509_certificate(body["ca"].encode())
    cert.verify_directly_issued_by(ca_cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cam-1"
    node = (await cloud.http.get("/apis/edgeweave.io/v1/nodes/cam-1")).json()
    assert node["metadata"]["labels"] == {"role": "camera"}
    assert node["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.0.5"}]


async def test_a_token_works_once(cloud: TestCloud, anon: httpx.AsyncClient) -> None:
    token = await new_token(cloud)
    assert (await join(anon, token, "once-a")).status_code == 200
    again = await join(anon, token, "once-b")
    assert again.status_code == 401
    assert "token already used" in again.json()["message"]


async def test_expired_forged_and_wrong_pin_tokens_are_refused(
    cloud: TestCloud, anon: httpx.AsyncClient
) -> None:
    secret = load_or_create_join_secret(data_dir(cloud))
    ca = CertificateAuthority.load_or_create(data_dir(cloud) / "pki")
    past = JoinTokenIssuer(secret, ca.fingerprint, clock=lambda: time.time() - 7200)
    forged = JoinTokenIssuer(secrets.token_bytes(32), ca.fingerprint)
    other_ca = JoinTokenIssuer(secret, "sha256:" + "ab" * 32)
    cases = [
        (past.create(60), "expired"),
        (forged.create(600), "signature is invalid"),
        (other_ca.create(600), "wrong CA pin"),
        ("not-a-token", "malformed"),
    ]
    for token, reason in cases:
        answer = await join(anon, token, "bad-node")
        assert answer.status_code == 401, (reason, answer.text)
        assert answer.json()["reason"] == "Unauthorized"
        assert reason in answer.json()["message"]
    assert (await cloud.http.get("/apis/edgeweave.io/v1/nodes/bad-node")).status_code == 404


async def test_a_name_already_joined_needs_a_token_naming_it(
    cloud: TestCloud, anon: httpx.AsyncClient
) -> None:
    assert (await join(anon, await new_token(cloud), "dup", labels={"a": "1"})).status_code == 200
    refused = await join(anon, await new_token(cloud), "dup")
    assert refused.status_code == 409
    assert refused.json()["reason"] == "AlreadyExists"
    assert "create a token with --node dup" in refused.json()["message"]
    rejoined = await join(anon, await new_token(cloud, node="dup"), "dup", labels={"b": "2"})
    assert rejoined.status_code == 200, rejoined.text
    node = (await cloud.http.get("/apis/edgeweave.io/v1/nodes/dup")).json()
    assert node["metadata"]["labels"] == {"a": "1", "b": "2"}


async def test_a_token_bound_to_a_node_refuses_other_names(
    cloud: TestCloud, anon: httpx.AsyncClient
) -> None:
    token = await new_token(cloud, node="only-me")
    answer = await join(anon, token, "someone-else")
    assert answer.status_code == 403
    assert "only-me" in answer.json()["message"]
    assert (await join(anon, token, "only-me")).status_code == 200  # not burned by the refusal


async def test_a_csr_for_another_name_is_refused(cloud: TestCloud, anon: httpx.AsyncClient) -> None:
    _, csr = generate_key_and_csr("other")
    answer = await anon.post(
        "/api/v1/join",
        json={"token": await new_token(cloud), "node": "mine", "csr": csr.decode()},
    )
    assert answer.status_code == 403


def test_renewal_signs_only_the_authenticated_name(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path)
    _, csr = generate_key_and_csr("node-a")
    cert = x509.load_pem_x509_certificate(renew_node_certificate(ca, "node-a", csr))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-a"
    with pytest.raises(Forbidden):
        renew_node_certificate(ca, "node-b", csr)


async def test_secrets_are_encrypted_at_rest_and_plain_through_the_api(
    cloud: TestCloud,
) -> None:
    secrets_path = "/apis/edgeweave.io/v1/namespaces/default/secrets"
    manifest = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "data": {"password": "aHVudGVyMi1zZWNyZXQ="},  # hunter2-secret
        "stringData": {"token": "plain-text-token-xyz"},
    }
    created = await cloud.http.post(secrets_path, json=manifest)
    assert created.status_code == 201, created.text
    got = (await cloud.http.get(f"{secrets_path}/db")).json()
    assert got["data"]["password"] == "aHVudGVyMi1zZWNyZXQ="
    assert got["data"]["token"] == "cGxhaW4tdGV4dC10b2tlbi14eXo="  # folded into data
    listed = (await cloud.http.get(secrets_path)).json()
    assert listed["items"][0]["data"] == got["data"]
    patched = await cloud.http.patch(
        f"{secrets_path}/db",
        json={"metadata": {"labels": {"x": "y"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200 and patched.json()["data"] == got["data"]
    with sqlite3.connect(data_dir(cloud) / "edgeweave.db") as db:
        raw = "\n".join(
            row[0]
            for row in db.execute("SELECT json FROM objects UNION ALL SELECT json FROM changelog")
        )
    assert "enc:v1:" in raw
    for plain in ("aHVudGVyMi1zZWNyZXQ=", "plain-text-token-xyz", "cGxhaW4tdGV4dC10b2tlbi14eXo="):
        assert plain not in raw
    key = data_dir(cloud) / "pki" / "secrets.key"
    assert key.stat().st_mode & 0o777 == 0o600


async def test_secret_watch_events_come_out_decrypted(tmp_path: Path) -> None:
    from edgeweave.cloud.secrets import EncryptingStore, SecretCodec, load_or_create_secrets_key
    from edgeweave.cloud.store.sqlite import open_sqlite_store

    raw = await open_sqlite_store(tmp_path / "s.db")
    store = EncryptingStore(raw, SecretCodec(load_or_create_secrets_key(tmp_path / "pki")))
    try:
        async with store.open_watch(0) as watch:
            secret = {
                "apiVersion": "edgeweave.io/v1",
                "kind": "Secret",
                "metadata": {"name": "w", "namespace": "default"},
                "data": {"k": "dmFsdWU="},
            }
            await store.create(secret)
            async for event in watch:
                assert event.object["data"] == {"k": "dmFsdWU="}
                break
        stored = await raw.get("Secret", "default", "w")
        assert stored["data"]["k"].startswith("enc:v1:")
    finally:
        await store.aclose()


async def test_nodes_are_told_the_advertised_name_not_the_bind_address(tmp_path: Path) -> None:
    import ssl

    import httpx

    from edgeweave.cloud.server import open_cloud
    from edgeweave.config.settings import CloudSettings, ServerSettings

    settings = CloudSettings(
        data_dir=tmp_path / "adv",
        server=ServerSettings(host="127.0.0.1", port=0, hub_port=0, advertise_hosts=["localhost"]),
        write_user_config=False,
    )
    async with open_cloud(settings) as running:
        assert running.endpoint.url.startswith("https://localhost:")
        ctx = ssl.create_default_context(cadata=running.endpoint.ca_pem)
        headers = {"Authorization": f"Bearer {running.endpoint.token}"}
        async with httpx.AsyncClient(verify=ctx, headers=headers) as http:
            token = (await http.post(running.endpoint.url + "/api/v1/tokens", json={})).json()
            _, csr = generate_key_and_csr("far-node")
            answer = await http.post(
                running.endpoint.url + "/api/v1/join",
                json={"token": token["token"], "node": "far-node", "csr": csr.decode()},
            )
    assert answer.status_code == 200, answer.text
    assert answer.json()["hubUrl"].startswith("wss://localhost:")
    assert answer.json()["apiUrl"].startswith("https://localhost:")
